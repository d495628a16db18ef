"""The monitoring's cost on the training step itself (issue 14), side by side in one run: the real
step (``models.train.iterator_step`` over ``_step_function``, MNIST CNN, fp16, 2 Horovod ranks x 1
thread, batch 32 from a tf.data pipeline) in alternating blocks with the rank's
:class:`models.telemetry.Telemetry` off, on without a scheduler (trace spans and, on rank 0,
TensorBoard scalars only) and on reporting to a real scheduler (what a run does): for each such
block rank 0 starts ``dask scheduler --preload pipeline.monitor.preload`` with the settings
dcpipe's own schedulers use (``pipeline.cluster.IDLE_QUIET``) and stops it after, so the
scheduler's CPU is inside those blocks and no other.

    PYTHONPATH=$PWD .venv/bin/python bench/telemetry_step.py [--blocks 8] [--steps 120]

Rank 0 prints a Markdown table of the median step ms per block and mode and the ratios to "off"
within each block, and the median of those ratios.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MODES = ("off", "local", "scheduler")


def rank_main(args) -> None:
    import horovod.tensorflow as hvd
    import keras
    import numpy as np
    import tensorflow as tf

    from models import compression, networks, train
    from models.telemetry import Telemetry

    hvd.init()
    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    rank, size = hvd.rank(), hvd.size()
    rng = np.random.default_rng(rank)
    x = rng.integers(0, 256, (1024, 28, 28, 1), dtype=np.uint8)
    y = rng.integers(0, 10, 1024).astype(np.int32)
    batches = iter(tf.data.Dataset.from_tensor_slices((x, y)).repeat().batch(32, drop_remainder=True).prefetch(64))
    model = networks.build("cnn", (28, 28, 1), 10)
    optimizer = keras.optimizers.Adam(1e-3)
    optimizer.build(model.trainable_variables)
    train._broadcast_state(model, optimizer)
    compressor = compression.parse("fp16")
    compressor.build(model.trainable_variables)
    step = train.iterator_step(train._step_function(model, optimizer, compressor),
                               lambda b: tf.cast(b, tf.float32) / 255.0)
    tmp = Path(args.tmp)
    writer = tf.summary.create_file_writer(str(tmp / "tb" / f"rank{rank}")) if rank == 0 else None
    global_step = 0

    def block(mode: str, steps: int) -> float:
        nonlocal global_step
        scheduler = _start_scheduler(args.port) if mode == "scheduler" and rank == 0 else None
        telemetry = Telemetry(rank=rank, size=size, run_id="bench", span_dir=tmp / "trace",
                              address=f"tcp://127.0.0.1:{args.port}" if mode == "scheduler" else None,
                              steps_total=10**6, epochs=1, bytes_per_step=450_068, writer=writer,
                              learning_rate=lambda: optimizer.learning_rate, enabled=mode != "off")
        deadline = time.time() + 60
        while mode == "scheduler" and telemetry._client is None and time.time() < deadline:
            time.sleep(0.2)                   # the scheduler is up and this rank's client connected
        time.sleep(2)                         # start-up work done before the timed steps
        # Horovod: both ranks start the block's timed steps together.
        hvd.allreduce(tf.constant(0.0), name=f"block_start_{global_step}")
        times = []
        for _ in range(steps):
            t0 = time.perf_counter()
            loss, hits, n, waited, marks = step(batches)      # the loop of models.train.train
            float(waited)
            _ = (float(loss) * int(n), float(hits), int(n))
            global_step += 1
            telemetry.step(marks.numpy(), float(loss), global_step, 1)
            times.append(time.perf_counter() - t0)
        telemetry.close()
        # Horovod: the same block boundaries on both ranks.
        hvd.allreduce(tf.constant(0.0), name=f"block_end_{global_step}")
        if scheduler is not None:
            scheduler.terminate()
            scheduler.wait(timeout=30)
        return 1e3 * statistics.median(times)

    block("off", 10)                          # tracing
    rows = []
    for b in range(args.blocks):
        order = MODES if b % 2 == 0 else MODES[::-1]
        rows.append({mode: block(mode, args.steps) for mode in order})
    if rank == 0:
        print("| block | off ms | local ms | scheduler ms | local / off | scheduler / off |")
        print("|---:|---:|---:|---:|---:|---:|")
        for i, r in enumerate(rows):
            print(f"| {i + 1} | {r['off']:.2f} | {r['local']:.2f} | {r['scheduler']:.2f} | "
                  f"{r['local'] / r['off']:.3f} | {r['scheduler'] / r['off']:.3f} |")
        for mode in ("local", "scheduler"):
            print(f"\nmedian {mode} / off: {statistics.median(r[mode] / r['off'] for r in rows):.3f}")


def _start_scheduler(port: int) -> subprocess.Popen:
    from pipeline.cluster import IDLE_QUIET
    env = dict(os.environ)
    for key, value in IDLE_QUIET.items():      # dask config as environment variables
        env["DASK_" + key.upper().replace(".", "__").replace("-", "_")] = value
    return subprocess.Popen([str(Path(sys.executable).parent / "dask"), "scheduler", "--port", str(port),
                             "--host", "127.0.0.1", "--dashboard-address", "127.0.0.1:0",
                             "--preload", "pipeline.monitor.preload"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)


def driver_main(args) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        return subprocess.call([str(Path(sys.executable).parent / "horovodrun"), "-np", "2", "-H", "localhost:2",
                                "--gloo", sys.executable, __file__, "--rank", "--port", str(19786 + os.getpid() % 1000),
                                "--tmp", tmp, "--blocks", str(args.blocks), "--steps", str(args.steps)])


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--blocks", type=int, default=8)
    ap.add_argument("--steps", type=int, default=120)
    ap.add_argument("--rank", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--port", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--tmp", help=argparse.SUPPRESS)
    parsed = ap.parse_args()
    if parsed.rank:
        rank_main(parsed)
    else:
        sys.exit(driver_main(parsed))
