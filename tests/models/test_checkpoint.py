"""Checkpoints: weights, optimizer state and position come back exactly; only the newest are kept."""
import keras
import numpy as np
import pytest
import tensorflow as tf

from models import checkpoint


def _trained(seed):
    keras.utils.set_random_seed(seed)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    optimizer = keras.optimizers.Adam(0.1)
    optimizer.build(model.trainable_variables)
    x = np.random.default_rng(seed).random((8, 3)).astype("float32")
    with tf.GradientTape() as tape:
        loss = keras.ops.mean(model(x) ** 2)
    optimizer.apply_gradients(zip(tape.gradient(loss, model.trainable_variables), model.trainable_variables))
    return model, optimizer


def test_restore_gives_back_weights_optimizer_state_and_position(tmp_path):
    model, optimizer = _trained(0)
    path = checkpoint.save(tmp_path, model, optimizer, checkpoint.Position(epoch=1, batches_consumed=14, global_step=27))
    other, other_opt = _trained(1)
    assert checkpoint.restore(path, other, other_opt) == checkpoint.Position(1, 14, 27)
    for a, b in zip(model.weights + optimizer.variables, other.weights + other_opt.variables):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_a_position_of_the_old_form_counts_per_rank_steps_at_the_resuming_world(tmp_path):
    model, optimizer = _trained(0)
    path = checkpoint.save(tmp_path, model, optimizer, checkpoint.Position(0, 0, 5))
    (path / "state.json").write_text('{"epoch": 1, "step": 7, "global_step": 27}')
    assert checkpoint.read_position(path, world=2) == checkpoint.Position(1, 14, 27)
    assert checkpoint.read_position(path, world=4).batches_consumed == 28


def test_latest_is_the_highest_step_and_old_ones_are_pruned(tmp_path):
    model, optimizer = _trained(0)
    assert checkpoint.latest(tmp_path) is None
    for g in (5, 10, 15):
        checkpoint.save(tmp_path, model, optimizer, checkpoint.Position(0, g, g), keep=2)
    assert checkpoint.latest(tmp_path).name == "step-000000015"
    assert sorted(p.name for p in checkpoint.folder(tmp_path).iterdir()) == ["step-000000010", "step-000000015"]


def test_restoring_into_another_network_says_so(tmp_path):
    model, optimizer = _trained(0)
    path = checkpoint.save(tmp_path, model, optimizer, checkpoint.Position(0, 1, 1))
    sgd = keras.optimizers.SGD(0.1)
    sgd.build(model.trainable_variables)
    with pytest.raises(ValueError, match=r"checkpoint has \d+ optimizer variables, the optimizer \d+; "
                                         r"was it written for another network\?"):
        checkpoint.restore(path, model, sgd)
