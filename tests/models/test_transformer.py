"""The packed-sequence Transformer and its objectives: attention never crosses a document (nor,
causally, the future), losses skip document ends, pretraining lowers perplexity, and the body
transfers into a classifier."""
import numpy as np
import pytest
import tensorflow as tf

from models import networks, objectives, transformer

SIZE = transformer.TransformerSize(d_model=16, heads=2, layers=1, ff=32, dropout=0.0)
VOCAB, LENGTH = 20, 8


def _logits(model, tokens, segment):
    return model([tf.constant(tokens, tf.int32), tf.constant(segment, tf.int32)], training=False).numpy()


@pytest.mark.parametrize("head", ["causal_lm", "masked_lm"])
def test_attention_stays_within_each_document(head):
    model = transformer.build(head, VOCAB, LENGTH, size=SIZE)
    segment = [[1, 1, 1, 2, 2, 2, 2, 0]]
    a = _logits(model, [[5, 6, 2, 7, 8, 9, 2, 0]], segment)
    b = _logits(model, [[11, 12, 2, 7, 8, 9, 2, 0]], segment)       # document 1 changed
    assert np.allclose(a[0, 3:7], b[0, 3:7], atol=1e-5)            # document 2 does not see it
    assert not np.allclose(a[0, :3], b[0, :3])


def test_a_decoder_does_not_see_the_future():
    model = transformer.build("causal_lm", VOCAB, LENGTH, size=SIZE)
    segment = [[1] * LENGTH]
    a = _logits(model, [[5, 6, 7, 8, 9, 10, 11, 12]], segment)
    b = _logits(model, [[5, 6, 7, 8, 13, 14, 15, 16]], segment)     # positions 4.. changed
    assert np.allclose(a[0, :4], b[0, :4], atol=1e-5) and not np.allclose(a[0, 4:], b[0, 4:])


def test_masked_lm_batches_are_seeded_and_skip_padding():
    tokens, segment = np.full((4, LENGTH), 9), np.array([[1] * 6 + [0] * 2] * 4)
    (masked, _), targets, weights = objectives.masked_lm_batch(tokens, segment, seed=(0, 1), rate=0.5)
    again = objectives.masked_lm_batch(tokens, segment, seed=(0, 1), rate=0.5)[0][0]
    assert (masked.numpy() == again.numpy()).all() and (targets.numpy() == 9).all()
    chosen = weights.numpy() > 0
    assert chosen.any() and not chosen[:, 6:].any() and (masked.numpy()[chosen] == objectives.MASK_ID).all()


def test_pretraining_lowers_perplexity_and_the_body_transfers():
    rng = np.random.default_rng(0)
    docs = [[4, 5, 6, 7, 2], [8, 9, 10, 2]]                         # two documents, always the same
    stream = np.concatenate([docs[i] for i in rng.integers(0, 2, 64)])[: 32 * LENGTH]
    tokens = stream.reshape(32, LENGTH)
    segment = np.cumsum(np.c_[np.ones((32, 1), int), (tokens == 2)[:, :-1]], axis=1)
    model = transformer.build("causal_lm", VOCAB, LENGTH, size=SIZE)
    optimizer = tf.keras.optimizers.Adam(1e-2)
    inputs, targets, weights = objectives.causal_lm_batch(tokens, segment)
    before = objectives.perplexity(float(objectives.mean_loss(model(inputs), targets, weights)))

    @tf.function
    def step():
        with tf.GradientTape() as tape:
            loss = objectives.mean_loss(model(inputs, training=True), targets, weights)
        optimizer.apply_gradients(zip(tape.gradient(loss, model.trainable_variables), model.trainable_variables))

    for _ in range(40):
        step()
    after = objectives.perplexity(float(objectives.mean_loss(model(inputs), targets, weights)))
    assert before > 10 and after < 2.0                 # the two documents are learnt
    classifier = transformer.build("classify", VOCAB, LENGTH, n_classes=3, size=SIZE)
    transformer.transfer_body(model, classifier)
    assert all(np.array_equal(a, b) for a, b in zip(model.get_layer("body").get_weights(),
                                                    classifier.get_layer("body").get_weights()))
    assert classifier(tf.constant(tokens[:2], tf.int32)).shape == (2, 3)
    with pytest.raises(ValueError, match=r"train\.init_from: the pretrained body has weights .* use the same tokenizer"):
        transformer.transfer_body(model, transformer.build("classify", VOCAB + 1, LENGTH, n_classes=3, size=SIZE))


def test_lm_transformer_is_a_registered_token_network_that_round_trips(tmp_path):
    import keras
    model = networks.build("lm_transformer", (LENGTH,), 4, vocab_size=VOCAB)
    ids = np.array([[5, 6, 7, 0, 0, 0, 0, 0], [3, 2, 9, 9, 4, 1, 8, 2]], dtype="int32")
    logits = model(ids)
    assert logits.shape == (2, 4) and logits.dtype == "float32" and "lm_transformer" in networks.TOKEN_INPUTS
    model.save(tmp_path / "m.keras")
    np.testing.assert_allclose(keras.models.load_model(tmp_path / "m.keras")(ids), logits, rtol=1e-5, atol=1e-5)


def test_a_causal_classifier_reads_each_token_with_what_came_before_only():
    model = networks.build("lm_transformer", (LENGTH,), 3, vocab_size=VOCAB, causal=True)
    body = model.get_layer("body")
    assert transformer.attention_of(model) == "causal" and body.causal
    ids = tf.constant([[5, 6, 7, 8, 9, 0, 0, 0]], tf.int32)
    changed = tf.constant([[5, 6, 7, 8, 13, 0, 0, 0]], tf.int32)         # the last token changed
    a, b = (body(x, transformer.segments_of(x)).numpy() for x in (ids, changed))
    assert np.allclose(a[0, :4], b[0, :4], atol=1e-5) and not np.allclose(a[0, 4], b[0, 4])
    both_ways = networks.build("lm_transformer", (LENGTH,), 3, vocab_size=VOCAB)
    assert transformer.attention_of(both_ways) == "bidirectional"
    assert transformer.attention_of(networks.build("cnn", (12, 12, 1), 3)) is None
    with pytest.raises(ValueError, match="network 'text_transformer' has no causal attention"):
        networks.build("text_transformer", (LENGTH,), 3, vocab_size=VOCAB, causal=True)
    with pytest.raises(ValueError, match="causal applies to the classify head; masked_lm attends both ways"):
        transformer.build("masked_lm", VOCAB, LENGTH, causal=True)
