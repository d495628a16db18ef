"""Language-model pretraining on a packed text store: the model, the step and the evaluation.

:mod:`models.train` runs these when ``train.objective`` is ``causal_lm`` or ``masked_lm``: the
ranks read ``(tokens, segment)`` batches from the same :class:`models.data.ZarrLoader` (``y_var:
segment``), with the same sharding, shuffling, resumable position, checkpoints and gradient
exchange as a classifier. This module makes no collective call itself: the gradient exchange and
the sum over ranks are passed in by :mod:`models.train`, the one module that calls Horovod.

- the step (:class:`LMStep`) returns what :func:`models.train._step_function` returns, ``(loss,
  hits, computed, exchanged, done)``, with ``loss`` the rank's mean loss over its weighted
  positions and ``hits`` its correctly predicted tokens; it also adds (loss sum, hits, weights)
  to per-epoch sums, divided only after they are summed over ranks;
- ``masked_lm`` masks with a stateless seed ``(run seed, global step)`` (the optimizer's iteration
  count, restored with a checkpoint): every rank and every retry of a step masks the same positions;
- :func:`evaluate` gives loss, token accuracy and perplexity over all ranks' sequences.

A pretrained model's body starts a fine-tuning run (``train.init_from``) through :func:`init_body`
(rank 0, before the broadcast).

>>> figures(np.array([6.0, 3.0, 4.0]))["token_accuracy"]
0.75
"""
from __future__ import annotations

import hashlib
from collections.abc import Callable

import numpy as np
import tensorflow as tf

from models import objectives, transformer

LM_OBJECTIVES = ("causal_lm", "masked_lm")
#: the evaluation batch (sequences per batch on one rank)
EVAL_BATCH = 256

#: (values, name) -> the values summed over ranks (``models.train._sum_over_ranks``)
SumOverRanks = Callable[[np.ndarray, str], np.ndarray]


def is_lm(objective: str) -> bool:
    """True for a pretraining objective (``causal_lm``, ``masked_lm``)."""
    return objective in LM_OBJECTIVES


def build(objective: str, input_shape, vocab_size: int):
    """The language model of ``objective`` over sequences of ``input_shape[0]`` tokens: inputs
    ``[tokens, segment]``, logits over the vocabulary at every position."""
    if not is_lm(objective):
        raise ValueError(f"train.objective: {objective} is not a language-model objective; choose one of "
                         f"{', '.join(LM_OBJECTIVES)}")
    return transformer.build(objective, vocab_size, int(input_shape[0]))


def batch(objective: str, tokens, segment, seed):
    """``(inputs, targets, weights)`` of ``objective`` for a batch; ``seed`` (a pair) masks ``masked_lm``."""
    if objective == "causal_lm":
        return objectives.causal_lm_batch(tokens, segment)
    return objectives.masked_lm_batch(tokens, segment, seed)


def step_seed(seed: int, step) -> tf.Tensor:
    """The stateless seed pair of a training step: ``(run seed, global step)``."""
    return tf.stack([tf.constant(seed, tf.int64), tf.cast(step, tf.int64)])


def figures(totals: np.ndarray) -> dict[str, float]:
    """``loss``, ``token_accuracy``, ``perplexity`` from (loss sum, hits, weights) summed over ranks."""
    loss_sum, hits, count = (float(v) for v in totals)
    loss = loss_sum / max(count, 1.0)
    return {"loss": loss, "token_accuracy": hits / max(count, 1.0), "perplexity": objectives.perplexity(loss)}


class LMStep:
    """One training step of a language model, for :func:`models.train.iterator_step`.

    ``exchange`` maps the rank's local gradients to the averaged ones (the run's compression on
    the wire); ``sums`` holds this rank's (loss sum, hits, weights) since :meth:`take_sums`.
    """

    def __init__(self, model, optimizer, exchange: Callable[[list], list], objective: str, seed: int):
        self.model, self.optimizer, self.exchange = model, optimizer, exchange
        self.objective, self.seed = objective, seed
        self.variables = model.trainable_variables
        self.sums = tf.Variable(tf.zeros(3, tf.float64), trainable=False, name="lm_epoch_sums")

    def __call__(self, tokens, segment):
        seed = step_seed(self.seed, self.optimizer.iterations)     # the global step, before this update
        inputs, targets, weights = batch(self.objective, tokens, segment, seed)
        with tf.GradientTape() as tape:
            logits = self.model(list(inputs), training=True)
            total, count = objectives.loss_sum(logits, targets, weights)
            loss = total / tf.maximum(count, 1.0)
            scaled = self.optimizer.scale_loss(loss)
        local = [_dense(g) for g in tape.gradient(scaled, [v.value for v in self.variables])]
        with tf.control_dependencies(local):
            computed = tf.timestamp()      # the last local gradient is ready
        grads = self.exchange(local)
        with tf.control_dependencies(grads):
            exchanged = tf.timestamp()     # every averaged gradient is back
        with tf.control_dependencies([exchanged]):
            self.optimizer.apply_gradients(zip(grads, self.variables))
        done = tf.timestamp()              # stateful ops run in program order: after the update
        hits = objectives.hits(logits, targets, weights)
        self.sums.assign_add(tf.cast(tf.stack([total, hits, count]), tf.float64))
        return loss, hits, computed, exchanged, done

    def take_sums(self) -> np.ndarray:
        """This rank's (loss sum, hits, weights) since the last call; the sums start again at 0."""
        out = self.sums.numpy().copy()
        self.sums.assign(tf.zeros(3, tf.float64))
        return out


def _dense(grad):
    """An embedding's gradient (``tf.IndexedSlices``) as a dense tensor, for the compressors."""
    return tf.convert_to_tensor(grad) if isinstance(grad, tf.IndexedSlices) else grad


def eval_function(model, objective: str, seed: int):
    """``(tokens, segment, first_row) -> (loss sum, hits, weights)`` of one evaluation batch;
    ``masked_lm`` masks with the seed ``(seed, -1 - first_row)``, never a training step's."""

    @tf.function
    def totals(tokens, segment, first_row):
        inputs, targets, weights = batch(objective, tokens, segment, step_seed(seed, -1 - first_row))
        logits = model(list(inputs), training=False)
        total, count = objectives.loss_sum(logits, targets, weights)
        return tf.cast(tf.stack([total, objectives.hits(logits, targets, weights), count]), tf.float64)

    return totals


def evaluate(totals_of, ds, first_row: int, sum_over_ranks: SumOverRanks, name: str) -> dict[str, float]:
    """:func:`figures` over every rank's sequences of an evaluation split; ``ds`` holds this rank's
    ``(tokens, segment)`` batches of :data:`EVAL_BATCH`, from row ``first_row`` of the store on."""
    totals = np.zeros(3)
    for i, (tokens, segment) in enumerate(ds):
        totals += totals_of(tokens, segment, tf.constant(first_row + i * EVAL_BATCH, tf.int64)).numpy()
    return figures(sum_over_ranks(totals, name))


def body_digest(model) -> str:
    """sha256 of the ``body`` layer's weights (shapes and bytes), e.g. to check a transfer."""
    digest = hashlib.sha256()
    for weight in model.get_layer("body").get_weights():
        digest.update(str(weight.shape).encode())
        digest.update(np.ascontiguousarray(weight).tobytes())
    return digest.hexdigest()


def load_body(path: str, model) -> str:
    """Copy the body of the Keras model saved at ``path`` (a pretraining run's ``model.keras``) into
    ``model``; return its :func:`body_digest`."""
    import keras
    source = keras.models.load_model(path, compile=False)
    transformer.transfer_body(source, model)
    return body_digest(source)


def init_body(plan, model, resumed: bool, rank: int, log) -> dict | None:
    """Fine-tuning (``plan.init_model``, a :class:`models.plan.TrainPlan`): rank 0 loads the
    pretrained body, to be broadcast, unless the run resumed from its own checkpoint. The record of
    it for ``metrics.json``; None when the run starts from scratch."""
    if not plan.init_model:
        return None
    record = {"run": plan.train.init_from, "model": plan.init_model, "loaded": not resumed}
    if rank == 0 and record["loaded"]:
        record["pretrained_body_sha256"] = load_body(plan.init_model, model)
        log(f"[train] body initialised from {plan.init_model} (train.init_from {plan.train.init_from})")
    return record
