"""The serving bundle: the trained network (a plain SavedModel: no Horovod ops) plus the
dataset's feature transform as JSON, so raw records go in and class scores come out.

Layout::

    bundle/model/           tf.saved_model with a ``serve`` endpoint (float32 images -> logits)
    bundle/transform.json   {"kind": "pixel_scale", "value_min", "value_max", "image_shape",
                             "n_fields", "label_column", "labels"}
    bundle/bundle.json      what was trained on what: dataset version, network, compression

>>> bundle = load_bundle("runs/<id>/bundle")        # doctest: +SKIP
>>> bundle.predict_csv(["0,0,...,255"])             # doctest: +SKIP
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tensorflow as tf


def write_bundle(model, plan, path: Path) -> Path:
    """Write ``model`` and ``plan.transform`` as one serving bundle at ``path``."""
    path.mkdir(parents=True, exist_ok=True)
    model.export(str(path / "model"), verbose=False)
    (path / "transform.json").write_text(json.dumps(plan.transform, indent=2) + "\n")
    meta = {"dataset_version": plan.dataset_version, "network": plan.network,
            "compression": plan.compression, "image_shape": plan.image_shape, "n_classes": plan.n_classes}
    (path / "bundle.json").write_text(json.dumps(meta, indent=2) + "\n")
    return path


@dataclass(frozen=True)
class PixelScale:
    """Raw CSV fields -> images in [0, 1], as the dataset's features stage computed them."""

    value_min: float
    value_max: float
    image_shape: tuple[int, ...]
    n_fields: int          # fields in a raw record, label included
    label_column: int

    def __call__(self, records: np.ndarray) -> np.ndarray:
        """``records``: (n, n_fields) with the label, or (n, n_fields - 1) without it."""
        if records.shape[1] == self.n_fields:
            records = np.delete(records, self.label_column % self.n_fields, axis=1)
        scaled = (records.astype(np.float32) - self.value_min) / np.float32(self.value_max - self.value_min)
        return scaled.reshape(-1, *self.image_shape)


@dataclass(frozen=True)
class Bundle:
    transform: PixelScale
    labels: list
    model: object          # the loaded SavedModel; it owns the variables ``serve`` reads

    def predict(self, records: np.ndarray) -> np.ndarray:
        """Predicted labels for raw numeric records."""
        logits = self.model.serve(tf.constant(self.transform(np.asarray(records))))
        return np.asarray(self.labels)[np.argmax(np.asarray(logits), axis=-1)]

    def predict_csv(self, lines: list[str], delimiter: str = ",") -> np.ndarray:
        records = np.array([[float(v) for v in line.split(delimiter)] for line in lines])
        return self.predict(records)


def load_bundle(path: str | Path) -> Bundle:
    path = Path(path)
    spec = json.loads((path / "transform.json").read_text())
    if spec.get("kind") != "pixel_scale":
        raise ValueError(f"{path / 'transform.json'}: unknown transform kind {spec.get('kind')!r}; "
                         "this dcpipe knows 'pixel_scale'")
    transform = PixelScale(spec["value_min"], spec["value_max"], tuple(spec["image_shape"]),
                           spec["n_fields"], spec["label_column"])
    return Bundle(transform, spec["labels"], tf.saved_model.load(str(path / "model")))
