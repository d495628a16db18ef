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
