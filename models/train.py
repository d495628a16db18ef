"""Data-parallel training of one rank; started by ``horovodrun`` (or ``srun``/``mpirun``).

The only module that calls Horovod; every call is marked ``# Horovod:``.
Run as ``python -m models.train PLAN.json``. A rank started early (``DCPIPE_EARLY_START=1``,
:class:`models.launch.EarlyRanks`) joins Horovod first and then waits for the plan file to exist.
"""
from __future__ import annotations

import json
import os
import socket
import sys
import threading
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import horovod.tensorflow as hvd  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from models import checkpoint, compression, data, export, lm, networks, transformer  # noqa: E402
from models.telemetry import Telemetry, hparams  # noqa: E402
from models.launch import (EARLY_ENV, RESTARTS_ENV, SUPERVISOR_HOST_ENV, SUPERVISOR_PID_ENV, cancel_path,  # noqa: E402
                           default_threads)
from models.supervise import process_alive  # noqa: E402
from models.plan import TrainPlan  # noqa: E402
from models.rundir import RunDir, atomic_path, atomic_write_text  # noqa: E402

#: exit code of a rank whose supervisor is gone
ORPHANED = 70
#: exit code of a rank that cannot train the plan as configured (sysexits' EX_CONFIG; ``run.rejected`` says why)
REJECTED_EXIT = 78
#: the epoch figures written to TensorBoard, those of the record that has them
EPOCH_SCALARS = ("train_loss", "train_accuracy", "val_loss", "val_accuracy", "train_token_accuracy",
                 "val_token_accuracy", "train_perplexity", "val_perplexity", "data_wait_ms_per_step")


def watch_supervisor(environ=os.environ, interval: float = 0.5, exit=os._exit) -> threading.Thread | None:
    """A daemon thread that ends this rank (``exit(ORPHANED)``, one line on stderr) once the process
    named by ``DCPIPE_SUPERVISOR_PID`` is gone; None when there is none to watch (not set, or set on
    another host: a remote rank is ended by its launcher)."""
    pid, host = environ.get(SUPERVISOR_PID_ENV), environ.get(SUPERVISOR_HOST_ENV)
    if not pid or (host and host != socket.gethostname()):
        return None

    def watch() -> None:
        while process_alive(int(pid)):
            time.sleep(interval)
        print(f"[rank] pid {os.getpid()}: supervisor {pid} is gone; exiting", file=sys.stderr, flush=True)
        exit(ORPHANED)

    thread = threading.Thread(target=watch, name="supervisor-watchdog", daemon=True)
    thread.start()
    return thread

HOROVOD_CODECS = {"none": hvd.Compression.none, "fp16": hvd.Compression.fp16}


class HorovodCollectives:
    """:class:`models.compression.Collectives` over Horovod."""

    def __init__(self):
        self.size = hvd.size()

    def allreduce_mean(self, tensor, name, compression=hvd.Compression.none):
        # Horovod: average a tensor over ranks (with ``compression``, Horovod's codec, on the wire).
        return hvd.allreduce(tensor, op=hvd.Average, name=name, compression=compression)

    def allgather(self, tensor, name):
        # Horovod: concatenate every rank's tensor along the first axis.
        return hvd.allgather(tensor, name=name)


def configure_devices(plan: TrainPlan) -> bool:
    """Pin one GPU per local rank and use mixed precision, or limit CPU threads. True on GPU."""
    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        # Horovod: pin one GPU per process, chosen by local rank.
        gpu = gpus[hvd.local_rank() % len(gpus)]
        tf.config.set_visible_devices(gpu, "GPU")
        tf.config.experimental.set_memory_growth(gpu, True)
        keras.mixed_precision.set_global_policy("mixed_float16")
        return True
    # Horovod: the ranks on this node share its cores (models.launch resolves a null setting the same way).
    threads = plan.threads_per_rank or default_threads(hvd.local_size())
    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(threads)
    return False


def _evaluate(model, ds) -> tuple[float, float]:
    """(loss, accuracy) over all ranks' rows: sums are allreduced, not per-rank means."""
    totals = np.zeros(3)
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction="sum")
    for x, y in ds:
        logits = model(x, training=False)
        totals += [float(loss_fn(y, logits)), float(np.sum(np.argmax(logits, -1) == y.numpy())), len(y)]
    # Horovod: sum loss, hits and counts over ranks.
    loss, hits, count = hvd.allreduce(tf.constant(totals), op=hvd.Sum, name="eval_totals").numpy()
    return loss / max(count, 1), hits / max(count, 1)


def _sum_over_ranks(values: np.ndarray, name: str) -> np.ndarray:
    """``values`` (e.g. a loss sum, hits, a count) summed over ranks."""
    # Horovod: sum over ranks.
    return hvd.allreduce(tf.constant(values), op=hvd.Sum, name=name).numpy()


def _train_figures(totals: np.ndarray, lm_step: lm.LMStep | None) -> dict[str, float]:
    """The epoch's training figures over all ranks: loss and accuracy (a classifier, from the loop's
    ``totals``), or loss, token accuracy and perplexity (a language model, from its step's sums)."""
    if lm_step is not None:
        return {f"train_{k}": v for k, v in lm.figures(_sum_over_ranks(lm_step.take_sums(), "train_totals")).items()}
    loss_sum, hits, count = _sum_over_ranks(totals, "train_totals")
    return {"train_loss": loss_sum / max(count, 1), "train_accuracy": hits / max(count, 1)}


def _eval_figures(model, ds, split: str, lm_eval, first_row: int) -> dict[str, float]:
    """``<split>_loss`` and ``<split>_accuracy`` (a classifier) or ``<split>_loss``,
    ``<split>_token_accuracy`` and ``<split>_perplexity`` (a language model), over all ranks."""
    if lm_eval is None:
        loss, accuracy = _evaluate(model, ds)
        return {f"{split}_loss": loss, f"{split}_accuracy": accuracy}
    figures = lm.evaluate(lm_eval, ds, first_row, _sum_over_ranks, f"{split}_totals")
    return {f"{split}_{k}": v for k, v in figures.items()}


def _shown(figures: dict, split: str, accuracy: str = "acc") -> str:
    """``val_acc 0.9731`` (a classifier) or ``val_ppl 41.20 val_token_acc 0.2210`` (a language model)."""
    if f"{split}_accuracy" in figures:
        return f"{split}_{accuracy} {figures[f'{split}_accuracy']:.4f}"
    return (f"{split}_ppl {figures[f'{split}_perplexity']:.2f}  "
            f"{split}_token_acc {figures[f'{split}_token_accuracy']:.4f}")


def _exchange_function(compressor: compression.Compressor):
    """local gradients -> gradients averaged over ranks, as :func:`_step_function` exchanges them."""
    comm = HorovodCollectives()
    if compressor.horovod_codec is None:
        return lambda local: compressor.exchange(local, comm)
    codec = HOROVOD_CODECS[compressor.horovod_codec]
    # Horovod: average each gradient over ranks with Horovod's codec on the wire, as
    # DistributedGradientTape does.
    return lambda local: [comm.allreduce_mean(g, f"grad_{i}", codec) for i, g in enumerate(local)]


def _optimizer(plan: TrainPlan, steps: int, size: int, on_gpu: bool):
    # Horovod: scale the learning rate by the number of ranks, reached after one epoch of warmup,
    # then cosine decay to zero.
    total = steps * plan.epochs
    warmup = min(steps, total // 2)
    schedule = keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=plan.learning_rate, warmup_target=plan.learning_rate * size,
        warmup_steps=warmup, decay_steps=max(total - warmup, 1))
    optimizer = keras.optimizers.Adam(learning_rate=schedule)
    return keras.optimizers.LossScaleOptimizer(optimizer) if on_gpu else optimizer


def _step_function(model, optimizer, compressor: compression.Compressor):
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    exchange = _exchange_function(compressor)
    variables = model.trainable_variables

    @tf.function
    def step(x, y):
        with tf.GradientTape() as tape:
            logits = model(x, training=True)
            loss = loss_fn(y, logits)
            scaled = optimizer.scale_loss(loss)
        # Gradients w.r.t. the tf.Variables under Keras 3's variables (see stack.md); an embedding's
        # sparse gradient is exchanged dense.
        local = [_dense(g) for g in tape.gradient(scaled, [v.value for v in variables])]
        with tf.control_dependencies(local):
            computed = tf.timestamp()      # the last local gradient is ready
        grads = exchange(local)            # written out, not DistributedGradientTape, so it can be timed
        with tf.control_dependencies(grads):
            exchanged = tf.timestamp()     # every averaged gradient is back
        with tf.control_dependencies([exchanged]):
            optimizer.apply_gradients(zip(grads, variables))
        done = tf.timestamp()              # stateful ops run in program order: after the update
        hits = tf.reduce_sum(tf.cast(tf.equal(tf.argmax(logits, -1, output_type=tf.int32), y), tf.float32))
        return loss, hits, computed, exchanged, done

    return step


def iterator_step(step, decode=tf.identity):
    """``step`` fed by ``next(iterator)`` inside the graph, as Keras feeds its train function: no
    Python round trip per batch (measured: a loader-fed step went from 1.07x to 1.04x the time of
    one on cached tensors). ``decode`` turns a batch as stored into the model's input there
    (:meth:`models.data.ZarrLoader.decode`). Also returns the batch's size and the seconds spent
    waiting for it, and, when ``step`` returns its timestamps (:func:`_step_function`), the step's
    five wall-clock marks: start, batch arrived, local gradients ready, exchanged, applied."""

    @tf.function
    def step_from(iterator):
        started = tf.timestamp()
        with tf.control_dependencies([started]):
            x, y = next(iterator)
        with tf.control_dependencies([x, y]):
            waited = tf.timestamp() - started
        # The step's ops wait for the second timestamp, so it is taken as the batch arrives, not
        # queued behind the step's compute (which inflated the wait 40x on one inter-op thread).
        with tf.control_dependencies([waited]):
            x, y = tf.identity(x), tf.identity(y)
        loss, hits, *marks = step(decode(x), y)
        out = (loss, hits, tf.shape(y)[0], waited)
        return out + (tf.stack([started, started + waited, *marks]),) if marks else out

    return step_from


def _dense(grad):
    """An embedding's gradient (``tf.IndexedSlices``) as a dense tensor, for the compressors."""
    return tf.convert_to_tensor(grad) if isinstance(grad, tf.IndexedSlices) else grad


def _broadcast_state(model, optimizer) -> None:
    # Horovod: start every rank from rank 0's weights and optimizer state.
    hvd.broadcast_variables([v.value for v in model.variables], root_rank=0)
    hvd.broadcast_variables([v.value if hasattr(v, "value") else v for v in optimizer.variables], root_rank=0)


def _restore(plan: TrainPlan, model, optimizer, rank: int, size: int, log) -> checkpoint.Position:
    """Rank 0 loads the run's last checkpoint (if resuming); every rank learns the position."""
    position = np.zeros(3, np.int64)
    if plan.resume and rank == 0:
        path = checkpoint.latest(Path(plan.run_dir))
        if path is None:
            log(f"[train] no checkpoint in {checkpoint.folder(Path(plan.run_dir))}: starting from scratch")
        else:
            pos = checkpoint.restore(path, model, optimizer, world=size)
            position[:] = (pos.epoch, pos.batches_consumed, pos.global_step)
            log(f"[train] resumed from {path.name}: epoch {pos.epoch + 1}, {pos.batches_consumed} batches "
                f"of it done, at {size} ranks")
    # Horovod: every rank continues from rank 0's position.
    position = hvd.broadcast(tf.constant(position), root_rank=0, name="resume_position").numpy()
    return checkpoint.Position(*(int(v) for v in position))


def train(plan: TrainPlan) -> dict | None:
    """Train, evaluate and (on rank 0) checkpoint and export; rank 0 returns the metrics."""
    if not hvd.is_initialized():   # an early rank has joined already (main)
        watch_supervisor()
        # Horovod: initialise before touching devices.
        hvd.init()
    # Horovod: rank and world size.
    rank, size = hvd.rank(), hvd.size()
    on_gpu = configure_devices(plan)
    keras.utils.set_random_seed(plan.seed)
    run = RunDir(Path(plan.run_dir))
    run_dir = run.path
    log = (lambda *a: print(*a, flush=True)) if rank == 0 else (lambda *a: None)

    objective = plan.train.objective
    pretraining = lm.is_lm(objective)
    y_var = "segment" if pretraining else "label"     # a language model reads the packed documents' ids
    loader = data.ZarrLoader(data.LoaderSpec.from_train(
        plan.train, store=plan.store, split_range=tuple(plan.ranges["train"]), seed=plan.seed, rank=rank,
        world=size, x_var=plan.x_var, y_var=y_var))
    steps = loader.steps_per_epoch
    if steps == 0:
        raise SystemExit(f"train split too small: {plan.ranges['train']} gives fewer than batch "
                         f"{plan.batch_size} samples per rank; lower train.batch_size or --np")
    evals = {split: data.eval_dataset(plan.store, tuple(plan.ranges[split]), rank, size, batch_size=lm.EVAL_BATCH,
                                      x_var=plan.x_var, y_var=y_var) for split in ("val", "test")}
    first_rows = {split: data.eval_range(tuple(plan.ranges[split]), rank, size)[0] for split in evals}

    model = _network(plan, run, rank)
    optimizer = _optimizer(plan, steps, size, on_gpu)
    optimizer.build(model.trainable_variables)
    compressor = compression.parse(plan.compression)
    compressor.build(model.trainable_variables)
    position = _restore(plan, model, optimizer, rank, size, log)
    initialised = lm.init_body(plan, model, bool(position.global_step), rank, log)   # before the broadcast
    _broadcast_state(model, optimizer)
    if initialised and initialised["loaded"]:   # every rank says which body it starts from, after the broadcast
        print(f"[rank {rank}/{size}] initial body sha256 {lm.body_digest(model)}", flush=True)
    lm_step = lm.LMStep(model, optimizer, _exchange_function(compressor), objective, plan.seed) if pretraining else None
    lm_eval = lm.eval_function(model, objective, plan.seed) if pretraining else None
    step = iterator_step(lm_step or _step_function(model, optimizer, compressor), loader.decode)
    shapes = [tuple(v.shape) for v in model.trainable_variables]
    bytes_per_step = compressor.bytes_per_step(shapes)
    # A readable TensorBoard run name: <run id>/tensorboard/<network>-<compression>-<N>ranks.
    tb_name = f"{plan.network}-{plan.compression.replace(':', '')}-{size}ranks"
    writer = tf.summary.create_file_writer(str(run.tensorboard / tb_name)) if rank == 0 else None
    telemetry = Telemetry.from_env(rank=rank, size=size, run_dir=run_dir, steps_total=steps * plan.epochs,
                                   epochs=plan.epochs, bytes_per_step=bytes_per_step, writer=writer,
                                   learning_rate=lambda: optimizer.learning_rate)
    if writer is not None:
        hparams(writer, {"network": plan.network, "compression": plan.compression, "ranks": size,
                         "dataset_version": plan.dataset_version}, telemetry.run_id)

    # Every rank says where it runs (one line each, in train.log): placement is what a launch gets wrong.
    # Horovod: local rank, the rank's index on its node.
    print(f"[rank {rank}/{size}] host {socket.gethostname()}, local rank {hvd.local_rank()}, "
          f"{'GPU' if on_gpu else 'CPU'}, {steps * plan.batch_size} samples/epoch from the train split", flush=True)
    log(f"[train] {size} rank(s) on {'GPU' if on_gpu else 'CPU'}, {plan.network}, {steps} steps/epoch of "
        f"{plan.batch_size} per rank, compression {plan.compression} ({bytes_per_step:,} bytes/step/rank), "
        f"{plan.logical_shards} logical shards")
    history = [h for h in _previous_history(run) if h["epoch"] <= position.epoch] if position.global_step else []
    global_step, t_train = position.global_step, time.perf_counter()
    timeline = {"train_start": time.time()}   # wall clock, for the run's time breakdown
    telemetry.phase("training")
    batches = iter(loader.stream(position.epoch, position.batches_consumed, plan.epochs))   # exactly the steps left
    for epoch in range(position.epoch, plan.epochs):
        consumed = position.batches_consumed if epoch == position.epoch else 0
        left = loader.steps_left(consumed)
        t0, totals, waits = time.perf_counter(), np.zeros(3), []
        for s in range(left):
            loss, hits, n, waited, marks = step(batches)
            waits.append(float(waited))
            totals += (float(loss) * int(n), float(hits), int(n))
            global_step += 1
            telemetry.step(marks.numpy(), float(loss), global_step, epoch + 1)
            if plan.checkpoint_every and (s + 1) % plan.checkpoint_every == 0 and s + 1 < left and rank == 0:
                # Horovod: only rank 0 writes checkpoints.
                with telemetry.span("checkpoint"):
                    checkpoint.save(run_dir, model, optimizer,
                                    checkpoint.Position(epoch, consumed + (s + 1) * size, global_step))
        steps_seconds = time.perf_counter() - t0
        figures = _train_figures(totals, lm_step)     # summed over ranks
        with telemetry.span("validation"):
            figures |= _eval_figures(model, evals["val"], "val", lm_eval, first_rows["val"])
        seconds = time.perf_counter() - t0
        record = {"epoch": epoch + 1, **figures, "seconds": seconds, "steps": len(waits),
                  "steps_seconds": steps_seconds,
                  "data_wait_seconds": float(np.sum(waits)),
                  "data_wait_ms_per_step": 1e3 * float(np.mean(waits)) if waits else 0.0}
        history.append(record)
        # the live monitor's accuracy column: a language model's is its validation token accuracy
        telemetry.epoch_end({"val_accuracy": record.get("val_token_accuracy"), **record})
        log(f"[train] epoch {epoch + 1}/{plan.epochs}  loss {record['train_loss']:.4f}  val_loss "
            f"{record['val_loss']:.4f}  {_shown(record, 'val')}  {seconds:.1f}s (data wait "
            f"{record['data_wait_ms_per_step']:.2f} ms/step)")
        if rank == 0:
            # Horovod: only rank 0 writes checkpoints and TensorBoard events.
            # History first: a resume keeps only the records of the epochs its checkpoint finished.
            atomic_write_text(run.history, json.dumps(history, indent=2) + "\n")
            with telemetry.span("checkpoint"):
                checkpoint.save(run_dir, model, optimizer, checkpoint.Position(epoch + 1, 0, global_step))
            with writer.as_default(step=epoch + 1):
                for key in [k for k in EPOCH_SCALARS if k in record]:
                    tf.summary.scalar(key, record[key])
            writer.flush()
    loader.close()
    train_seconds = time.perf_counter() - t_train
    timeline["train_end"] = time.time()
    telemetry.phase("evaluation")
    with telemetry.span("evaluation"):
        test = _eval_figures(model, evals["test"], "test", lm_eval, first_rows["test"])
    timeline["eval_end"] = time.time()
    log(f"[train] test_loss {test['test_loss']:.4f}  {_shown(test, 'test', 'accuracy')}")
    if rank != 0:
        telemetry.close()
        return None
    telemetry.phase("export")
    with telemetry.span("export"), atomic_path(run.model) as path:
        model.save(path)
    bundle, bundle_note = str(run.bundle), None
    if pretraining:
        bundle, bundle_note = None, (f"no serving bundle: a {objective} pretraining run predicts tokens, not the "
                                     "dataset's labels; fine-tune it (train.init_from) and serve that run")
    else:
        with telemetry.span("export"), atomic_path(run.bundle) as path:  # the one SavedModel export: bundle/model
            export.write_bundle(model, plan, path)
    timeline["export_end"] = time.time()
    telemetry.close()
    writer.close()   # the last step scalars, written by the telemetry's thread as it closed
    metrics = {"world_size": size, "compression": plan.compression, "device": "GPU" if on_gpu else "CPU",
               "network": plan.network, "attention": transformer.attention_of(model),
               "steps_per_epoch": steps, "global_batch": plan.batch_size * size,
               "bytes_per_step": bytes_per_step, "resumed_from_step": position.global_step,
               "logical_shards": plan.logical_shards, "restarts": json.loads(os.environ.get(RESTARTS_ENV, "[]")),
               "objective": objective, "init_from": initialised,
               "test_accuracy": None, **test,          # test_accuracy: a classifier's only (None for a language model)
               "train_seconds": train_seconds, "bundle": bundle, "bundle_note": bundle_note,
               "history": history, "timeline": timeline}
    atomic_write_text(run.metrics, json.dumps(metrics, indent=2) + "\n")
    return metrics


def _previous_history(run: RunDir) -> list[dict]:
    return json.loads(run.history.read_text()) if run.history.is_file() else []


def _network(plan: TrainPlan, run: RunDir, rank: int) -> keras.Model:
    """The plan's network. One that cannot take the input is a config error: every rank writes the same
    one-line reason to ``run.rejected`` and exits, and the launcher does not restart them
    (``models.launch.PlanRejected``). Checked here, where TensorFlow is imported anyway, not in the
    driver: the driver's own import cost the 2-core main job about 4 s (bench/RESULTS.md, issue 18)."""
    try:
        if lm.is_lm(plan.train.objective):
            return lm.build(plan.train.objective, plan.input_shape, plan.vocab_size)
        return networks.build(plan.network, tuple(plan.input_shape), plan.n_classes, vocab_size=plan.vocab_size,
                              causal=plan.causal)
    except ValueError as exc:
        reason = (f"train.network: {plan.network} cannot take inputs of shape {list(plan.input_shape)} "
                  f"({str(exc).splitlines()[0]}); choose another train.network")
        atomic_write_text(run.rejected, json.dumps({"error": reason}) + "\n")
        print(f"[rank {rank}] {reason}", flush=True)
        raise SystemExit(REJECTED_EXIT) from None


def wait_for_plan(path: Path, interval: float = 0.05) -> bool:
    """Wait until the plan at ``path`` exists (True) or its cancel file does (False, ``models.launch.cancel_path``)."""
    cancel = cancel_path(path)
    while not path.exists():
        if cancel.exists():
            return False
        time.sleep(interval)
    return True


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m models.train PLAN.json", file=sys.stderr)
        return 2
    plan_path = Path(argv[0])
    if os.environ.get(EARLY_ENV) == "1":   # started while the data is prepared: join, then wait for the plan
        watch_supervisor()
        # Horovod: initialise (every rank of the launch joins here) while the plan is not yet written.
        hvd.init()
        if not wait_for_plan(plan_path):
            print(f"[rank {hvd.rank()}] {cancel_path(plan_path).name}: the run was cancelled before "
                  "training; exiting", flush=True)
            return 0
    train(TrainPlan.load(plan_path))
    return 0


def exit_now(code: int) -> None:
    """End the rank with ``code``, its work written: Horovod shut down (what its ``atexit`` hook
    does), the streams flushed, and no interpreter teardown, which with TensorFlow loaded took
    0.95 s of every run's critical path on the 2-core main job (bench/RESULTS.md, issue 18). Every
    file a rank writes is closed by then (``atomic_write_text``, checkpoints, the TensorBoard writer)."""
    if hvd.is_initialized():
        hvd.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    exit_now(main())
