"""The model zoo: every network builds by name, gives float32 logits and survives a save/load."""
import keras
import numpy as np
import pytest

from models import networks


@pytest.mark.parametrize("name", ["mlp", "cnn", "transformer"])
def test_each_network_maps_images_to_logits_and_round_trips(name, tmp_path):
    model = networks.build(name, (12, 12, 1), 3)
    x = np.random.default_rng(0).random((2, 12, 12, 1)).astype("float32")
    logits = model(x)
    assert tuple(logits.shape) == (2, 3) and logits.dtype == "float32"
    model.save(tmp_path / "m.keras")
    again = keras.models.load_model(tmp_path / "m.keras")
    np.testing.assert_allclose(again(x), logits, rtol=1e-5, atol=1e-6)


def test_unknown_network_lists_the_choices():
    with pytest.raises(ValueError, match=r"unknown network 'vit'; choose one of \['cnn', 'lm_transformer', 'mlp', "
                                         r"'text_transformer', 'transformer'\]"):
        networks.build("vit", (12, 12, 1), 3)


def test_text_transformer_ignores_padding_and_round_trips(tmp_path):
    model = networks.build("text_transformer", (8,), 4, vocab_size=20)
    ids = np.array([[5, 6, 7, 0, 0, 0, 0, 0], [3, 2, 9, 9, 4, 1, 8, 2]], dtype="int32")
    logits = model(ids)
    assert tuple(logits.shape) == (2, 4) and logits.dtype == "float32"
    # padded positions are masked in attention and pooling: changing what the network adds at
    # positions 3-7 leaves the short row alone and changes the full one
    position = next(layer for layer in model.layers if isinstance(layer, networks.PositionEmbedding))
    table = position.get_weights()[0]
    table[3:] += np.random.default_rng(0).normal(size=table[3:].shape).astype(table.dtype)
    position.set_weights([table])
    moved = np.asarray(model(ids))
    np.testing.assert_allclose(moved[0], logits[0], rtol=1e-5, atol=1e-5)
    assert not np.allclose(moved[1], logits[1], atol=1e-3)
    logits = model(ids)
    model.save(tmp_path / "t.keras")
    again = keras.models.load_model(tmp_path / "t.keras")
    np.testing.assert_allclose(again(ids), logits, rtol=1e-5, atol=1e-6)


def test_token_networks_need_a_vocabulary_and_the_plan_knows_them():
    from models.plan import TOKEN_NETWORKS
    assert sorted(networks.TOKEN_INPUTS) == sorted(TOKEN_NETWORKS)
    with pytest.raises(ValueError, match=r"network 'text_transformer' reads token ids and needs vocab_size >= 3 "
                                         r"\(got 0\); train it on a text dataset"):
        networks.build("text_transformer", (8,), 4)


@pytest.mark.parametrize("side, blocks", [
    (28, [("valid", True), ("valid", True)]),   # MNIST: the classic stack, 28 -> 26 -> 13 -> 11 -> 5
    (12, [("valid", True), ("same", True)]),    # 12 -> 10 -> 5 -> 5 -> 2
    (8, [("same", True), ("same", True)]),      # the 8x8 digits: 8 -> 4 -> 2 (valid convs would reach 0)
    (3, [("same", False), ("same", False)]),    # too small to pool at all
])
def test_cnn_pooling_follows_the_input_size(side, blocks):
    assert networks.conv_blocks(side, side) == blocks
    model = networks.build("cnn", (side, side, 1), 10)
    assert tuple(model(np.zeros((2, side, side, 1), "float32")).shape) == (2, 10)
