"""The serving bundle's transforms, without a trained model: what raw records become."""
import json

import pandas as pd
import pytest

from models.export import TextSequence, load_bundle
from pipeline.config import TextPolicy
from pipeline.transforms import FeatureTransform
from pipeline.transforms.text import Sequence


def test_text_sequence_cleans_then_applies_the_fitted_vocabulary():
    fitted = FeatureTransform((Sequence(name="tokens", columns=["text"], length=6,
                                        state={"vocabulary": ["<pad>", "<unk>", "goal", "email", "the"]}),))
    spec = {"kind": "text_sequence", "clean": TextPolicy().model_dump(), "features": fitted.to_dict(),
            "labels": ["sports", "tech"]}
    transform = TextSequence.from_spec(json.loads(json.dumps(spec)))
    ids = transform(["  The GOAL, mail ana@example.org  ", ""])
    # the -> 4, goal -> 2, mail -> unknown, the masked address -> <EMAIL> -> "email" -> 3, then padding
    assert ids.tolist() == [[4, 2, 1, 3, 0, 0], [0, 0, 0, 0, 0, 0]] and ids.dtype == "int32"
    assert (fitted.transform(pd.DataFrame({"text": ["the goal"]}))["tokens"] == ids[0][:2].tolist() + [0] * 4).all()


def test_an_unknown_transform_kind_lists_the_known_ones(tmp_path):
    (tmp_path / "transform.json").write_text(json.dumps({"kind": "wav2vec"}))
    with pytest.raises(ValueError, match=r"transform\.json: unknown transform kind 'wav2vec'; this dcpipe knows "
                                         r"'image_features', 'pixel_scale', 'text_sequence'"):
        load_bundle(tmp_path)


def test_image_features_apply_the_stored_pixels_transform_to_raw_records():
    """The bundle's image transform is the dataset's fitted ``pixels`` group, label in or out."""
    import dataclasses

    import numpy as np

    from models.export import ImageFeatures
    from pipeline.transforms import FeatureTransform, build
    pixels = build({"kind": "pixels", "name": "image", "columns": ["p*"], "shape": [2, 2, 1]}, "test")
    fitted = FeatureTransform((dataclasses.replace(pixels, state={"columns": ["p0", "p1", "p2", "p3"]}),))
    spec = {"kind": "image_features", "features": fitted.to_dict(), "x_var": "image", "n_fields": 5,
            "label_column": -1}
    transform = ImageFeatures.from_spec(spec)
    without = transform(np.array([[0, 51, 102, 255]]))
    with_label = transform(np.array([[0, 51, 102, 255, 7]]))
    assert without.shape == (1, 2, 2, 1) and without.tobytes() == with_label.tobytes()
    np.testing.assert_allclose(without.ravel(), [0, 0.2, 0.4, 1.0], rtol=1e-6)
    assert (transform.value_min, transform.value_max) == (0, 255)


@pytest.mark.parametrize("layout", ["channels_last", "channels_first"])   # the two layouts Pixels writes
def test_serve_raw_applies_the_stored_pixels_transform_in_the_graph(tmp_path, layout):
    """``serve_raw(raw)`` is ``serve(transform(raw))``: the graph's scaling is the stored transform's."""
    import dataclasses
    import types

    import keras
    import numpy as np
    import tensorflow as tf

    from models.export import ImageFeatures, write_bundle
    from pipeline.transforms import FeatureTransform, build
    pixels = build({"kind": "pixels", "name": "image", "columns": ["p*"], "shape": [3, 2, 2], "layout": layout,
                    "value_min": 10, "value_max": 250}, "test")
    fitted = FeatureTransform((dataclasses.replace(pixels, state={"columns": [f"p{i}" for i in range(12)]}),))
    spec = {"kind": "image_features", "features": fitted.to_dict(), "x_var": "image", "n_fields": 13,
            "label_column": 0, "labels": [0, 1, 2]}
    shape = (2, 3, 2) if layout == "channels_first" else (3, 2, 2)
    model = keras.Sequential([keras.Input(shape=shape), keras.layers.Flatten(), keras.layers.Dense(3)])
    plan = types.SimpleNamespace(transform=spec, dataset_version="toy@1", network="dense", compression="none",
                                 x_var="image", input_shape=list(shape), n_classes=3)
    write_bundle(model, plan, tmp_path / "bundle")
    saved = tf.saved_model.load(str(tmp_path / "bundle" / "model"))
    raw = np.random.default_rng(0).uniform(10, 250, (7, 12)).astype(np.float32)
    transformed = ImageFeatures.from_spec(spec)(raw)
    np.testing.assert_array_equal(saved.serve_raw(tf.constant(raw)).numpy(), saved.serve(tf.constant(transformed)).numpy())
    assert {"serve", "serve_raw", "serving_default"} <= set(saved.signatures)
    assert json.loads((tmp_path / "bundle" / "bundle.json").read_text())["signatures"] == ["serve", "serve_raw"]
