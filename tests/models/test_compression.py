"""Compressors: spec parsing, bytes on the wire, convergence, and identical weights on 2 real ranks."""
import json
import math

import numpy as np
import pytest
import tensorflow as tf

from models import compression, networks
from tests.models.helpers import run_two_ranks

SPECS = ["none", "fp16", "topk:0.05", "powersgd:2"]


class OneRank:
    """Collectives of a world of one: what a single process sends to itself."""

    size = 1

    def allreduce_mean(self, tensor, name):
        return tensor

    def allgather(self, tensor, name):
        return tensor


@pytest.mark.parametrize("spec, expected", [
    ("none", compression.NoCompression()),
    ("fp16", compression.FP16()),
    ("topk:0.01", compression.TopK(0.01)),
    ("topk:1", compression.TopK(1.0)),          # ratio 1 sends everything (with indices)
    ("powersgd:4", compression.PowerSGD(4)),
])
def test_parse_known_specs(spec, expected):
    assert compression.parse(spec) == expected


@pytest.mark.parametrize("spec", [
    "fp32",            # unknown name
    "topk",            # ratio missing
    "topk:0",          # ratio must be > 0
    "topk:1.5",        # ratio must be <= 1
    "topk:nan",        # not a number in range
    "powersgd:0",      # rank must be >= 1
    "powersgd:2.5",    # rank must be an integer
    "none:3",          # none takes no argument
])
def test_parse_rejects_bad_specs_listing_the_forms(spec):
    with pytest.raises(ValueError, match=r"is not one of: none, fp16, topk:0\.01, powersgd:4"):
        compression.parse(spec)


def test_bytes_per_step_on_the_mnist_cnn_meet_the_issue_ratios():
    shapes = [tuple(v.shape) for v in networks.build("cnn", (28, 28, 1), 10).trainable_variables]
    full = compression.parse("none").bytes_per_step(shapes)
    assert full == 4 * sum(math.prod(s) for s in shapes)
    assert compression.parse("fp16").bytes_per_step(shapes) / full == 0.5
    assert compression.parse("topk:0.01").bytes_per_step(shapes) / full <= 0.03
    assert compression.parse("powersgd:4").bytes_per_step(shapes) / full <= 0.05


def test_topk_error_feedback_keeps_what_was_not_sent():
    var = tf.Variable(tf.zeros([4]))
    topk = compression.TopK(0.25)                      # one entry of four per step
    topk.build([var])
    sent = topk.exchange([tf.constant([1.0, -3.0, 2.0, 0.5])], OneRank())[0].numpy()
    np.testing.assert_array_equal(sent, [0, -3, 0, 0])
    sent = topk.exchange([tf.zeros([4])], OneRank())[0].numpy()     # the residual goes next
    np.testing.assert_array_equal(sent, [0, 0, 2, 0])


def test_powersgd_recovers_a_low_rank_gradient_exactly():
    var = tf.Variable(tf.zeros([20, 10]))
    rng = np.random.default_rng(0)
    grad = tf.constant((rng.standard_normal((20, 2)) @ rng.standard_normal((2, 10))).astype("float32"))
    psgd = compression.PowerSGD(2)
    psgd.build([var])
    approx = psgd.exchange([grad], OneRank())[0]
    np.testing.assert_allclose(approx.numpy(), grad.numpy(), atol=1e-4)


def test_powersgd_leaves_biases_uncompressed():
    psgd = compression.PowerSGD(4)
    assert not psgd.compresses((128,)) and not psgd.compresses((3, 3))
    assert psgd.compresses((1600, 128))


@pytest.mark.horovod
def test_each_compressor_converges_with_identical_weights_on_two_ranks(tmp_path):
    out = tmp_path / "results.json"
    proc = run_two_ranks(["tests/models/two_rank_compression.py", str(out), *SPECS])
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    results = json.loads(out.read_text())
    for spec in SPECS:
        r = results[spec]
        assert r["after"] < 0.2 * r["before"], (spec, r)     # converges on the small problem
        assert r["max_rank_diff"] == 0.0, (spec, r)          # both ranks hold the same weights
