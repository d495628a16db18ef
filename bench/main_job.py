"""Benchmark the main job on the embedded default: test accuracy and wall time per seed.

    .venv/bin/python bench/main_job.py --seeds 0 1 2 [--workdir /tmp/dcpipe-bench]

Each seed is a full `dcpipe run` (prepare + 2-rank Horovod training); prints a Markdown table.
Targets (issue 2): test accuracy >= 0.98, wall time <= 180 s on a 2-core CPU machine.
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile

from pipeline import JobConfig, run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--workdir", default=None)
    args = parser.parse_args()
    workdir = args.workdir or tempfile.mkdtemp(prefix="dcpipe-bench-")
    rows = []
    for seed in args.seeds:
        s = run(JobConfig().with_overrides(seed=seed), workdir=workdir, show_progress=False, log=lambda *_: None)
        rows.append((seed, s["test_accuracy"], s["prepare_seconds"], s["train_seconds"], s["wall_seconds"]))
        print(f"seed {seed}: accuracy {s['test_accuracy']:.4f}, wall {s['wall_seconds']:.1f} s", flush=True)
    print(f"\nMachine: {os.cpu_count()} cores, {platform.processor() or platform.machine()}\n")
    print("| seed | test accuracy | prepare s | train s | wall s |\n|---|---|---|---|---|")
    for seed, acc, prep, train, wall in rows:
        print(f"| {seed} | {acc:.4f} | {prep:.1f} | {train:.1f} | {wall:.1f} |")
    accs, walls = [r[1] for r in rows], [r[4] for r in rows]
    print(f"| mean | {statistics.mean(accs):.4f} (min {min(accs):.4f}) | | | {statistics.mean(walls):.1f} "
          f"(max {max(walls):.1f}) |")


if __name__ == "__main__":
    main()
