"""A small Transformer over packed token ids, with attention masked per document.

One body (token + position embeddings, ``layers`` pre-norm blocks of multi-head self-attention and
a feed-forward layer) serves three heads:

- ``causal_lm``: a decoder: position ``i`` attends to ``j <= i`` of the same document;
- ``masked_lm``: an encoder: position ``i`` attends to every position of the same document;
- ``classify``: the body, mean-pooled over the non-padding positions, then ``n_classes`` logits;
  bidirectional by default, causal (``causal=True``) to fine-tune a ``causal_lm`` body the way it
  was trained.

The language models take ``[tokens, segment]`` (batch, length) int32 as :mod:`pipeline.packing`
stores them (0 = padding); a classifier takes ``tokens`` alone, one record per row, and its
segment is 1 on the record's tokens and 0 on its padding (:func:`segments_of`), so it trains and
serves like the other token networks (``lm_transformer`` in :mod:`models.networks`). The body
is one named layer (``"body"``), so
:func:`transfer_body` copies a pretrained language model's weights into a classifier for
fine-tuning. Logits stay float32 under mixed precision.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import keras
import tensorflow as tf

HEADS = ("causal_lm", "masked_lm", "classify")


@dataclass(frozen=True, kw_only=True)
class TransformerSize:
    """Width and depth; the defaults train on CPU in seconds on a small corpus."""

    d_model: int = 64
    heads: int = 4
    layers: int = 2
    ff: int = 128
    dropout: float = 0.1


def attention_mask(segment: tf.Tensor, causal: bool) -> tf.Tensor:
    """(batch, length, length) bool: ``i`` may attend to ``j`` within its document (and ``j <= i``).

    A padding position (segment 0) attends to itself only, so no row of the mask is empty.
    """
    same = tf.equal(segment[:, :, None], segment[:, None, :]) & (segment[:, None, :] > 0)
    length = tf.shape(segment)[1]
    eye = tf.eye(length, dtype=tf.bool)[None]
    if causal:
        same &= tf.linalg.band_part(tf.ones((length, length), dtype=tf.bool), -1, 0)[None]
    return same | eye


def segments_of(tokens: tf.Tensor) -> tf.Tensor:
    """The segment ids of one record per row: 1 on its tokens, 0 on padding (id 0)."""
    return tf.cast(tokens > 0, tf.int32)


@keras.saving.register_keras_serializable(package="dcpipe")
class _Block(keras.layers.Layer):
    def __init__(self, size: TransformerSize | dict, **kwargs):
        super().__init__(**kwargs)
        size = size if isinstance(size, TransformerSize) else TransformerSize(**size)
        self.size = size
        self.norm1, self.norm2 = keras.layers.LayerNormalization(), keras.layers.LayerNormalization()
        self.attention = keras.layers.MultiHeadAttention(size.heads, size.d_model // size.heads, dropout=size.dropout)
        self.ff1 = keras.layers.Dense(size.ff, activation="gelu")
        self.ff2 = keras.layers.Dense(size.d_model)
        self.drop = keras.layers.Dropout(size.dropout)

    def call(self, x, mask, training=False):
        h = self.norm1(x)
        x = x + self.drop(self.attention(h, h, attention_mask=mask, training=training), training=training)
        return x + self.drop(self.ff2(self.ff1(self.norm2(x))), training=training)

    def get_config(self):
        return {**super().get_config(), "size": asdict(self.size)}


@keras.saving.register_keras_serializable(package="dcpipe")
class Body(keras.layers.Layer):
    """Embeddings and blocks: (tokens, segment) -> (batch, length, d_model)."""

    def __init__(self, vocab_size: int, length: int, size: TransformerSize | dict, causal: bool, **kwargs):
        super().__init__(**kwargs)
        size = size if isinstance(size, TransformerSize) else TransformerSize(**size)
        self.vocab_size, self.length, self.size, self.causal = vocab_size, length, size, causal
        self.tokens = keras.layers.Embedding(vocab_size, size.d_model)
        self.positions = keras.layers.Embedding(length, size.d_model)
        self.blocks = [_Block(size, name=f"block{i}") for i in range(size.layers)]
        self.norm = keras.layers.LayerNormalization()

    def call(self, tokens, segment, training=False):
        mask = attention_mask(segment, self.causal)
        x = self.tokens(tokens) + self.positions(tf.range(tf.shape(tokens)[1]))[None]
        for block in self.blocks:
            x = block(x, mask, training=training)
        return self.norm(x)

    def get_config(self):
        return {**super().get_config(), "vocab_size": self.vocab_size, "length": self.length,
                "size": asdict(self.size), "causal": self.causal}


def build(head: str, vocab_size: int, length: int, n_classes: int = 0,
          size: TransformerSize = TransformerSize(), causal: bool = False) -> keras.Model:
    """The model of ``head``: inputs ``[tokens, segment]``, logits over the vocabulary per position
    (language models) or over ``n_classes`` (classify). The heads fix the attention of the language
    models; ``causal`` sets a classifier's."""
    if head not in HEADS:
        raise ValueError(f"unknown head {head!r}; choose one of {', '.join(HEADS)}")
    if causal and head != "classify":
        raise ValueError(f"causal applies to the classify head; {head} attends "
                         f"{'causally' if head == 'causal_lm' else 'both ways'} by construction")
    causal = causal or head == "causal_lm"
    tokens = keras.Input((length,), dtype="int32", name="tokens")
    # a classifier reads one record per row: its segment is 1 on the tokens, 0 on padding
    segment = (keras.ops.cast(tokens > 0, "int32") if head == "classify"
               else keras.Input((length,), dtype="int32", name="segment"))
    x = Body(vocab_size, length, size, causal=causal, name="body")(tokens, segment)
    if head == "classify":
        weights = keras.ops.cast(segment > 0, x.dtype)[:, :, None]
        pooled = keras.ops.sum(x * weights, axis=1) / keras.ops.maximum(keras.ops.sum(weights, axis=1), 1.0)
        logits = keras.layers.Dense(n_classes, dtype="float32", name="classes")(pooled)
    else:
        logits = keras.layers.Dense(vocab_size, dtype="float32", name="lm_head")(x)
    inputs = tokens if head == "classify" else [tokens, segment]
    return keras.Model(inputs, logits, name=f"transformer_{head}")


def attention_of(model: keras.Model) -> str | None:
    """``"causal"`` or ``"bidirectional"``: how the model's ``body`` attends; None without one."""
    try:
        body = model.get_layer("body")
    except ValueError:
        return None
    return "causal" if body.causal else "bidirectional"


def transfer_body(source: keras.Model, target: keras.Model) -> None:
    """Copy the pretrained ``body`` weights of ``source`` into ``target`` (same vocabulary, length, size)."""
    src, dst = source.get_layer("body"), target.get_layer("body")
    shapes = [tuple(w.shape) for w in src.get_weights()], [tuple(w.shape) for w in dst.get_weights()]
    if shapes[0] != shapes[1]:
        raise ValueError(f"train.init_from: the pretrained body has weights {shapes[0][:2]}... but this model's are "
                         f"{shapes[1][:2]}...; use the same tokenizer (vocabulary) and length")
    dst.set_weights(src.get_weights())
