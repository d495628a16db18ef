"""One rank of the scaling benchmark (run by bench/training.py, under horovodrun or alone): time
training steps of the CNN fed by the Zarr loader through models.train's step function.

    train_rank.py STORE START STOP STEPS BATCH OUT.json [COMPRESSION]
"""
import json
import sys
import time

import horovod.tensorflow as hvd
import keras
import tensorflow as tf

from models import compression, data, networks, train
from models.config import TrainConfig


def main(store: str, start: int, stop: int, steps: int, batch: int, out: str, spec: str = "none") -> None:
    hvd.init()
    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    loader = data.ZarrLoader(data.LoaderSpec.from_train(TrainConfig(batch_size=batch, read_threads=1), store=store,
                                                        split_range=(start, stop), seed=0, rank=hvd.rank(),
                                                        world=hvd.size()))
    model = networks.build("cnn", (28, 28, 1), 10)
    optimizer = keras.optimizers.Adam(1e-3)
    optimizer.build(model.trainable_variables)
    compressor = compression.parse(spec)
    compressor.build(model.trainable_variables)
    train._broadcast_state(model, optimizer)
    step = train.iterator_step(train._step_function(model, optimizer, compressor), loader.decode)
    batches = iter(loader.stream(0, 0, 100))
    for _ in range(5):                       # warm up: tracing, first reads
        step(batches)
    t0 = time.perf_counter()
    for _ in range(steps):
        loss, *_ = step(batches)
    float(loss)
    seconds = time.perf_counter() - t0
    if hvd.rank() == 0:
        with open(out, "w") as fh:
            json.dump({"world": hvd.size(), "seconds": seconds,
                       "samples_per_s": steps * batch * hvd.size() / seconds}, fh)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), sys.argv[6],
         *sys.argv[7:8])
