"""Benchmark `dcpipe predict`: Dask workers against one process's `model.predict` over the same array.

    PYTHONPATH=. .venv/bin/python bench/predict.py [--workdir W --run RUN] [--dataset mnist] [--workers 2]
                                                   [--repeats 3] [--batch-size 256]

Without ``--run`` it first prepares the embedded MNIST (5,000 real rows, one augmented copy of the
train split) and trains one epoch on 2 Horovod ranks in a temporary workdir (the figures are
throughput, not accuracy). Then, for the stored ``test`` split and for ``all`` of the version, side
by side in one run:

- single process: a subprocess reads the split's stored images into memory, loads the run's
  ``model.keras`` and times ``model.predict(x, batch_size)``, best of ``--repeats`` after one
  warm-up call; once with TensorFlow's default threads (its ops use every core) and once with one
  intra-op thread (one core: what each Dask worker's share is);
- Dask: a ``LocalCluster`` of ``--workers`` worker processes x 1 thread (dcpipe's default); the
  SavedModel is loaded on every worker first (``client.run``: what `dcpipe predict` pays once per
  worker), then the lazy probabilities of ``pipeline.predict.predictions`` (read from the Zarr store,
  ``serve`` per stored chunk) are computed, best of ``--repeats``. The Dask figure includes reading
  and decompressing the store; the single-process one starts from an array in memory.

Prints Markdown tables: samples/s of both and their ratio (the goal is at least 1.6x with 2 workers),
and the one-off costs (cluster start, model load per worker).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SPLITS = ("test", "all")


def stored_images(workdir: Path, dataset: str, split: str, x_var: str):
    """The split's stored model inputs as a NumPy array (the same samples both sides predict)."""
    from pipeline import store
    from pipeline.predict import _select
    ref = store.resolve_spec(workdir / "datasets", dataset)
    return _select(store.open_version(ref), ref.manifest(), split)[x_var]


def single_process(workdir: Path, run: str, dataset: str, split: str, repeats: int, batch_size: int,
                   threads: int = 0) -> dict:
    """Time ``model.predict`` in a fresh process (this process never imports TensorFlow); ``threads``
    TensorFlow intra-op threads, 0 for its default."""
    args = [sys.executable, __file__, "--single", "--workdir", str(workdir), "--run", run, "--dataset", dataset,
            "--split", split, "--repeats", str(repeats), "--batch-size", str(batch_size), "--threads", str(threads)]
    done = subprocess.run(args, cwd=REPO, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": str(REPO)},
                          capture_output=True, text=True, timeout=1800)
    if done.returncode != 0:
        raise SystemExit(f"single-process run failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _single_main(args) -> None:
    import keras
    import numpy as np
    import tensorflow as tf
    if args.threads:
        tf.config.threading.set_intra_op_parallelism_threads(args.threads)

    import models.networks  # noqa: F401  (registers the custom layers model.keras may hold)
    meta = json.loads((args.workdir / "runs" / args.run / "bundle" / "bundle.json").read_text())
    x = np.asarray(stored_images(args.workdir, args.dataset, args.split, meta["x_var"]).values)
    model = keras.models.load_model(args.workdir / "runs" / args.run / "model.keras", compile=False)
    model.predict(x[:args.batch_size], batch_size=args.batch_size, verbose=0)          # warm-up
    times = []
    for _ in range(args.repeats):
        t = time.perf_counter()
        model.predict(x, batch_size=args.batch_size, verbose=0)
        times.append(time.perf_counter() - t)
    print(json.dumps({"n": len(x), "seconds": min(times), "rate": len(x) / min(times)}))


def dask_workers(client, workdir: Path, run: str, dataset: str, split: str, repeats: int) -> dict:
    """Time the predictions of ``split`` on the client's cluster, the model already on every worker."""
    from pipeline.predict import _model, predictions
    from pipeline.serve.models import bundle_digest
    bundle = workdir / "runs" / run / "bundle"
    meta, digest = json.loads((bundle / "bundle.json").read_text()), bundle_digest(bundle)
    t = time.perf_counter()
    client.run(lambda: _model(str(bundle / "model"), digest) and None)
    load = time.perf_counter() - t
    source = stored_images(workdir, dataset, split, meta["x_var"]).to_dataset()
    probs = predictions(source, meta["x_var"], meta["n_classes"], str(bundle / "model"), digest)["probabilities"].data
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        probs.compute()
        times.append(time.perf_counter() - t)
    n = source.sizes["sample"]
    return {"n": n, "seconds": min(times), "rate": n / min(times), "load": load, "chunks": len(probs.chunks[0]),
            "chunk": max(probs.chunks[0])}


def train(folder: Path) -> tuple[Path, str]:
    """A run over the embedded MNIST (5,000 rows): 1 epoch, 2 ranks."""
    from pipeline.config import JobConfig
    from pipeline.job import run
    cfg = JobConfig.model_validate({"augment": {"copies": 1}, "train": {"epochs": 1, "batch_size": 64, "np": 2},
                                    "cluster": {"workers": 2, "dashboard_address": ":0"}})
    summary = run(cfg, workdir=folder / "work", log=lambda *_: None, show_progress=False)
    return folder / "work", summary["run_id"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--workdir", type=Path)
    ap.add_argument("--run")
    ap.add_argument("--dataset", default="mnist", help="NAME[@VERSION] (default: the latest mnist)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=256, help="model.predict's batch size")
    ap.add_argument("--single", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--split", help=argparse.SUPPRESS)
    ap.add_argument("--threads", type=int, default=0, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.single:
        return _single_main(args)
    from pipeline.cluster import dask_client
    from pipeline.config import ClusterConfig
    workdir, run = ((args.workdir, args.run) if args.run
                    else train(Path(tempfile.mkdtemp(prefix="dcpipe-bench-predict-"))))
    print(f"# bench/predict.py, {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, {platform.node()}, "
          f"{os.cpu_count()} cores, run {run}, dataset {args.dataset}\n")
    single = {split: single_process(workdir, run, args.dataset, split, args.repeats, args.batch_size)
              for split in SPLITS}
    one = {split: single_process(workdir, run, args.dataset, split, args.repeats, args.batch_size, threads=1)
           for split in SPLITS}
    t = time.perf_counter()
    with dask_client(ClusterConfig(workers=args.workers, dashboard_address=":0"), log=lambda *_: None) as client:
        started = time.perf_counter() - t
        spread = {split: dask_workers(client, workdir, run, args.dataset, split, args.repeats) for split in SPLITS}
    print(f"| split | samples | single process `model.predict` (batch {args.batch_size}), TF default threads | "
          f"the same, 1 TF thread | Dask, {args.workers} workers x 1 thread | Dask / single (default) | "
          "Dask / single (1 thread) |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for split in SPLITS:
        s, o, d = single[split], one[split], spread[split]
        print(f"| {split} | {d['n']} | {s['rate']:.0f}/s ({s['seconds']:.2f} s) | "
              f"{o['rate']:.0f}/s ({o['seconds']:.2f} s) | "
              f"{d['rate']:.0f}/s ({d['seconds']:.2f} s, {d['chunks']} chunks of <= {d['chunk']}) | "
              f"{d['rate'] / s['rate']:.2f}x | {d['rate'] / o['rate']:.2f}x |")
    print(f"\nOne-off costs: cluster start {started:.1f} s; SavedModel load on every worker "
          f"{spread['test']['load']:.1f} s (the second split found it loaded: {spread['all']['load']:.2f} s).")


if __name__ == "__main__":
    main()
