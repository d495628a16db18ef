"""Drill (issue 13): SIGKILL one rank of the default job mid-epoch; the run must finish by itself,
with test accuracy within 1 point of an undisturbed run of the same plan.

    PYTHONPATH=$PWD .venv/bin/python bench/rank_kill_drill.py [--workdir /tmp/dcpipe-drill] [--epoch 4]

Both runs train on the same prepared version of the embedded MNIST default with the default
config (2 ranks); the disturbed one loses a rank ``--delay`` seconds after epoch ``--epoch`` ends.
Prints one Markdown table: accuracy, wall time and restarts of each run.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import threading
import time
from pathlib import Path

from models.supervise import run_processes
from pipeline import JobConfig
from pipeline.job import prepare_only, run
from pipeline.workdir import Workdir


def kill_a_rank(workdir: Workdir, after: set[str], epoch: int, delay: float, killed: list) -> None:
    """Wait for the new run's epoch ``epoch`` to end, then SIGKILL one of its ranks."""
    while True:
        new = [r for r in workdir.run_dirs() if r.id not in after]
        if new and new[-1].history.is_file() and len(json.loads(new[-1].history.read_text())) >= epoch:
            break
        time.sleep(0.1)
    time.sleep(delay)
    run_dir = new[-1]
    ranks = [pid for pid in run_processes(str(run_dir.plan))
             if b"models.train" in Path(f"/proc/{pid}/cmdline").read_bytes() and
             b"horovodrun" not in Path(f"/proc/{pid}/cmdline").read_bytes()]
    os.kill(ranks[-1], signal.SIGKILL)
    killed.append((run_dir.id, ranks[-1]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workdir", default="/tmp/dcpipe-drill")
    ap.add_argument("--epoch", type=int, default=4, help="kill a rank in the epoch after this one")
    ap.add_argument("--delay", type=float, default=1.5, help="seconds into that epoch")
    args = ap.parse_args()
    work = Workdir.open(args.workdir)
    cfg = JobConfig().with_overrides(cluster={"dashboard_address": ":0"})
    ref = prepare_only(cfg, work.path, log=lambda *_: None, show_progress=False).ref
    quiet = lambda *_: None  # noqa: E731
    plain = run(cfg, work.path, dataset=str(ref), log=quiet)
    killed: list = []
    killer = threading.Thread(target=kill_a_rank, daemon=True,
                              args=(work, {r.id for r in work.run_dirs()}, args.epoch, args.delay, killed))
    killer.start()
    disturbed = run(cfg, work.path, dataset=str(ref), log=quiet)
    killer.join(timeout=5)
    gap = 100 * (plain["test_accuracy"] - disturbed["test_accuracy"])
    print(f"Dataset {ref}; killed rank pid {killed[0][1] if killed else None} of run {disturbed['run_id']} "
          f"{args.delay:g} s into epoch {args.epoch + 1}\n")
    print("| run | test accuracy | wall s | restarts |\n|---|---|---|---|")
    for name, s in (("undisturbed", plain), ("one rank SIGKILLed", disturbed)):
        print(f"| {name} ({s['run_id']}) | {s['test_accuracy']:.4f} | {s['wall_seconds']:.1f} | "
              f"{json.dumps(s.get('restarts', []))} |")
    print(f"\naccuracy gap: {gap:+.2f} points (goal: within 1)")


if __name__ == "__main__":
    main()
