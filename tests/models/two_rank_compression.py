"""Run by tests/models/test_compression.py under ``horovodrun -np 2 --gloo``: train a small
softmax regression with each compressor through models.train's step function and report, on
rank 0, the loss before and after and the largest weight difference between the ranks."""
import json
import sys

import keras
import numpy as np
import tensorflow as tf

from models import compression, train


def run(spec: str, rank: int) -> dict:
    import horovod.tensorflow as hvd
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(1)   # same problem on both ranks, different halves of it
    x = rng.standard_normal((512, 6, 6, 1)).astype("float32")
    w_true = rng.standard_normal((36, 4))
    y = np.argmax(x.reshape(512, -1) @ w_true, axis=1).astype("int32")
    x, y = x[rank::2], y[rank::2]
    model = keras.Sequential([keras.Input((6, 6, 1)), keras.layers.Flatten(), keras.layers.Dense(16),
                              keras.layers.Dense(4)])
    optimizer = keras.optimizers.Adam(0.02)
    optimizer.build(model.trainable_variables)
    compressor = compression.parse(spec)
    compressor.build(model.trainable_variables)
    train._broadcast_state(model, optimizer)
    step = train._step_function(model, optimizer, compressor)
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    before = float(loss_fn(y, model(x)))
    for _epoch in range(30):
        for i in range(0, 256, 32):
            step(tf.constant(x[i:i + 32]), tf.constant(y[i:i + 32]))
    after = float(loss_fn(y, model(x)))
    flat = tf.concat([tf.reshape(v.value, [-1]) for v in model.trainable_variables], 0)
    both = hvd.allgather(flat[None, :]).numpy()
    return {"before": before, "after": after, "max_rank_diff": float(np.max(np.abs(both[0] - both[1])))}


def main() -> None:
    import horovod.tensorflow as hvd
    hvd.init()
    tf.config.threading.set_intra_op_parallelism_threads(1)
    results = {spec: run(spec, hvd.rank()) for spec in sys.argv[2:]}
    if hvd.rank() == 0:
        with open(sys.argv[1], "w") as fh:
            json.dump(results, fh)


if __name__ == "__main__":
    main()
