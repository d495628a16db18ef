"""Benchmark the main job against the script it replaces: `dcpipe run` vs bench/handwritten_mnist.py.

    PYTHONPATH=$PWD .venv/bin/python bench/main_job.py [--pairs 3] [--dir /tmp/dcpipe-bench-main]

Each pair runs both, alternating which goes first, each as a fresh process from the same state: the
venv exists and the dataset is not yet prepared (`dcpipe run` gets an empty workdir). Wall time is
the process's, from start to exit (imports, cluster start, prepare, ranks, evaluation, export);
CPU seconds are of the process and every process it waited for (workers, ranks). Prints a Markdown
table and the ratios of medians; each pair's `dcpipe run` log and summary.json stay in --dir.
Goal (issue 18): dcpipe's wall time <= 1.0x the script's at >= its test accuracy, on 2 cores.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def timed(cmd: list[str], log: Path, cwd: Path) -> tuple[float, float]:
    """(wall s, CPU s of the process and its waited-for descendants) of ``cmd``; output to ``log``."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    before, t0 = resource.getrusage(resource.RUSAGE_CHILDREN), time.perf_counter()
    with open(log, "w") as out:
        proc = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, cwd=cwd, env=env)
    wall, after = time.perf_counter() - t0, resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}); see {log}")
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def dcpipe(folder: Path) -> dict:
    workdir = folder / "work"
    shutil.rmtree(workdir, ignore_errors=True)             # the dataset is not yet prepared
    wall, cpu = timed([sys.executable, "-m", "pipeline.cli", "run", "--workdir", str(workdir)],
                      folder / "dcpipe.log", folder)
    summary = json.loads(next((workdir / "runs").glob("*/summary.json")).read_text())
    return {"wall": wall, "cpu": cpu, "accuracy": summary["test_accuracy"],
            "prepare": summary["prepare_seconds"], "train": summary["train_seconds"],
            "inner": summary["wall_seconds"]}


def script(folder: Path) -> dict:
    log = folder / "handwritten.log"
    wall, cpu = timed([sys.executable, str(REPO / "bench" / "handwritten_mnist.py"), "--out",
                       str(folder / "handwritten.keras")], log, folder)
    result = json.loads(log.read_text().strip().splitlines()[-1])
    return {"wall": wall, "cpu": cpu, "accuracy": result["test_accuracy"], "inner": result["seconds"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--dir", type=Path, default=None)
    args = parser.parse_args()
    root = args.dir or Path(tempfile.mkdtemp(prefix="dcpipe-bench-main-"))
    rows = []
    for i in range(args.pairs):
        folder = root / f"pair-{i}"
        folder.mkdir(parents=True, exist_ok=True)
        order = (("dcpipe", dcpipe), ("script", script)) if i % 2 == 0 else (("script", script), ("dcpipe", dcpipe))
        pair = {name: run(folder) for name, run in order}
        pair["first"] = order[0][0]
        rows.append(pair)
        d, s = pair["dcpipe"], pair["script"]
        print(f"pair {i} ({pair['first']} first): dcpipe {d['wall']:.1f} s acc {d['accuracy']:.4f}; "
              f"script {s['wall']:.1f} s acc {s['accuracy']:.4f}; ratio {d['wall'] / s['wall']:.2f}", flush=True)
    print(f"\nMachine: {os.cpu_count()} cores, {platform.processor() or platform.machine()}; load average "
          f"{os.getloadavg()[0]:.1f} at the end\n")
    print("| pair | first | dcpipe wall s | CPU s | prepare s | train s | accuracy | script wall s | CPU s | "
          "accuracy | wall ratio |\n|---|---|---|---|---|---|---|---|---|---|---|")
    for i, p in enumerate(rows):
        d, s = p["dcpipe"], p["script"]
        print(f"| {i} | {p['first']} | {d['wall']:.1f} | {d['cpu']:.0f} | {d['prepare']:.1f} | {d['train']:.1f} | "
              f"{d['accuracy']:.4f} | {s['wall']:.1f} | {s['cpu']:.0f} | {s['accuracy']:.4f} | "
              f"{d['wall'] / s['wall']:.2f} |")
    med = {side: {k: statistics.median(p[side][k] for p in rows) for k in ("wall", "cpu", "accuracy")}
           for side in ("dcpipe", "script")}
    ratios = [p["dcpipe"]["wall"] / p["script"]["wall"] for p in rows]
    print(f"\nMedian wall ratio of the pairs dcpipe ÷ script: **{statistics.median(ratios):.2f}x** (goal <= 1.0); "
          f"CPU ratio of medians {med['dcpipe']['cpu'] / med['script']['cpu']:.2f}x; median accuracy dcpipe "
          f"{med['dcpipe']['accuracy']:.4f} vs script {med['script']['accuracy']:.4f}. Logs in {root}.")


if __name__ == "__main__":
    main()
