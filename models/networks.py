"""Networks by name: a registry of Keras 3 model builders.

Image networks take ``(height, width, channels)`` float inputs: ``mlp`` treats an image as a flat
feature vector (tabular), ``cnn`` as an image, ``transformer`` as a sequence of tokens (one per
image row). Token networks take ``(length,)`` int32 token ids (0 = padding) and need the
vocabulary size: ``text_transformer``, and ``lm_transformer`` (the body of :mod:`models.transformer`,
which can be pretrained on a packed corpus). Logits stay float32 under mixed precision.
"""
from __future__ import annotations

from collections.abc import Callable

import keras

NETWORKS: dict[str, Callable[..., keras.Model]] = {}
TOKEN_INPUTS: set[str] = set()     # networks over token ids: built with the vocabulary size
CAUSAL: set[str] = set()           # networks that can attend causally (``causal=True``)


def register(name: str, tokens: bool = False, causal: bool = False):
    """Decorator: ``@register("cnn")``; ``tokens=True`` for a builder ``(shape, n_classes, vocab_size)``,
    ``causal=True`` for one that also takes ``causal``."""
    def wrap(builder):
        NETWORKS[name] = builder
        if tokens:
            TOKEN_INPUTS.add(name)
        if causal:
            CAUSAL.add(name)
        return builder
    return wrap


def build(name: str, input_shape: tuple[int, ...], n_classes: int, vocab_size: int = 0,
          causal: bool = False) -> keras.Model:
    """The network ``name`` for inputs of ``input_shape`` with ``n_classes`` logits
    (``vocab_size``: token ids are below it, token networks only; ``causal``: each token attends to
    the ones before it, :data:`CAUSAL` networks only)."""
    if name not in NETWORKS:
        raise ValueError(f"unknown network {name!r}; choose one of {sorted(NETWORKS)}")
    if causal:
        if name not in CAUSAL:
            raise ValueError(f"network {name!r} has no causal attention; choose one of {sorted(CAUSAL)}")
        return NETWORKS[name](tuple(input_shape), n_classes, vocab_size, causal=True)
    if name in TOKEN_INPUTS:
        if vocab_size < 3:
            raise ValueError(f"network {name!r} reads token ids and needs vocab_size >= 3 (got {vocab_size}); "
                             "train it on a text dataset")
        return NETWORKS[name](tuple(input_shape), n_classes, vocab_size)
    return NETWORKS[name](tuple(input_shape), n_classes)


@register("mlp")
def mlp(input_shape: tuple[int, ...], n_classes: int) -> keras.Model:
    """Two hidden layers of 256 and 128 over the flattened features."""
    return keras.Sequential([
        keras.Input(shape=input_shape),
        keras.layers.Flatten(),
        keras.layers.Dense(256, activation="relu"),
        keras.layers.Dropout(0.2),
        keras.layers.Dense(128, activation="relu"),
        keras.layers.Dense(n_classes, dtype="float32"),
    ], name="mlp")


def conv_blocks(height: int, width: int, blocks: int = 2) -> list[tuple[str, bool]]:
    """(padding, pool) of each 3x3 conv block for an image of ``height`` x ``width``: a block keeps
    its size ("same") on small maps, and pools only while the map stays at least 2 wide. On
    28x28 this is the classic valid/pool stack (28 -> 26 -> 13 -> 11 -> 5); on 8x8 it is 8 -> 4 -> 2.

    >>> conv_blocks(28, 28)
    [('valid', True), ('valid', True)]
    >>> conv_blocks(8, 8)
    [('same', True), ('same', True)]
    """
    out, size = [], min(height, width)
    for _ in range(blocks):
        padding = "valid" if size >= 10 else "same"
        size = size - 2 if padding == "valid" else size
        pool = size >= 4
        size = size // 2 if pool else size
        out.append((padding, pool))
    return out


@register("cnn")
def cnn(input_shape: tuple[int, ...], n_classes: int) -> keras.Model:
    """Two conv blocks and a dense layer of 128: about 99% on MNIST; pooling chosen from the input
    size (:func:`conv_blocks`), so small images (8x8 digits) work too."""
    layers = [keras.Input(shape=input_shape)]
    for filters, (padding, pool) in zip((32, 64), conv_blocks(*input_shape[:2])):
        layers.append(keras.layers.Conv2D(filters, 3, padding=padding, activation="relu"))
        if pool:
            layers.append(keras.layers.MaxPooling2D())
    return keras.Sequential([
        *layers,
        keras.layers.Flatten(),
        keras.layers.Dropout(0.25),
        keras.layers.Dense(128, activation="relu"),
        keras.layers.Dense(n_classes, dtype="float32"),  # logits in float32 under mixed precision
    ], name="cnn")


@keras.saving.register_keras_serializable(package="dcpipe")
class PositionEmbedding(keras.layers.Layer):
    """Adds a learned embedding of each token's position."""

    def build(self, input_shape):
        self.table = self.add_weight(shape=tuple(input_shape[1:]), initializer="random_normal", name="table")

    def call(self, tokens):
        return tokens + keras.ops.cast(self.table, tokens.dtype)


@register("transformer")
def transformer(input_shape: tuple[int, ...], n_classes: int, width: int = 64, heads: int = 4,
                blocks: int = 2) -> keras.Model:
    """A small pre-norm Transformer encoder: one token per image row, mean-pooled."""
    inputs = keras.Input(shape=input_shape)
    tokens = keras.layers.Reshape((input_shape[0], -1))(inputs)
    x = PositionEmbedding()(keras.layers.Dense(width)(tokens))
    for _ in range(blocks):
        h = keras.layers.LayerNormalization()(x)
        x = x + keras.layers.MultiHeadAttention(heads, width // heads)(h, h)
        h = keras.layers.LayerNormalization()(x)
        x = x + keras.layers.Dense(width)(keras.layers.Dense(2 * width, activation="gelu")(h))
    x = keras.layers.GlobalAveragePooling1D()(keras.layers.LayerNormalization()(x))
    return keras.Model(inputs, keras.layers.Dense(n_classes, dtype="float32")(x), name="transformer")


@keras.saving.register_keras_serializable(package="dcpipe")
class PaddingMask(keras.layers.Layer):
    """Token ids -> ``(batch, 1, length)`` booleans, true for real tokens (id 0 is padding)."""

    def call(self, ids):
        return keras.ops.expand_dims(keras.ops.not_equal(ids, 0), 1)


@keras.saving.register_keras_serializable(package="dcpipe")
class MaskedMean(keras.layers.Layer):
    """Mean over the real (non-padding) positions of ``(batch, length, width)`` vectors."""

    def call(self, x, mask):
        weights = keras.ops.cast(keras.ops.transpose(mask, (0, 2, 1)), x.dtype)
        return keras.ops.sum(x * weights, axis=1) / keras.ops.maximum(keras.ops.sum(weights, axis=1), 1.0)


@register("text_transformer", tokens=True)
def text_transformer(input_shape: tuple[int, ...], n_classes: int, vocab_size: int, width: int = 32,
                     heads: int = 2, blocks: int = 2) -> keras.Model:
    """A small pre-norm Transformer encoder over token ids: embedding + position, padding masked in
    attention and in the mean pooling."""
    ids = keras.Input(shape=input_shape, dtype="int32")
    mask = PaddingMask()(ids)
    x = PositionEmbedding()(keras.layers.Embedding(vocab_size, width)(ids))
    for _ in range(blocks):
        h = keras.layers.LayerNormalization()(x)
        x = x + keras.layers.MultiHeadAttention(heads, width // heads)(h, h, attention_mask=mask)
        h = keras.layers.LayerNormalization()(x)
        x = x + keras.layers.Dense(width)(keras.layers.Dense(2 * width, activation="gelu")(h))
    x = MaskedMean()(keras.layers.LayerNormalization()(x), mask)
    return keras.Model(ids, keras.layers.Dense(n_classes, dtype="float32")(x), name="text_transformer")


@register("lm_transformer", tokens=True, causal=True)
def lm_transformer(input_shape: tuple[int, ...], n_classes: int, vocab_size: int, causal: bool = False) -> keras.Model:
    """The pretrainable Transformer of :mod:`models.transformer` with a classification head: the
    same body a ``causal_lm``/``masked_lm`` pretraining learns (``transformer.transfer_body``),
    attending causally or both ways."""
    from models import transformer
    return transformer.build("classify", vocab_size, input_shape[0], n_classes, causal=causal)
