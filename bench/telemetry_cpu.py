"""The CPU a rank spends on the monitoring (issue 14), measured without the machine's noise:
one process plays a rank that takes a step every ``--step-ms`` (it sleeps, so what the process
uses is what the monitoring adds), reporting with ``models.telemetry.Telemetry`` as rank 0 does
(live events to a real scheduler started with the preload in another process, the sampled trace
spans, the per-step TensorBoard scalars), against the same loop with the telemetry off.

    PYTHONPATH=$PWD nice -n 10 .venv/bin/python bench/telemetry_cpu.py [--seconds 20] [--step-ms 50]

Prints process CPU seconds per training second for each, and the difference as a share of the
step time (the most the monitoring can slow a step that uses one core).
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import tensorflow as tf

from models.telemetry import Telemetry


def loop(telemetry: Telemetry, seconds: float, step_s: float) -> tuple[float, float, int]:
    """(process CPU seconds, wall seconds, steps) of a fake training loop of ``seconds``."""
    cpu0, wall0, n = time.process_time(), time.time(), 0
    while time.time() - wall0 < seconds:
        t = time.time()
        time.sleep(step_s)
        marks = np.array([t, t + 0.01 * step_s, t + 0.7 * step_s, t + 0.9 * step_s, time.time()])
        n += 1
        telemetry.step(marks, 0.5, n, 1)
    telemetry.close()
    return time.process_time() - cpu0, time.time() - wall0, n


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--step-ms", type=float, default=50)
    ap.add_argument("--pairs", type=int, default=2)
    args = ap.parse_args()
    port = 18786 + os.getpid() % 1000
    scheduler = subprocess.Popen([str(Path(sys.executable).with_name("dask")), "scheduler", "--port", str(port),
                                  "--dashboard-address", "127.0.0.1:0", "--preload", "pipeline.monitor.preload"],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(5)
        rows = []
        with tempfile.TemporaryDirectory() as tmp:
            writer = tf.summary.create_file_writer(f"{tmp}/tb")
            for pair in range(args.pairs):
                for on in ((False, True) if pair % 2 == 0 else (True, False)):
                    telemetry = Telemetry(rank=0, size=2, run_id=f"bench-{pair}", span_dir=Path(tmp) / "trace",
                                          address=f"tcp://127.0.0.1:{port}", steps_total=10**6, epochs=1,
                                          bytes_per_step=450_068, learning_rate=lambda: 1e-3, enabled=on,
                                          writer=writer if os.environ.get("BENCH_TB", "1") == "1" else None)
                    if on:
                        time.sleep(2)   # the client connects (off the loop, as in a rank)
                    cpu, wall, n = loop(telemetry, args.seconds, args.step_ms / 1e3)
                    rows.append((pair + 1, on, cpu / wall, n))
    finally:
        scheduler.terminate()
        scheduler.wait(timeout=30)
    print("| pair | telemetry | CPU s per s | steps |\n|---:|---|---:|---:|")
    for pair, on, rate, n in rows:
        print(f"| {pair} | {'on' if on else 'off'} | {rate:.4f} | {n} |")
    on = np.median([r for _, o, r, _ in rows if o])
    off = np.median([r for _, o, r, _ in rows if not o])
    print(f"\nmonitoring CPU: {1e3 * (on - off):.2f} ms per training second = {100 * (on - off):.2f}% of one core "
          f"(steps of {args.step_ms:g} ms: at most {100 * (on - off):.2f}% of the step time)")


if __name__ == "__main__":
    main()
