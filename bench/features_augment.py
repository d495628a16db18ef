"""Benchmark feature + augmentation throughput: 2 Dask workers vs one process of plain numpy.

    PYTHONPATH=$PWD .venv/bin/python bench/features_augment.py [--rows 5000] [--tile 8] [--repeats 3]

Workload: the embedded MNIST rows (784 pixel columns) -> the ``pixels`` feature transform
(scale to [0, 1], 28x28x1) -> the default augmentation (rotate, shift, noise; 2 copies of every
row, blocks of 512 seeded by (seed, block)). The Dask side runs ``FeatureTransform.transform_dask``
and ``augment_train`` on a ``LocalCluster`` of 2 single-threaded worker processes, from raw rows
already in worker memory (as ``prepare`` has them after its persist), leaving the result in worker
memory (where the store writes it from); the numpy side runs the same functions in a loop in this
process. Both outputs are checked to be byte-identical (once, outside the timing). A third row runs the
same numpy code in 2 plain processes: the ceiling the machine gives to 2 processes at that moment.
Prints a Markdown table; the issue's goal is a ratio >= 1.6x.
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor

import dask.dataframe as dd
from dask import core
import numpy as np
import pandas as pd
import xarray as xr
from distributed import Client, LocalCluster, wait
from cputime import tree_cpu  # bench/cputime.py (this folder is on sys.path when run as a script)

from pipeline.augment import apply_ops, augment_train, build_all
from pipeline.config import AugmentConfig, FeaturesConfig
from pipeline.ingest import embedded_mnist_path
from pipeline.transforms import FeatureTransform

CHUNK_ROWS, SEED = 512, 0
FEATURES = FeaturesConfig(groups=[{"kind": "pixels", "name": "image", "columns": ["p*"], "shape": [28, 28, 1]}])


def raw_rows(n: int, tile: int = 1) -> pd.DataFrame:
    """The first ``n`` embedded MNIST rows, repeated ``tile`` times (a workload of any size)."""
    frame = pd.read_csv(embedded_mnist_path(), header=None, nrows=n)
    frame.columns = [f"p{i}" for i in range(784)] + ["label"]
    return pd.concat([frame] * tile, ignore_index=True)


def numpy_path(ft: FeatureTransform, raw: pd.DataFrame, cfg: AugmentConfig) -> np.ndarray:
    """One process: transform, then each block of CHUNK_ROWS with its (seed, block) generator."""
    images = ft.transform(raw)["image"]
    ops, out = build_all(cfg.ops), []
    for k, start in enumerate(range(0, len(images), CHUNK_ROWS)):
        block = images[start:start + CHUNK_ROWS]
        rng = np.random.default_rng([SEED, k])
        out += [block, *(apply_ops(block, ops, rng).astype(block.dtype) for _ in range(cfg.copies))]
    return np.concatenate(out)


def _blocks_of(ft_json: str, raw: pd.DataFrame, first_block: int, cfg: AugmentConfig) -> np.ndarray:
    """``numpy_path`` for a run of whole blocks starting at block ``first_block`` (ceiling reference)."""
    images = FeatureTransform.from_json(ft_json).transform(raw)["image"]
    ops, out = build_all(cfg.ops), []
    for k, start in enumerate(range(0, len(images), CHUNK_ROWS), start=first_block):
        block = images[start:start + CHUNK_ROWS]
        rng = np.random.default_rng([SEED, k])
        out += [block, *(apply_ops(block, ops, rng).astype(block.dtype) for _ in range(cfg.copies))]
    return np.concatenate(out)


def two_processes(pool: ProcessPoolExecutor, ft: FeatureTransform, raw: pd.DataFrame, cfg: AugmentConfig):
    """The machine's ceiling for 2 cores: plain numpy in 2 processes, each half of the blocks."""
    n_blocks = -(-len(raw) // CHUNK_ROWS)
    cut = (n_blocks // 2) * CHUNK_ROWS
    halves = [pool.submit(_blocks_of, ft.to_json(), raw.iloc[:cut], 0, cfg),
              pool.submit(_blocks_of, ft.to_json(), raw.iloc[cut:], n_blocks // 2, cfg)]
    return np.concatenate([h.result() for h in halves])


def spread(client: Client, raw: pd.DataFrame, rows: int) -> dd.DataFrame:
    """``raw`` in partitions of ``rows`` held by the workers in turn (0, 1, 0, 1, ...), as prepare's
    shuffle leaves its persisted rows. Tasks run where their input lies: a persist of
    ``from_pandas`` put 6 of the 10 blocks on one worker in some runs, which timed the placement."""
    workers = sorted(client.scheduler_info()["workers"])
    parts = [client.scatter(raw.iloc[start:start + rows], workers=[workers[i % len(workers)]])
             for i, start in enumerate(range(0, len(raw), rows))]
    frame = client.persist(dd.from_delayed(parts, meta=raw.iloc[:0], verify_meta=False))
    wait(frame)
    return frame


def dask_path(ft: FeatureTransform, frame: dd.DataFrame, lengths, cfg: AugmentConfig):
    """The lazy array of stored images (features then augmentation), as the store would write it."""
    images = ft.transform_dask(frame, lengths)["image"]
    ds = xr.Dataset({"image": (("sample", "height", "width", "channel"), images)})
    return augment_train(ds, sum(lengths), cfg, SEED, CHUNK_ROWS)["image"].data


def on_workers(client: Client, arr):
    """Compute ``arr`` into worker memory and wait (the store writes from there; nothing is gathered)."""
    done = client.persist(arr)
    wait(done)
    return done


def forget(client: Client, done) -> None:
    """Drop a result from worker memory and wait until the scheduler has, so that the next repeat
    (same keys) computes it again instead of finding it there."""
    client.cancel(done)
    keys = set(core.flatten(done.__dask_keys__()))
    while client.run_on_scheduler(_known, keys=keys):
        time.sleep(0.01)


def _known(keys, dask_scheduler=None) -> bool:
    return any(k in dask_scheduler.tasks for k in keys)


def timed(fn, repeats: int, after=None) -> tuple[float, float, np.ndarray]:
    """(median wall seconds, median CPU seconds of this process and its children, the last output)
    of ``repeats`` runs; ``after(output)`` runs after each, untimed."""
    times, cpus, out = [], [], None
    for _ in range(repeats):
        start, cpu_start = time.perf_counter(), tree_cpu()
        out = fn()
        times.append(time.perf_counter() - start)
        cpus.append(tree_cpu() - cpu_start)
        if after is not None:
            after(out)
    return statistics.median(times), statistics.median(cpus), out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=5000)
    parser.add_argument("--tile", type=int, default=1,
                        help="repeat the rows this many times: fixed costs (task and process start-up) weigh less")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--partition-rows", type=int, default=CHUNK_ROWS,
                        help="rows per input partition (512 = the augmentation block: no rechunk)")
    args = parser.parse_args()
    cfg = AugmentConfig()  # the default: rotate 10, shift 2, noise 0.02; 2 copies
    raw = raw_rows(args.rows, args.tile)
    ft = FeatureTransform.fit(dd.from_pandas(raw, npartitions=1), FEATURES)
    load = {"numpy": os.getloadavg()[0]}
    t_numpy, cpu_numpy, ref = timed(lambda: numpy_path(ft, raw, cfg), args.repeats)
    with ProcessPoolExecutor(2) as pool:
        two_processes(pool, ft, raw.iloc[:CHUNK_ROWS * 2], cfg)  # warm-up
        load["pool"] = os.getloadavg()[0]
        t_pool, cpu_pool, pooled = timed(lambda: two_processes(pool, ft, raw, cfg), args.repeats)
    with LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True,
                      dashboard_address=":0") as cluster, \
            Client(cluster) as client:
        frame = spread(client, raw, args.partition_rows)
        placed = sorted(Counter(w for ws in client.who_has(frame).values() for w in ws).values())
        lengths = tuple(frame.map_partitions(len).compute())
        out = dask_path(ft, frame, lengths, cfg).compute()  # warm-up, and the bytes to compare
        load["dask"] = os.getloadavg()[0]
        t_dask, cpu_dask, _ = timed(lambda: on_workers(client, dask_path(ft, frame, lengths, cfg)), args.repeats,
                                    after=lambda done: forget(client, done))
    if out.tobytes() != ref.tobytes() or pooled.tobytes() != ref.tobytes():
        raise SystemExit("outputs differ between the Dask and the numpy path")
    n_out = len(ref)
    print(f"\nMachine: {os.cpu_count()} cores ({platform.machine()}); {len(raw)} raw rows -> {n_out} stored images "
          f"(2 copies), median of {args.repeats}; outputs byte-identical; raw partitions per Dask worker {placed}\n")
    print("| path | load avg (1 min) at start | seconds | CPU s, all its processes | images out / s |\n"
          "|---|---|---|---|---|")
    print(f"| numpy, 1 process | {load['numpy']:.1f} | {t_numpy:.2f} | {cpu_numpy:.2f} | {n_out / t_numpy:,.0f} |")
    print(f"| Dask, {args.workers} worker{'s' * (args.workers > 1)} | {load['dask']:.1f} | {t_dask:.2f} | "
          f"{cpu_dask:.2f} | {n_out / t_dask:,.0f} |")
    print(f"| numpy, 2 processes (ceiling reference; result sent back) | {load['pool']:.1f} | {t_pool:.2f} | "
          f"{cpu_pool:.2f} | {n_out / t_pool:,.0f} |")
    print(f"| **ratio** (numpy s / Dask s) | | **{t_numpy / t_dask:.2f}x** | | goal >= 1.6x |")
    print(f"| ratio of the 2-process reference (numpy s / 2-process s) | | {t_numpy / t_pool:.2f}x | | |")
    print(f"\nLoad average (1 min) at the end: {os.getloadavg()[0]:.1f}. Above about 1.5 on 2 cores other processes "
          "took CPU from the run and the ratios are not meaningful. CPU seconds (this process and its children: "
          "pool processes, Dask workers; the LocalCluster scheduler runs in this process) show the work each "
          f"path did whatever the load: with {args.workers} free cores Dask could reach about "
          f"{args.workers} x {cpu_numpy:.2f} / {cpu_dask:.2f} = {args.workers * cpu_numpy / cpu_dask:.2f}x at best.")

if __name__ == "__main__":
    main()
