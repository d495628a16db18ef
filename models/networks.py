"""Networks by name: a registry of Keras 3 model builders."""
from __future__ import annotations

from collections.abc import Callable

import keras

NETWORKS: dict[str, Callable[..., keras.Model]] = {}


def register(name: str):
    def wrap(builder):
        NETWORKS[name] = builder
        return builder
    return wrap


def build(name: str, input_shape: tuple[int, ...], n_classes: int) -> keras.Model:
    """The network ``name`` for inputs of ``input_shape`` with ``n_classes`` logits."""
    if name not in NETWORKS:
        raise ValueError(f"unknown network {name!r}; choose one of {sorted(NETWORKS)}")
    return NETWORKS[name](input_shape, n_classes)


@register("cnn")
def cnn(input_shape: tuple[int, ...], n_classes: int) -> keras.Model:
    """Two conv blocks and a dense layer of 128: about 99% on MNIST."""
    return keras.Sequential([
        keras.Input(shape=input_shape),
        keras.layers.Conv2D(32, 3, activation="relu"),
        keras.layers.MaxPooling2D(),
        keras.layers.Conv2D(64, 3, activation="relu"),
        keras.layers.MaxPooling2D(),
        keras.layers.Flatten(),
        keras.layers.Dropout(0.25),
        keras.layers.Dense(128, activation="relu"),
        keras.layers.Dense(n_classes, dtype="float32"),  # logits in float32 under mixed precision
    ], name="cnn")
