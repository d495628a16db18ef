"""What timing the gradient exchange costs (issue 14): the training step as it was
(``hvd.DistributedGradientTape``) against the step now (``models.train._step_function``: the
same per-tensor Horovod allreduce written out, with the tf.timestamp marks), on the MNIST CNN,
fp16, 2 ranks, one thread each, batch 32 of random images, alternating blocks.

    PYTHONPATH=$PWD nice -n 10 .venv/bin/horovodrun -np 2 -H localhost:2 --gloo \
        .venv/bin/python bench/exchange_split.py [--blocks 6] [--steps 40]

Rank 0 prints a Markdown table: median step ms per block and the ratio now / before.
"""
from __future__ import annotations

import argparse
import statistics
import time

import horovod.tensorflow as hvd
import keras
import numpy as np
import tensorflow as tf

from models import compression, networks, train


def before(model, optimizer):
    """The step before issue 14: the exchange inside ``DistributedGradientTape.gradient``."""
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    variables = model.trainable_variables

    @tf.function
    def step(x, y):
        with tf.GradientTape() as tape:
            loss = loss_fn(y, model(x, training=True))
        tape = hvd.DistributedGradientTape(tape, compression=hvd.Compression.fp16, sparse_as_dense=True)
        optimizer.apply_gradients(zip(tape.gradient(loss, [v.value for v in variables]), variables))
        return loss

    return step


def block(step, x, y, steps: int) -> float:
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        out = step(x, y)
        float(out[0] if isinstance(out, tuple) else out)
        times.append(time.perf_counter() - t0)
    return 1e3 * statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--blocks", type=int, default=6)
    ap.add_argument("--steps", type=int, default=40)
    args = ap.parse_args()
    hvd.init()
    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    rng = np.random.default_rng(hvd.rank())
    x = tf.constant(rng.random((32, 28, 28, 1), dtype=np.float32))
    y = tf.constant(rng.integers(0, 10, 32).astype("int32"))
    steps = {}
    for name in ("before", "now"):
        model = networks.build("cnn", (28, 28, 1), 10)
        optimizer = keras.optimizers.Adam(1e-3)
        optimizer.build(model.trainable_variables)
        train._broadcast_state(model, optimizer)
        steps[name] = before(model, optimizer) if name == "before" else \
            train._step_function(model, optimizer, compression.parse("fp16"))
        block(steps[name], x, y, 5)                      # tracing
    rows = []
    for b in range(args.blocks):
        order = ("before", "now") if b % 2 == 0 else ("now", "before")
        rows.append({name: block(steps[name], x, y, args.steps) for name in order})
    if hvd.rank() == 0:
        print("| block | before ms | now ms | now / before |\n|---:|---:|---:|---:|")
        for i, r in enumerate(rows):
            print(f"| {i + 1} | {r['before']:.2f} | {r['now']:.2f} | {r['now'] / r['before']:.3f} |")
        print(f"\nmedian ratio now / before: {statistics.median(r['now'] / r['before'] for r in rows):.3f}")


if __name__ == "__main__":
    main()
