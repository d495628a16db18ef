"""Benchmark the dataset store: write and read throughput vs the raw codec on the same bytes.

    PYTHONPATH=. .venv/bin/python bench/store.py [--gb 1.0] [--sweep-mb 256] [--threads 2]

The data are the embedded MNIST images as the pipeline stores them (float32 in [0, 1], 3,136 bytes
a sample), tiled to ``--gb``; every other tile carries gaussian noise (std 0.02) as augmented
copies do. For each codec it measures, in this one process:

* raw codec: numcodecs encode / decode of the same chunk-sized blocks, on 1 thread and on
  ``--threads`` threads (a thread pool over blocks);
* store write: ``pipeline.store.publish`` (xarray ``to_zarr`` on Dask's threaded scheduler with
  ``--threads`` workers, then the SHA-256 checksum index), and the checksum pass alone;
* store read: the loader's path (``zarr.open_group(...)["image"][:]``, what models/data.py does)
  and ``xarray.open_zarr(...).load()``.

Throughputs are MB/s of uncompressed bytes; ratios are store / raw codec at the same thread count.
A chunk-size sweep (default codec) over ``--sweep-mb`` of the same data picks the chunk_bytes
default. Prints Markdown tables.
"""
from __future__ import annotations

import argparse
import gzip
import os
import platform
import shutil
import tempfile
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path

import dask
import dask.array as da
import numcodecs
import numcodecs.blosc
import numpy as np
import xarray as xr
import zarr

from pipeline import store
from pipeline.config import StoreConfig
from pipeline.ingest import embedded_mnist_path
from pipeline.store import checksums

CODECS = {  # store codec name -> (StoreConfig level, the same compressor as a raw numcodecs codec)
    "zstd": (3, lambda: numcodecs.Zstd(level=3)),
    "lz4": (1, lambda: numcodecs.LZ4(acceleration=1)),
    "blosc-lz4": (3, lambda: numcodecs.Blosc(cname="lz4", clevel=3, shuffle=numcodecs.Blosc.SHUFFLE)),
    "blosc-zstd": (3, lambda: numcodecs.Blosc(cname="zstd", clevel=3, shuffle=numcodecs.Blosc.SHUFFLE)),
}
MB = 1e6


def images(gb: float) -> np.ndarray:
    with gzip.open(embedded_mnist_path(), "rt") as fh:
        pixels = np.loadtxt(fh, delimiter=",", dtype=np.uint8)[:, :-1]
    base = (pixels.astype("float32") / 255.0).reshape(-1, 28, 28, 1)
    tiles = max(1, round(gb * 1e9 / base.nbytes))
    rng = np.random.default_rng(0)
    out = np.empty((tiles * len(base), 28, 28, 1), dtype="float32")
    for t in range(tiles):
        tile = base if t % 2 == 0 else np.clip(base + rng.normal(0, 0.02, base.shape).astype("float32"), 0, 1)
        out[t * len(base):(t + 1) * len(base)] = tile
    return out


REPEAT = 1   # set from --repeat: each timing is the best of REPEAT runs (the machine is shared)


def _timed(fn, before=lambda: None):
    best, out = float("inf"), None
    for _ in range(REPEAT):
        before()
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def raw_codec(x: np.ndarray, rows: int, make, threads: int) -> dict:
    blocks = [x[i:i + rows] for i in range(0, len(x), rows)]
    codec = make()
    numcodecs.blosc.set_nthreads(1)
    numcodecs.blosc.use_threads = False
    with ThreadPoolExecutor(threads) as pool:
        enc_s, encoded = _timed(lambda: list(pool.map(codec.encode, blocks)))
        dec_s, _ = _timed(lambda: list(pool.map(codec.decode, encoded)))
    numcodecs.blosc.use_threads = None
    return {"enc": x.nbytes / MB / enc_s, "dec": x.nbytes / MB / dec_s,
            "ratio": x.nbytes / sum(len(e) for e in encoded)}


def store_roundtrip(x: np.ndarray, root: Path, cfg: StoreConfig, threads: int) -> dict:
    rows = store.chunk_rows(cfg, x[0].nbytes)
    ds = xr.Dataset({"image": (("sample", "height", "width", "channel"), da.from_array(x, chunks=(rows, 28, 28, 1))),
                     "label": ("sample", da.zeros(len(x), dtype="int16", chunks=rows))})
    ref = store.DatasetRef(root, "bench", f"{abs(hash((cfg.codec, cfg.chunk_bytes))):016x}"[:16])
    with dask.config.set(scheduler="threads", num_workers=threads):
        write_s, pub = _timed(lambda: store.publish(ds, None, {"created": "bench"}, ref, cfg),
                              before=lambda: shutil.rmtree(ref.path, ignore_errors=True))
    sum_s, _ = _timed(lambda: checksums.digest_files(ref.path, checksums.stored_files(ref.path), threads))
    stored = sum(p.stat().st_size for p in (ref.data_path / "image").rglob("*")
                 if p.is_file() and p.name != "zarr.json")
    load_s, got = _timed(lambda: zarr.open_group(ref.data_path, mode="r")["image"][:])
    assert np.array_equal(got, x)
    del got
    xr_s, _ = _timed(lambda: xr.open_zarr(ref.data_path)["image"].load())
    shutil.rmtree(ref.path)
    n = x.nbytes / MB
    return {"rows": rows, "write": n / write_s, "write_s": write_s, "sum": n / sum_s, "load": n / load_s,
            "xr": n / xr_s, "ratio": x.nbytes / stored, "files": pub.manifest["checksums"]["n_files"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gb", type=float, default=1.0, help="store size in GB of float32 images")
    parser.add_argument("--sweep-mb", type=float, default=256, help="data size of the chunk-size sweep")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=2, help="best of this many runs per timing")
    parser.add_argument("--root", default=None, help="scratch folder (default: a temporary one)")
    args = parser.parse_args()
    global REPEAT
    REPEAT = args.repeat
    warnings.filterwarnings("ignore", message="Numcodecs codecs are not in the Zarr version 3")
    root = Path(args.root or tempfile.mkdtemp(prefix="dcpipe-store-bench-"))
    x = images(args.gb)
    default = StoreConfig()
    print(f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC; {os.cpu_count()} cores "
          f"({platform.machine()}), zarr {zarr.__version__}, numcodecs {numcodecs.__version__}; "
          f"{x.nbytes / 1e9:.2f} GB float32 ({len(x)} samples), chunk_bytes {default.chunk_bytes}, "
          f"{args.threads} threads, best of {args.repeat}; load average {os.getloadavg()[0]:.1f}\n", flush=True)
    print("| codec | stored ratio | raw enc 1t | raw enc Nt | store write (+sha256) | write / raw Nt | "
          "raw dec 1t | raw dec Nt | loader read | read / raw Nt | xarray load | sha256 pass |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for codec, (level, make) in CODECS.items():
        cfg = StoreConfig(codec=codec, level=level)
        rows = store.chunk_rows(cfg, x[0].nbytes)
        one, many = raw_codec(x, rows, make, 1), raw_codec(x, rows, make, args.threads)
        s = store_roundtrip(x, root, cfg, args.threads)
        print(f"| {codec}-{level} | {s['ratio']:.2f} | {one['enc']:.0f} | {many['enc']:.0f} | {s['write']:.0f} | "
              f"{s['write'] / many['enc']:.2f} | {one['dec']:.0f} | {many['dec']:.0f} | {s['load']:.0f} | "
              f"{s['load'] / many['dec']:.2f} | {s['xr']:.0f} | {s['sum']:.0f} |", flush=True)
    sub = x[: int(args.sweep_mb * MB / x[0].nbytes)]
    print(f"\nChunk-size sweep, {default.codec}-{default.level}, {sub.nbytes / 1e6:.0f} MB "
          f"(MB/s; 'batch read' = 64 random samples, ms):\n")
    print("| chunk_bytes | rows/chunk | files | store write | loader read | read / raw dec Nt | batch read ms |")
    print("|---|---|---|---|---|---|---|")
    rng = np.random.default_rng(1)
    for kib in (256, 1024, 4096, 16384, 65536):
        cfg = StoreConfig(chunk_bytes=kib * 1024, codec=default.codec, level=default.level)
        raw = raw_codec(sub, store.chunk_rows(cfg, sub[0].nbytes), CODECS[default.codec][1], args.threads)
        s = store_roundtrip(sub, root, cfg, args.threads)
        # random access: write again, read 64 random samples (one batch) 20 times
        ds = xr.Dataset({"image": (("sample", "height", "width", "channel"),
                                   da.from_array(sub, chunks=(s["rows"], 28, 28, 1)))})
        ref = store.DatasetRef(root, "sweep", f"{kib:016x}")
        store.publish(ds, None, {"created": "bench"}, ref, cfg)
        arr = zarr.open_group(ref.data_path, mode="r")["image"]
        idx = [np.sort(rng.choice(len(sub), 64, replace=False)) for _ in range(20)]
        batch_s, _ = _timed(lambda arr=arr, idx=idx: [arr.get_orthogonal_selection((i,)) for i in idx])
        shutil.rmtree(ref.path)
        print(f"| {kib} KiB | {s['rows']} | {s['files']} | {s['write']:.0f} | {s['load']:.0f} | "
              f"{s['load'] / raw['dec']:.2f} | {batch_s / 20 * 1000:.0f} |", flush=True)
    print(f"\nload average at the end: {os.getloadavg()[0]:.1f}")
    shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
