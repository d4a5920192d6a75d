"""The length-aware recurrent layers give what Keras's masked layers give, and survive saving."""

import keras
import numpy as np
import pytest
from keras import layers

from models.architectures import RECURRENT, build_model


def masked_reference(architecture: str, vocab_size: int) -> keras.Model:
    """The same classifier the usual Keras way: the embedding masks the padding, Bidirectional wraps the layers."""
    cell = {"rnn": layers.SimpleRNN, "birnn": layers.SimpleRNN, "bigru": layers.GRU, "bilstm": layers.LSTM}[architecture]
    stack = {"rnn": [(False, False)], "birnn": [(True, True), (True, False)], "bigru": [(True, True), (True, False)],
             "bilstm": [(True, False)]}[architecture]
    tokens = keras.Input(shape=(None,), dtype="int32")
    x = layers.Embedding(vocab_size, 64, mask_zero=True)(tokens)
    for both, sequences in stack:
        layer = cell(64, return_sequences=sequences)
        x = (layers.Bidirectional(layer) if both else layer)(x)
    x = layers.Dense(64, activation="relu")(x)
    return keras.Model(tokens, layers.Dense(1, activation="sigmoid")(x))


def right_padded(rng: np.random.Generator, lengths: list[int], vocab_size: int) -> np.ndarray:
    batch = np.zeros((len(lengths), max(lengths)), dtype=np.int32)
    for i, n in enumerate(lengths):
        batch[i, :n] = rng.integers(1, vocab_size, n)
    return batch


@pytest.mark.parametrize("architecture", RECURRENT)
def test_reading_to_each_length_equals_masking_the_padding(architecture):
    keras.utils.set_random_seed(7)
    ours, reference = build_model(architecture, 50), masked_reference(architecture, 50)
    reference.set_weights(ours.get_weights())
    batch = right_padded(np.random.default_rng(1), [1, 3, 17, 40, 40, 9], 50)
    expected = reference(batch, training=False).numpy()
    assert np.allclose(ours(batch, training=False).numpy(), expected, atol=1e-6)
    # A row's score does not depend on how far the batch pads it.
    wider = np.pad(batch, ((0, 0), (0, 25)))
    assert np.allclose(ours(wider, training=False).numpy(), expected, atol=1e-6)


@pytest.mark.parametrize("architecture", ["birnn", "bilstm"])
def test_the_padded_layers_save_and_load_with_their_weights(tmp_path, architecture):
    keras.utils.set_random_seed(3)
    model = build_model(architecture, 30, spatial_dropout=0.2, dropout=0.1)
    batch = right_padded(np.random.default_rng(2), [5, 12, 2], 30)
    model.save(tmp_path / "model.keras")
    loaded = keras.models.load_model(tmp_path / "model.keras", compile=False)
    assert np.allclose(loaded(batch, training=False).numpy(), model(batch, training=False).numpy(), atol=1e-7)


@pytest.mark.parametrize("lengths", [[40, 40, 40, 40], [1, 3, 17, 40, 40, 9]], ids=["no-row-padded", "some-rows-padded"])
@pytest.mark.parametrize("architecture", RECURRENT)
def test_training_gradients_equal_the_masked_layers_whether_or_not_rows_are_padded(architecture, lengths):
    import tensorflow as tf

    keras.utils.set_random_seed(11)
    ours, reference = build_model(architecture, 50), masked_reference(architecture, 50)
    reference.set_weights(ours.get_weights())
    batch = right_padded(np.random.default_rng(4), lengths, 50)
    labels = tf.constant(np.arange(len(lengths)) % 2, dtype="float32")[:, None]

    def gradients(model: keras.Model) -> list[np.ndarray]:
        with tf.GradientTape() as tape:
            loss = keras.losses.binary_crossentropy(labels, model(batch, training=True))
        return [tf.convert_to_tensor(g).numpy() for g in tape.gradient(loss, model.trainable_weights)]

    for got, expected in zip(gradients(ours), gradients(reference), strict=True):
        assert np.allclose(got, expected, atol=1e-5)


@pytest.mark.parametrize("architecture", ["bigru", "bilstm"])
def test_dropouts_act_while_training_and_do_nothing_at_prediction(architecture):
    keras.utils.set_random_seed(5)
    ours = build_model(architecture, 50, dropout=0.5, recurrent_dropout=0.5)
    reference = masked_reference(architecture, 50)
    reference.set_weights(ours.get_weights())
    batch = right_padded(np.random.default_rng(6), [4, 30, 30, 12], 50)
    predicted = ours(batch, training=False).numpy()
    assert np.allclose(predicted, reference(batch, training=False).numpy(), atol=1e-6)
    assert not np.allclose(ours(batch, training=True).numpy(), predicted, atol=1e-4)
