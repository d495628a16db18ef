"""Run by tests/models/test_train_step.py in a fresh process (thread counts are fixed at TF start):
a CNN training step fed from prefetched in-memory batches on one inter-op thread, as a rank runs.
Prints the median wait ``iterator_step`` reports and the median step time, in seconds, as JSON."""
import json
import time

import keras
import numpy as np
import tensorflow as tf

from models import networks, train


def main() -> None:
    tf.config.threading.set_inter_op_parallelism_threads(1)
    tf.config.threading.set_intra_op_parallelism_threads(1)
    model, optimizer = networks.build("cnn", (28, 28, 1), 10), keras.optimizers.Adam(1e-3)
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)

    @tf.function
    def step(x, y):
        with tf.GradientTape() as tape:
            loss = loss_fn(y, model(x, training=True))
        optimizer.apply_gradients(zip(tape.gradient(loss, model.trainable_variables), model.trainable_variables))
        return loss, tf.reduce_sum(tf.cast(y, tf.float32))

    rows = 64 * 30
    batches = tf.data.Dataset.from_tensor_slices((np.zeros((rows, 28, 28, 1), "float32"),
                                                  np.ones(rows, "int32"))).batch(64).prefetch(4)
    step_from, it = train.iterator_step(step), iter(batches)
    for _ in range(3):                                  # tracing
        step_from(it)
    waits, times = [], []
    for _ in range(20):
        t0 = time.perf_counter()
        waits.append(float(step_from(it)[3]))
        times.append(time.perf_counter() - t0)
    print(json.dumps({"wait": float(np.median(waits)), "step": float(np.median(times))}))


if __name__ == "__main__":
    main()
