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
    with pytest.raises(ValueError, match=r"unknown network 'vit'; choose one of \['cnn', 'mlp', 'transformer'\]"):
        networks.build("vit", (12, 12, 1), 3)
