"""Data-parallel training of one rank; started by ``horovodrun`` (or ``srun``/``mpirun``).

The only module that calls Horovod. Run as ``python -m models.train PLAN.json``.
"""
from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import horovod.tensorflow as hvd  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from models import data, networks  # noqa: E402
from models.plan import TrainPlan  # noqa: E402

COMPRESSION = {"none": hvd.Compression.none, "fp16": hvd.Compression.fp16}


def configure_devices(plan: TrainPlan) -> bool:
    """Pin one GPU per local rank and use mixed precision, or limit CPU threads. True on GPU."""
    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        # Horovod: pin one GPU per process, chosen by local rank.
        tf.config.set_visible_devices(gpus[hvd.local_rank() % len(gpus)], "GPU")
        tf.config.experimental.set_memory_growth(gpus[hvd.local_rank() % len(gpus)], True)
        keras.mixed_precision.set_global_policy("mixed_float16")
        return True
    tf.config.threading.set_intra_op_parallelism_threads(plan.threads_per_rank)
    tf.config.threading.set_inter_op_parallelism_threads(plan.threads_per_rank)
    return False


def _evaluate(model, ds) -> tuple[float, float]:
    """(loss, accuracy) over all ranks' shards: sums are allreduced, not per-rank means."""
    totals = np.zeros(3)
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction="sum")
    for x, y in ds:
        logits = model(x, training=False)
        totals += [float(loss_fn(y, logits)), float(np.sum(np.argmax(logits, -1) == y.numpy())), len(y)]
    # Horovod: sum loss, hits and counts over ranks.
    loss, hits, count = hvd.allreduce(tf.constant(totals), op=hvd.Sum).numpy()
    return loss / max(count, 1), hits / max(count, 1)


def train(plan: TrainPlan) -> dict | None:
    """Train, evaluate and (on rank 0) checkpoint and export; rank 0 returns the metrics."""
    # Horovod: initialise before touching devices.
    hvd.init()
    rank, size = hvd.rank(), hvd.size()
    on_gpu = configure_devices(plan)
    keras.utils.set_random_seed(plan.seed)
    run_dir = Path(plan.run_dir)
    log = (lambda *a: print(*a, flush=True)) if rank == 0 else (lambda *a: None)

    shards = {s: data.shard_of(tuple(plan.ranges[s]), rank, size) for s in ("train", "val", "test")}
    x_train, y_train = data.read_shard(plan.store, shards["train"])
    steps = shards["train"].size // plan.batch_size
    if steps == 0:
        raise SystemExit(f"train split too small: {shards['train'].size} samples per rank < batch "
                         f"{plan.batch_size}; lower train.batch_size or train.np")
    train_ds = data.train_dataset(x_train, y_train, plan.batch_size, plan.shuffle_buffer, plan.seed + rank)
    val_ds = data.eval_dataset(*data.read_shard(plan.store, shards["val"]), 256)
    test_ds = data.eval_dataset(*data.read_shard(plan.store, shards["test"]), 256)

    model = networks.build(plan.network, tuple(plan.image_shape), plan.n_classes)
    # Horovod: scale the learning rate by the number of ranks, reached after one epoch of warmup,
    # then cosine decay to zero.
    total = steps * plan.epochs
    schedule = keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=plan.learning_rate, warmup_target=plan.learning_rate * size,
        warmup_steps=min(steps, total // 2), decay_steps=max(total - min(steps, total // 2), 1))
    optimizer = keras.optimizers.Adam(learning_rate=schedule)
    if on_gpu:  # mixed precision: scale the loss so fp16 gradients do not underflow
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    model.compile(optimizer=optimizer, loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    optimizer.build(model.trainable_variables)
    # Horovod: start every rank from rank 0's weights and optimizer state.
    hvd.broadcast_variables([v.value for v in model.variables], root_rank=0)
    hvd.broadcast_variables([v.value for v in optimizer.variables], root_rank=0)
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    compression = COMPRESSION[plan.compression]

    @tf.function
    def step(x, y):
        with tf.GradientTape() as tape:
            loss = loss_fn(y, model(x, training=True))
            scaled = optimizer.scale_loss(loss)
        # Horovod: allreduce the gradients, compressed on the wire.
        tape = hvd.DistributedGradientTape(tape, compression=compression)
        grads = tape.gradient(scaled, [v.value for v in model.trainable_variables])
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        return loss

    log(f"[train] {size} rank(s) on {'GPU' if on_gpu else 'CPU'}, {steps} steps/epoch of "
        f"{plan.batch_size} per rank, compression {plan.compression}")
    history, t_train = [], time.perf_counter()
    ckpt_dir = run_dir / "checkpoints"
    for epoch in range(plan.epochs):
        t0, losses, wait = time.perf_counter(), [], 0.0
        it = iter(train_ds)
        for _ in range(steps):
            t_wait = time.perf_counter()
            x, y = next(it)
            wait += time.perf_counter() - t_wait
            losses.append(float(step(x, y)))
        # Horovod: average the epoch's training loss over ranks.
        train_loss = float(hvd.allreduce(tf.constant(np.mean(losses)), op=hvd.Average))
        val_loss, val_acc = _evaluate(model, val_ds)
        seconds = time.perf_counter() - t0
        history.append({"epoch": epoch + 1, "train_loss": train_loss, "val_loss": val_loss,
                        "val_accuracy": val_acc, "seconds": seconds, "data_wait_seconds": wait})
        log(f"[train] epoch {epoch + 1}/{plan.epochs}  loss {train_loss:.4f}  val_loss {val_loss:.4f}  "
            f"val_acc {val_acc:.4f}  {seconds:.1f}s (data wait {wait:.2f}s)")
        if rank == 0:  # Horovod: only rank 0 writes checkpoints.
            ckpt_dir.mkdir(parents=True, exist_ok=True)
            model.save(ckpt_dir / f"epoch-{epoch + 1:03d}.keras")
    train_seconds = time.perf_counter() - t_train
    test_loss, test_acc = _evaluate(model, test_ds)
    log(f"[train] test_loss {test_loss:.4f}  test_accuracy {test_acc:.4f}")
    if rank != 0:
        return None
    model.save(run_dir / "model.keras")
    model.export(str(run_dir / "saved_model"), verbose=False)
    metrics = {"world_size": size, "compression": plan.compression, "device": "GPU" if on_gpu else "CPU",
               "steps_per_epoch": steps, "global_batch": plan.batch_size * size,
               "test_loss": test_loss, "test_accuracy": test_acc, "train_seconds": train_seconds,
               "history": history}
    (run_dir / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    return metrics


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m models.train PLAN.json", file=sys.stderr)
        return 2
    train(TrainPlan.load(Path(argv[0])))
    return 0


if __name__ == "__main__":
    sys.exit(main())
