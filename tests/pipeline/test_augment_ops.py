"""Each registered op on its own: what it promises, with a seeded generator."""
import dataclasses

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from pipeline.augment import BlockOp, SampleOp, build, names, register
from pipeline.augment.registry import build_all
from pipeline.config import AugmentConfig, parse_config
from pipeline.errors import UserError


def _rng(seed=0):
    return np.random.default_rng(seed)


def _digit():
    img = np.zeros((8, 8, 1), np.float32)
    img[1:7, 2] = 1.0  # a vertical bar left of centre
    return img


def test_registry_lists_every_op_of_the_issue():
    assert set(names()) == {"flip", "shift", "rotate", "crop_resize", "gaussian_noise", "brightness_contrast",
                            "random_deletion", "random_swap", "synonym_replace", "feature_noise", "mixup"}


def test_default_ops_are_mnist_safe():
    assert [op["op"] for op in AugmentConfig().ops] == ["rotate", "shift", "gaussian_noise"]
    assert AugmentConfig().copies == 2


def test_flip_mirrors_left_right():
    out = build({"op": "flip", "horizontal": 1.0})(_digit(), _rng())
    np.testing.assert_array_equal(out, _digit()[:, ::-1])
    assert build({"op": "flip", "horizontal": 0.0})(_digit(), _rng()) is not None


def test_shift_moves_whole_pixels_and_keeps_mass_inside():
    out = build({"op": "shift", "max_pixels": 1})(_digit(), _rng(5))
    assert set(np.unique(out)) <= {0.0, 1.0} and out.sum() >= 4


@pytest.mark.parametrize("spec", [
    {"op": "rotate", "max_degrees": 30},          # bilinear, may soften edges
    {"op": "crop_resize", "min_scale": 0.6},      # zoom in on a window
    {"op": "gaussian_noise", "std": 0.3},         # clipped to [0, 1]
    {"op": "brightness_contrast", "brightness": 0.5, "contrast": 0.5},
])
def test_image_ops_keep_shape_dtype_and_range(spec):
    img = _digit() * 0.5 + 0.25  # mid-grey, so brightness is not clipped away
    out = build(spec)(img, _rng(1))
    assert out.shape == img.shape and out.dtype == img.dtype
    assert out.min() >= 0 and out.max() <= 1 and not np.array_equal(out, img)


def test_text_ops_on_string_tokens():
    words = ["a", "good", "film", "indeed"]
    assert build({"op": "random_deletion", "p": 0.0})(words, _rng()) == words
    kept = build({"op": "random_deletion", "p": 0.99})(words, _rng())
    assert len(kept) == 1 and kept[0] in words  # never empties a sentence
    swapped = build({"op": "random_swap", "n_swaps": 3})(words, _rng(2))
    assert sorted(swapped) == sorted(words) and swapped != words
    syn = build({"op": "synonym_replace", "synonyms": {"good": ["great"]}, "p": 1.0})(words, _rng())
    assert syn == ["a", "great", "film", "indeed"]


def test_synonyms_on_ids_translate_through_the_vocabulary():
    op = dataclasses.replace(build({"op": "synonym_replace", "synonyms": {"good": ["great", "nowhere"]},
                                    "p": 1.0}), vocabulary=["<pad>", "good", "great", "film"])
    np.testing.assert_array_equal(op(np.array([3, 1, 0, 0]), _rng()), [3, 2, 0, 0])
    with pytest.raises(ValueError, match="needs the fitted vocabulary"):
        build({"op": "synonym_replace", "synonyms": {"good": ["great"]}})(np.array([1, 2]), _rng())


def test_mixup_mixes_rows_of_the_block_with_the_row_itself_dominant():
    block = np.eye(6, dtype=np.float32)
    out = build({"op": "mixup", "alpha": 1.0}).apply_block(block, _rng())
    assert out.shape == block.shape and out.dtype == block.dtype
    np.testing.assert_allclose(out.sum(axis=1), 1.0, rtol=1e-6)
    assert (np.diag(out) >= 0.5).all() and not np.array_equal(out, block)


def test_feature_noise_changes_values_not_shape():
    row = np.zeros(5, np.float32)
    out = build({"op": "feature_noise", "std": 1.0})(row, _rng())
    assert out.shape == (5,) and out.dtype == np.float32 and np.abs(out).sum() > 0


def test_register_adds_a_new_op_and_refuses_a_duplicate_name():
    @register("test_invert")
    @dataclasses.dataclass(frozen=True, kw_only=True)
    class Invert(SampleOp):
        modality = "image"

        def __call__(self, img, rng):
            return 1 - img

    assert "test_invert" in names() and build({"op": "test_invert"})(_digit(), _rng()).sum() == 64 - 6
    with pytest.raises(ValueError, match="registered twice"):
        register("test_invert")(Invert)
    assert issubclass(type(build({"op": "mixup"})), BlockOp)


@pytest.mark.parametrize("ops, match", [
    # an unknown op lists the valid names
    ([{"op": "flop"}], r"augment\.ops: \[0\]: unknown op 'flop'; choose one of .*flip"),
    # a misspelt parameter lists the accepted ones
    ([{"op": "rotate", "max_deg": 3}], r"\[0\] \(rotate\): unknown parameter 'max_deg'; accepted: max_degrees"),
    # a value out of range says the rule and the value
    ([{"op": "shift", "max_pixels": -1}], r"\[0\] \(shift\): max_pixels must be an int >= 0 \(got -1\)"),
    # ops of two modalities cannot change one variable
    ([{"op": "rotate"}, {"op": "mixup"}], r"mixes modalities \['image', 'tabular'\]"),
    # an entry without 'op'
    ([{"max_pixels": 2}], r"\[0\] must be a mapping with an 'op' key"),
])
def test_bad_ops_are_one_line_user_errors(ops, match):
    with pytest.raises(UserError, match=match) as info:
        parse_config({"augment": {"ops": ops}})
    assert "\n" not in str(info.value)


def test_config_round_trips_ops_with_their_defaults_filled_in():
    cfg = parse_config({"augment": {"ops": [{"op": "flip"}]}})
    assert cfg.augment.ops == [{"op": "flip", "horizontal": 0.5, "vertical": 0.0}]
    assert [op.to_dict() for op in build_all(cfg.augment.ops)] == cfg.augment.ops


@settings(max_examples=60, deadline=None)
@given(ids=st.lists(st.integers(1, 50), min_size=0, max_size=12), pad=st.integers(0, 6),
       seed=st.integers(0, 2**32 - 1))
def test_text_ops_on_padded_rows_keep_length_padding_and_tokens(ids, pad, seed):
    row = np.array(ids + [0] * pad, dtype=np.int32)
    for spec in ({"op": "random_deletion", "p": 0.5}, {"op": "random_swap", "n_swaps": 3}):
        out = build(spec)(row, _rng(seed))
        real = out[out != 0]
        assert out.shape == row.shape and out.dtype == row.dtype
        assert (out[len(real):] == 0).all()                      # padding stays at the end
        assert set(real.tolist()) <= set(ids) and (len(real) >= 1 or not ids)  # never emptied
    swapped = build({"op": "random_swap", "n_swaps": 3})(row, _rng(seed))
    assert sorted(swapped.tolist()) == sorted(row.tolist())
