"""The serving bundle: the trained network (a plain SavedModel: no Horovod ops) plus the
dataset's feature transform as JSON, so raw records go in and class scores come out.

Layout::

    bundle/model/           tf.saved_model with a ``serve`` endpoint (images or token ids -> logits) and,
                            for image bundles, ``serve_raw``: raw records (float32 [n, n_fields - 1], the
                            label left out) -> logits, the stored pixels transform as TensorFlow ops, so
                            TF Serving or Triton can serve the model without dcpipe
    bundle/transform.json   {"kind": "image_features", "features": <the dataset's fitted FeatureTransform>,
                             "x_var", "n_fields", "label_column", "labels"}, or for text
                            {"kind": "text_sequence", "clean": <clean.text policy>,
                             "features": <the fitted FeatureTransform>, "labels"};
                            bundles written before image_features say {"kind": "pixel_scale", ...}
    bundle/bundle.json      what was trained on what: dataset version, network, compression

>>> bundle = load_bundle("runs/<id>/bundle")        # doctest: +SKIP
>>> bundle.predict_csv(["0,0,...,255"])             # doctest: +SKIP
>>> bundle.predict_text(["The keeper saved a penalty"])   # doctest: +SKIP  (a text bundle)
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import tensorflow as tf


def write_bundle(model, plan, path: Path) -> Path:
    """Write ``model`` and ``plan.transform`` as one serving bundle at ``path``."""
    import keras
    path.mkdir(parents=True, exist_ok=True)
    archive = keras.export.ExportArchive()
    archive.track(model)
    x = model.inputs[0]
    archive.add_endpoint("serve", lambda inputs: model(inputs, training=False),
                         input_signature=[tf.TensorSpec(x.shape, x.dtype)])
    raw = raw_pixels(plan.transform)
    if raw is not None:
        n_values, to_images = raw
        archive.add_endpoint("serve_raw", lambda records: model(to_images(records), training=False),
                             input_signature=[tf.TensorSpec([None, n_values], tf.float32, name="records")])
    archive.write_out(str(path / "model"), verbose=False)
    (path / "transform.json").write_text(json.dumps(plan.transform, indent=2) + "\n")
    meta = {"dataset_version": plan.dataset_version, "network": plan.network,
            "compression": plan.compression, "x_var": plan.x_var, "input_shape": plan.input_shape,
            "n_classes": plan.n_classes, "signatures": ["serve"] + (["serve_raw"] if raw is not None else [])}
    (path / "bundle.json").write_text(json.dumps(meta, indent=2) + "\n")
    return path


def raw_pixels(spec: dict):
    """(fields per raw record, a TensorFlow function raw records -> model input) for an image bundle's
    transform spec: the stored fitted ``pixels`` group's scaling, reshape and layout as graph ops, the
    same float32 arithmetic as ``Pixels.transform``. ``None`` for text bundles (their vocabulary lookup
    and text cleaning stay in dcpipe) and for a ``resize`` (scipy's zoom has no exact TensorFlow twin).
    """
    if spec.get("kind") != "image_features":
        return None
    group = ImageFeatures.from_spec(spec).group
    if getattr(group, "resize", None) is not None:
        return None
    n_values, shape = spec["n_fields"] - 1, tuple(group.shape)
    low, scale = np.float32(group.value_min), np.float32(1.0 / (group.value_max - group.value_min))
    channels_first = group.layout == "channels_first"

    def to_images(records):
        images = tf.reshape((records - low) * scale, (-1, *shape))
        return tf.transpose(images, (0, 3, 1, 2)) if channels_first else images
    return n_values, to_images


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
        records = np.asarray(records)
        if records.shape[1] == self.n_fields:
            records = np.delete(records, self.label_column % self.n_fields, axis=1)
        scaled = (records.astype(np.float32) - self.value_min) / np.float32(self.value_max - self.value_min)
        return scaled.reshape(-1, *self.image_shape)

    @classmethod
    def from_spec(cls, spec: dict) -> "PixelScale":
        return cls(spec["value_min"], spec["value_max"], tuple(spec["image_shape"]), spec["n_fields"],
                   spec["label_column"])


@dataclass(frozen=True)
class TextSequence:
    """Raw texts -> token ids, as prepare computed them: the job's text cleaning (NFKC, case,
    whitespace, personal-data masks), then the fitted ``sequence`` transform."""

    policy: object         # pipeline.config.TextPolicy
    features: object       # pipeline.transforms.FeatureTransform, fitted

    def __call__(self, texts) -> np.ndarray:
        from pipeline.clean.text import clean_one
        cleaned = [clean_one(t, self.policy)[0] for t in texts]
        (ids,) = self.features.transform(pd.DataFrame({"text": cleaned})).values()
        return ids

    @classmethod
    def from_spec(cls, spec: dict) -> "TextSequence":
        from pipeline.config import TextPolicy
        from pipeline.transforms import FeatureTransform
        return cls(TextPolicy.model_validate(spec["clean"]), FeatureTransform.from_dict(spec["features"]))


@dataclass(frozen=True)
class ImageFeatures:
    """Raw numeric records -> model input through the dataset's stored fitted ``pixels`` transform:
    the same object (and the same ``apply``) that prepared the training images."""

    features: object       # pipeline.transforms.FeatureTransform, fitted
    x_var: str             # the group the network takes, e.g. "image"
    n_fields: int          # fields in a raw record, label included
    label_column: int

    @property
    def group(self):
        return next(t for t in self.features.transforms if t.name == self.x_var)

    value_min = property(lambda self: self.group.value_min)
    value_max = property(lambda self: self.group.value_max)

    def __call__(self, records) -> np.ndarray:
        """``records``: (n, n_fields) with the label, or (n, n_fields - 1) without it."""
        records = np.asarray(records, dtype=np.float32)
        if records.shape[1] == self.n_fields:
            records = np.delete(records, self.label_column % self.n_fields, axis=1)
        return self.group.apply(pd.DataFrame(records, columns=self.group.state["columns"]))

    @classmethod
    def from_spec(cls, spec: dict) -> "ImageFeatures":
        from pipeline.transforms import FeatureTransform
        return cls(FeatureTransform.from_dict(spec["features"]), spec["x_var"], spec["n_fields"], spec["label_column"])


TRANSFORMS = {"image_features": ImageFeatures, "pixel_scale": PixelScale, "text_sequence": TextSequence}


@dataclass(frozen=True)
class Bundle:
    transform: ImageFeatures | PixelScale | TextSequence
    labels: list
    model: object          # the loaded SavedModel; it owns the variables ``serve`` reads

    def predict(self, records) -> np.ndarray:
        """Predicted labels for raw records: numeric rows (images) or strings (text)."""
        logits = self.model.serve(tf.constant(self.transform(records)))
        return np.asarray(self.labels)[np.argmax(np.asarray(logits), axis=-1)]

    def predict_text(self, texts: list[str]) -> np.ndarray:
        """Predicted labels for raw texts (a text bundle)."""
        return self.predict(list(texts))

    def predict_csv(self, lines: list[str], delimiter: str = ",") -> np.ndarray:
        records = np.array([[float(v) for v in line.split(delimiter)] for line in lines])
        return self.predict(records)


def load_bundle(path: str | Path) -> Bundle:
    path = Path(path)
    spec = json.loads((path / "transform.json").read_text())
    kind = TRANSFORMS.get(spec.get("kind"))
    if kind is None:
        raise ValueError(f"{path / 'transform.json'}: unknown transform kind {spec.get('kind')!r}; "
                         f"this dcpipe knows {', '.join(map(repr, TRANSFORMS))}")
    return Bundle(kind.from_spec(spec), spec["labels"], tf.saved_model.load(str(path / "model")))
