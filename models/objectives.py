"""Training objectives over packed sequences: next-token and masked-token prediction, classification.

Each objective turns a batch into ``(inputs, targets, weights)`` and its loss is the weighted mean
cross-entropy of the model's logits. Language-model losses never cross a document boundary:

- ``causal_lm``: position ``i`` predicts token ``i + 1`` where both are in the same document
  (``segment[i] == segment[i + 1] > 0``); the ``<eod>`` ending a document is predicted from its
  last token, so the model learns where documents end;
- ``masked_lm``: a ``rate`` share of the non-padding positions (drawn from a seeded generator) is
  replaced by ``<mask>`` (id 3) and predicted;
- ``classify``: one label per record, weight 1.

Perplexity is ``exp`` of the mean next-token (or masked-token) loss over the weighted positions.

>>> import numpy as np
>>> t = np.array([[5, 6, 2, 7]]); s = np.array([[1, 1, 1, 2]])
>>> _, targets, weights = causal_lm_batch(t, s)
>>> targets.numpy().tolist(), weights.numpy().tolist()
([[6, 2, 7, 0]], [[1.0, 1.0, 0.0, 0.0]])
"""
from __future__ import annotations

import math

import tensorflow as tf

MASK_ID = 3      # pipeline.transforms.tokenizer.MASK (models/ does not import pipeline/)
OBJECTIVES = ("causal_lm", "masked_lm", "classify")


def causal_lm_batch(tokens, segment):
    """((tokens, segment), next tokens, weights): the last position and document ends weigh 0."""
    tokens, segment = tf.convert_to_tensor(tokens, tf.int32), tf.convert_to_tensor(segment, tf.int32)
    targets = tf.concat([tokens[:, 1:], tf.zeros_like(tokens[:, :1])], axis=1)
    nxt = tf.concat([segment[:, 1:], tf.zeros_like(segment[:, :1])], axis=1)
    weights = tf.cast((segment > 0) & tf.equal(segment, nxt), tf.float32)
    return (tokens, segment), targets, weights


def masked_lm_batch(tokens, segment, seed: tuple[int, int], rate: float = 0.15):
    """((masked tokens, segment), original tokens, weights on the masked positions); ``seed`` is a
    stateless seed pair (e.g. (run seed, step)), so a batch masks the same way on every rank and retry."""
    tokens, segment = tf.convert_to_tensor(tokens, tf.int32), tf.convert_to_tensor(segment, tf.int32)
    draw = tf.random.stateless_uniform(tf.shape(tokens), seed=seed)
    chosen = (draw < rate) & (segment > 0)
    masked = tf.where(chosen, tf.fill(tf.shape(tokens), MASK_ID), tokens)
    return (masked, segment), tokens, tf.cast(chosen, tf.float32)


def classify_batch(tokens, labels):
    """((tokens, segment), labels, ones): one record per row, its segment 1 on its tokens."""
    tokens = tf.convert_to_tensor(tokens, tf.int32)
    labels = tf.convert_to_tensor(labels, tf.int32)
    return (tokens, tf.cast(tokens > 0, tf.int32)), labels, tf.ones(tf.shape(labels), tf.float32)


def loss_sum(logits, targets, weights) -> tuple[tf.Tensor, tf.Tensor]:
    """(sum of weighted cross-entropy, sum of weights): divide after summing over ranks."""
    ce = tf.keras.losses.sparse_categorical_crossentropy(targets, tf.cast(logits, tf.float32), from_logits=True)
    return tf.reduce_sum(ce * weights), tf.reduce_sum(weights)


def mean_loss(logits, targets, weights) -> tf.Tensor:
    total, count = loss_sum(logits, targets, weights)
    return total / tf.maximum(count, 1.0)


def perplexity(mean: float) -> float:
    """``exp(mean loss)``: e.g. a uniform guess over a 4,000-token vocabulary is 4,000."""
    return float(math.exp(min(mean, 700.0)))


def hits(logits, targets, weights) -> tf.Tensor:
    """Weighted count of argmax == target (accuracy numerator)."""
    right = tf.cast(tf.equal(tf.argmax(logits, -1, output_type=tf.int32), tf.cast(targets, tf.int32)), tf.float32)
    return tf.reduce_sum(right * weights)
