"""The monitoring's cost on training step time (issue 14): paired runs, monitoring off and on.

    PYTHONPATH=$PWD nice -n 10 .venv/bin/python bench/monitoring.py [--workdir /tmp/dcpipe-bench-monitor]
        [--per-class 100] [--epochs 4] [--pairs 3]

One dataset version is prepared first (that run is the warm-up, not counted); then the same run
is trained ``--pairs`` times with ``DCPIPE_MONITOR=0`` and ``=1`` alternately (off, on, on, off,
...), each time a cache hit: with monitoring on, a scheduler without workers starts in the
background and both ranks report every second. The figure is the step time: an epoch's steps
only (``history.json``'s ``steps_seconds``, no validation) over its steps, epochs 2+ (epoch 1
holds the tf.function tracing), median per run. Prints Markdown tables.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
from pathlib import Path

from pipeline.job import run
from tests.conftest import small_config, take_balanced


def step_ms(summary: dict) -> float:
    history = json.loads((Path(summary["run_dir"]) / "history.json").read_text())
    return 1e3 * statistics.median(h["steps_seconds"] / h["steps"] for h in history[1:])


def one_run(cfg, workdir: Path, monitor: bool) -> dict:
    os.environ["DCPIPE_MONITOR"] = "1" if monitor else "0"
    summary = run(cfg, workdir=workdir, show_progress=False, log=lambda *a: None)
    return {"monitor": monitor, "step_ms": step_ms(summary), "wall": summary["wall_seconds"],
            "rank_start": summary["time_breakdown"]["rank_start"], "run": summary["run_id"],
            "trace_bytes": Path(summary["run_dir"], "trace.json").stat().st_size if monitor else 0}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "dcpipe-bench-monitor")
    ap.add_argument("--per-class", type=int, default=100)
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--pairs", type=int, default=3)
    args = ap.parse_args()
    import gzip
    from pipeline.ingest import embedded_mnist_path
    with gzip.open(embedded_mnist_path(), "rt") as fh:
        lines = fh.read().splitlines()
    args.workdir.mkdir(parents=True, exist_ok=True)
    csv = args.workdir / "mnist.csv"
    csv.write_text("\n".join(take_balanced(lines, args.per_class)) + "\n")
    cfg = small_config(csv, train={"epochs": args.epochs, "batch_size": 32, "np": 2},
                       cluster={"dashboard_address": "127.0.0.1:0"})
    one_run(cfg, args.workdir / "work", monitor=True)            # prepares the version: warm-up
    rows = []
    for pair in range(args.pairs):
        order = (False, True) if pair % 2 == 0 else (True, False)
        rows += [{"pair": pair + 1, **one_run(cfg, args.workdir / "work", monitor=m)} for m in order]
    print("| pair | monitoring | step ms (median, epochs 2+) | rank start s | wall s | trace bytes | run |")
    print("|---:|---|---:|---:|---:|---:|---|")
    for r in rows:
        print(f"| {r['pair']} | {'on' if r['monitor'] else 'off'} | {r['step_ms']:.2f} | {r['rank_start']:.1f} | "
              f"{r['wall']:.1f} | {r['trace_bytes']:,} | {r['run']} |")
    ratios = []
    for pair in range(1, args.pairs + 1):
        on, off = (next(r for r in rows if r["pair"] == pair and r["monitor"] is m) for m in (True, False))
        ratios.append(on["step_ms"] / off["step_ms"])
    print(f"\nstep time on / off per pair: {', '.join(f'{x:.3f}' for x in ratios)}; "
          f"median {statistics.median(ratios):.3f}")


if __name__ == "__main__":
    main()
