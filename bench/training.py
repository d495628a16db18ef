"""Benchmark the training engine (issue 6) on the embedded MNIST default; all ratios side by side.

    PYTHONPATH=$PWD .venv/bin/python bench/training.py [--workdir /tmp/dcpipe-bench6] [--skip-accuracy]

1. loader samples/s / in-memory numpy tf.data samples/s            goal >= 0.9
2. train-step time with the Zarr loader / with cached tensors      goal <= 1.05
3. np=2 scaling efficiency, one thread per rank                    goal >= 0.85
4. bytes sent per step vs none: fp16 / topk:0.01 / powersgd:4      goal 0.50 / <= 0.03 / <= 0.05
5. test-accuracy loss vs none (2 ranks, the default 8 epochs)      goal fp16 <= 0.3 pt, others <= 1 pt
Prints a Markdown section (also written to bench/RESULTS-6.md with --write).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import tensorflow as tf
import xarray as xr

from models import compression, data, networks
from models.launch import horovodrun_command, rank_env
from models.train_cmd import train_command
from pipeline import JobConfig
from pipeline.job import prepare_only

REPO = Path(__file__).resolve().parents[1]


def in_memory(store: str, lo: int, hi: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows ``[lo, hi)`` as the model takes them: float32 images in [0, 1], int32 labels."""
    ds = xr.open_zarr(store).isel(sample=slice(lo, hi))
    return ds["image"].values.astype(np.float32), ds["label"].values.astype(np.int32)


def loader_ratio(store: str, train: tuple[int, int], epochs: int, rounds: int, threads: int) -> tuple[float, float]:
    """(zarr loader samples/s, in-memory tf.data samples/s) over ``epochs`` epochs each; medians
    of ``rounds`` alternating rounds. Both pipelines are built once per round, as in training, and
    both yield float32 image batches (the loader reads the stored uint8 and decodes in the graph)."""
    images, labels = in_memory(store, *train)
    loader = data.ZarrLoader(data.LoaderSpec(store=store, split_range=train, batch_size=64, read_threads=threads))
    rates = {"zarr": [], "memory": []}
    for r in range(rounds):
        memory = (tf.data.Dataset.from_tensor_slices((images, labels)).shuffle(4096)
                  .batch(64, drop_remainder=True).repeat(epochs).prefetch(tf.data.AUTOTUNE))
        for name, ds in (("zarr", loader.stream(r * epochs, 0, (r + 1) * epochs)), ("memory", memory)):
            t0, n = time.perf_counter(), 0
            for _, y in ds:
                n += int(y.shape[0])
            rates[name].append(n / (time.perf_counter() - t0))
    return float(np.median(rates["zarr"])), float(np.median(rates["memory"]))


def step_ratio(store: str, train: tuple[int, int], steps: int) -> tuple[float, float]:
    """(seconds/step fed by the Zarr loader, seconds/step on cached tensors), CNN, one process."""
    import keras
    images, labels = in_memory(store, train[0], train[0] + 64 * 8)
    cached = [(tf.constant(images[i:i + 64]), tf.constant(labels[i:i + 64])) for i in range(0, 64 * 8, 64)]
    model = networks.build("cnn", (28, 28, 1), 10)
    optimizer = keras.optimizers.Adam(1e-3)
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)

    @tf.function
    def step(x, y):
        with tf.GradientTape() as tape:
            loss = loss_fn(y, model(x, training=True))
        optimizer.apply_gradients(zip(tape.gradient(loss, model.trainable_variables), model.trainable_variables))
        return loss

    loader = data.ZarrLoader(data.LoaderSpec(store=store, split_range=train, batch_size=64, read_threads=2))
    step(*cached[0])
    times = {"zarr": [], "cached": []}
    it = iter(loader.stream(0, 0, 5))
    for rep in range(5):
        t0 = time.perf_counter()
        for _ in range(steps):
            loss = step(*next(it))
        float(loss)
        times["zarr"].append((time.perf_counter() - t0) / steps)
        t0 = time.perf_counter()
        for i in range(steps):
            loss = step(*cached[i % len(cached)])
        float(loss)
        times["cached"].append((time.perf_counter() - t0) / steps)
    return float(np.median(times["zarr"])), float(np.median(times["cached"]))


def _ranks_rate(world: int, store: str, train: tuple[int, int], steps: int, out: Path, cores: str | None) -> float:
    """Samples/s of ``world`` real horovodrun ranks (one thread each), optionally on ``cores`` only."""
    cmd = horovodrun_command(world, Path("x"))[:-3] + [
        str(REPO / "bench" / "train_rank.py"), store, str(train[0]), str(train[1]), str(steps), str(out)]
    if cores is not None:
        cmd = ["taskset", "-c", cores, *cmd]
    env = rank_env(1)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env["PYTHONPATH"]])
    subprocess.run(cmd, check=True, env=env, cwd=REPO, capture_output=True)
    return json.loads(out.read_text())["samples_per_s"]


def scaling(store: str, train: tuple[int, int], steps: int, rounds: int, tmp: Path,
            pinned: bool) -> tuple[float, float]:
    """(samples/s with 1 rank, samples/s with 2 ranks), medians of ``rounds`` alternating runs.

    ``pinned`` gives each rank one core in both runs (1 rank on core 0, 2 ranks on cores 0-1), so
    the single rank cannot run its loader and Horovod threads on the otherwise idle second core."""
    rates = {1: [], 2: []}
    for _ in range(rounds):
        for world in (1, 2):
            cores = ("0" if world == 1 else "0,1") if pinned else None
            rates[world].append(_ranks_rate(world, store, train, steps, tmp / f"scale-{world}.json", cores))
    return float(np.median(rates[1])), float(np.median(rates[2]))


def bytes_ratios() -> dict[str, float]:
    shapes = [tuple(v.shape) for v in networks.build("cnn", (28, 28, 1), 10).trainable_variables]
    full = compression.parse("none").bytes_per_step(shapes)
    return {spec: compression.parse(spec).bytes_per_step(shapes) / full
            for spec in ("none", "fp16", "topk:0.01", "powersgd:4")} | {"none_bytes": full}


def accuracies(workdir: Path, dataset: str) -> dict[str, float]:
    return {spec: train_command(JobConfig(), dataset, workdir, np=2, compression=spec, log=lambda *a: None)[
        "test_accuracy"] for spec in ("none", "fp16", "topk:0.01", "powersgd:4")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "dcpipe-bench6")
    parser.add_argument("--skip-accuracy", action="store_true")
    parser.add_argument("--write", action="store_true", help="write bench/RESULTS-6.md")
    args = parser.parse_args()
    prepared = prepare_only(JobConfig().with_overrides(cluster={"dashboard_address": ":0"}),
                            workdir=args.workdir, log=lambda *a: None, show_progress=False)
    store, train = str(prepared.ref.data_path), tuple(prepared.manifest["ranges"]["train"])
    rows = []
    z, m = loader_ratio(store, train, epochs=4, rounds=5, threads=2)
    rows.append(("loader samples/s ÷ in-memory tf.data", f"{z:,.0f} / {m:,.0f}", z / m, ">= 0.9", z / m >= 0.9))
    zs, cs = step_ratio(store, train, steps=100)
    rows.append(("train step, Zarr loader ÷ cached tensors", f"{zs * 1e3:.1f} ms / {cs * 1e3:.1f} ms", zs / cs,
                 "<= 1.05", zs / cs <= 1.05))
    for pinned in (False, True):
        one, two = scaling(store, train, steps=300, rounds=3, tmp=args.workdir, pinned=pinned)
        eff = two / (2 * one)
        how = "1 thread/rank, one core per rank (taskset)" if pinned else "1 thread/rank, unpinned"
        rows.append((f"np=2 scaling efficiency ({how})", f"{two:,.0f} / (2 × {one:,.0f}) samples/s", eff,
                     ">= 0.85", eff >= 0.85))
    b = bytes_ratios()
    for spec, goal, ok in (("fp16", "0.50", math.isclose(b["fp16"], 0.5)), ("topk:0.01", "<= 0.03", b["topk:0.01"] <= 0.03),
                           ("powersgd:4", "<= 0.05", b["powersgd:4"] <= 0.05)):
        rows.append((f"bytes/step {spec} ÷ none", f"of {b['none_bytes']:,} B", b[spec], goal, ok))
    if not args.skip_accuracy:
        acc = accuracies(args.workdir, str(prepared.ref))
        for spec, limit in (("fp16", 0.3), ("topk:0.01", 1.0), ("powersgd:4", 1.0)):
            loss = 100 * (acc["none"] - acc[spec])
            rows.append((f"test-accuracy loss {spec} vs none (pt)", f"{acc[spec]:.4f} vs {acc['none']:.4f}", loss,
                         f"<= {limit}", loss <= limit))
    lines = ["## Issue 6: training engine", "",
             f"Command: `PYTHONPATH=$PWD .venv/bin/python bench/training.py {' '.join(sys.argv[1:])}`  ",
             f"Machine: {os.cpu_count()} cores ({platform.machine()}), CPU only, shared with other jobs (load average "
             f"{os.getloadavg()[0]:.1f} at the end); one run, medians of alternating repeats.", "",
             "| measure | values | ratio | goal | met |", "|---|---|---|---|---|"]
    lines += [f"| {name} | {vals} | {ratio:.3f} | {goal} | {'yes' if ok else '**no**'} |"
              for name, vals, ratio, goal, ok in rows]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.write:
        (REPO / "bench" / "RESULTS-6.md").write_text(text)


if __name__ == "__main__":
    main()
