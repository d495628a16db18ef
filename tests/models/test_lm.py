"""models.lm, one process: the LM step learns and keeps its sums, masks by (seed, global step), the
evaluation's perplexity of a uniform guess is the vocabulary size, and a saved body transfers."""
import numpy as np
import pytest
import tensorflow as tf

from models import lm, objectives, train, transformer

VOCAB, LENGTH = 24, 8


def _packed(n: int = 16, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` sequences of two repeating documents (ids 4-7, 8-10), ``<eod>`` after each."""
    rng = np.random.default_rng(seed)
    docs = [[4, 5, 6, 7, 2], [8, 9, 10, 2]]
    stream = np.concatenate([docs[i] for i in rng.integers(0, 2, 8 * n)])[: n * LENGTH]
    tokens = stream.reshape(n, LENGTH).astype("int32")
    segment = np.cumsum(np.c_[np.ones((n, 1), int), (tokens == 2)[:, :-1]], axis=1).astype("int32")
    return tokens, segment


def _step(objective: str, seed: int = 0, lr: float = 1e-2):
    import keras
    model = lm.build(objective, (LENGTH,), VOCAB)
    optimizer = keras.optimizers.Adam(lr)
    optimizer.build(model.trainable_variables)
    return model, optimizer, lm.LMStep(model, optimizer, lambda local: local, objective, seed)


def test_causal_lm_step_learns_and_sums_its_weighted_positions():
    tokens, segment = _packed()
    model, optimizer, step = _step("causal_lm")
    from_iterator = train.iterator_step(step)           # the loop's path: the batch is pulled in the graph
    batches = iter(tf.data.Dataset.from_tensor_slices((tokens, segment)).batch(16).repeat())
    first = from_iterator(batches)
    assert len(first) == 5 and first[4].shape == (5,)   # loss, hits, n, waited, the five marks
    _, targets, weights = objectives.causal_lm_batch(tokens, segment)
    loss_sum, hits, count = step.take_sums()
    assert count == float(weights.numpy().sum()) and 0 <= hits <= count
    assert abs(loss_sum / count - float(first[0])) < 1e-4
    assert (step.take_sums() == 0).all()                # taken: the next epoch starts at 0
    for _ in range(60):
        loss = float(from_iterator(batches)[0])
    assert float(first[0]) > np.log(VOCAB) - 1 and loss < 0.7     # from ~uniform to the two documents
    assert int(optimizer.iterations) == 61


def test_masked_lm_masks_by_seed_and_global_step():
    tokens, segment = _packed(32)
    model, optimizer, step = _step("masked_lm", seed=5)
    counts = [float(lm.batch("masked_lm", tokens, segment, lm.step_seed(5, k))[2].numpy().sum()) for k in range(3)]
    assert len(set(counts)) == 3                        # a new mask each step
    for k in range(3):
        assert int(optimizer.iterations) == k
        step(tf.constant(tokens), tf.constant(segment))
        assert step.take_sums()[2] == counts[k]         # step k masked exactly the (5, k) positions
    again = lm.batch("masked_lm", tokens, segment, lm.step_seed(5, 1))
    assert float(again[2].numpy().sum()) == counts[1]   # a retry of step 1 (any rank) masks the same


@pytest.mark.parametrize("objective", ["causal_lm", "masked_lm"])
def test_a_uniform_guess_has_the_vocabulary_size_as_perplexity(objective):
    tokens, segment = _packed(40)
    model = lm.build(objective, (LENGTH,), VOCAB)
    head = model.get_layer("lm_head")
    head.set_weights([np.zeros_like(w) for w in head.get_weights()])     # logits 0: uniform over VOCAB
    ds = tf.data.Dataset.from_tensor_slices((tokens, segment)).batch(lm.EVAL_BATCH)
    summed = []
    figures = lm.evaluate(lm.eval_function(model, objective, 0), ds, 0,
                          lambda values, name: summed.append(name) or values, "val_totals")
    assert summed == ["val_totals"]                     # one sum over ranks, before dividing
    assert figures["perplexity"] == pytest.approx(VOCAB, rel=1e-4)
    assert figures["loss"] == pytest.approx(np.log(VOCAB), rel=1e-5) and 0 <= figures["token_accuracy"] <= 1


def test_a_saved_pretrained_body_starts_a_classifier(tmp_path):
    pretrained = lm.build("causal_lm", (LENGTH,), VOCAB)
    pretrained.save(tmp_path / "model.keras")
    classifier = transformer.build("classify", VOCAB, LENGTH, n_classes=3)
    assert lm.body_digest(classifier) != lm.body_digest(pretrained)
    assert lm.load_body(str(tmp_path / "model.keras"), classifier) == lm.body_digest(pretrained)
    assert lm.body_digest(classifier) == lm.body_digest(pretrained)


def test_a_classify_objective_is_not_a_language_model():
    with pytest.raises(ValueError, match=r"train\.objective: classify is not a language-model objective"):
        lm.build("classify", (LENGTH,), VOCAB)
