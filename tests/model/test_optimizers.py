"""FusedAdam: Keras's Adam, each update one pass; the same weights step for step."""

import gc

import keras
import numpy as np
import pytest
import tensorflow as tf

from models.optimizers import FusedAdam


def trained_weights(optimizer: keras.optimizers.Optimizer, steps: int = 5, fit: bool = False) -> list[np.ndarray]:
    """A small embedding model's weights after `steps` batches: the embedding's gradient is sparse, with repeated rows.

    With `fit`, Keras's compiled training loop takes the steps (as the flow trains); otherwise each is applied eagerly.
    """
    keras.utils.set_random_seed(1)
    model = keras.Sequential([keras.Input((6,), dtype="int32"), keras.layers.Embedding(50, 8), keras.layers.Flatten(), keras.layers.Dense(1)])
    rng = np.random.default_rng(2)
    tokens = rng.integers(0, 20, size=(steps * 16, 6)).astype(np.int32)  # rows 20..49 never get a gradient
    target = rng.normal(size=(steps * 16, 1)).astype(np.float32)
    if fit:
        model.compile(optimizer=optimizer, loss="mse", steps_per_execution=2)
        model.fit(tokens, target, batch_size=16, shuffle=False, verbose=0)
        return [w.numpy() for w in model.weights]
    for batch in range(steps):
        rows = slice(16 * batch, 16 * (batch + 1))
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean((model(tokens[rows]) - target[rows]) ** 2)
        optimizer.apply_gradients(zip(tape.gradient(loss, model.trainable_variables), model.trainable_variables))
    return [w.numpy() for w in model.weights]


@pytest.mark.parametrize("fit", [False, True], ids=["eager", "fit"])
@pytest.mark.parametrize("settings", [{}, {"clipnorm": 0.01}, {"learning_rate": keras.optimizers.schedules.CosineDecay(0.01, 5)}])
def test_fused_adam_takes_the_steps_kerass_adam_takes(settings, fit):
    fused = trained_weights(FusedAdam(**settings), fit=fit)
    keras_own = trained_weights(keras.optimizers.Adam(**settings), fit=fit)
    untrained = trained_weights(keras.optimizers.SGD(0.0), fit=fit)
    for mine, theirs, start in zip(fused, keras_own, untrained, strict=True):
        assert not np.allclose(theirs, start)  # the steps moved every variable
        np.testing.assert_allclose(mine, theirs, rtol=1e-4, atol=1e-6)  # rounding; a step moves weights by about 1e-3


def test_fused_adam_is_restored_by_name_from_its_config():
    restored = keras.optimizers.deserialize(keras.optimizers.serialize(FusedAdam(0.003, clipnorm=1.0)))
    assert isinstance(restored, FusedAdam) and restored.clipnorm == 1.0


@pytest.mark.parametrize("rows", [1, 3, 4, 5, 127, 128, 129, 12_800, 16_384, 319_232])
def test_a_sparse_gradient_is_padded_with_zero_rows_to_one_of_four_sizes_per_doubling(rows):
    from models.optimizers import _padded_rows

    values, indices = tf.ones([rows, 2]), tf.range(1, rows + 1)
    padded_values, padded_indices = _padded_rows(values, indices)
    size = int(padded_indices.shape[0])
    assert rows <= size < rows * 1.25 + 1
    assert size % 2 ** max(rows.bit_length() - 3, 0) == 0  # four sizes per doubling: few shapes for XLA to compile
    np.testing.assert_array_equal(padded_values[:rows], values)
    np.testing.assert_array_equal(padded_indices[:rows], indices)
    assert not np.any(padded_values[rows:]) and not np.any(padded_indices[rows:])


def test_models_trained_one_after_another_in_one_process_each_update_their_own_weights():
    # As the bench's bare script trains: a model is dropped before the next of the same shapes is built.
    rng = np.random.default_rng(3)
    tokens, target = rng.integers(0, 50, size=(64, 6)).astype(np.int32), rng.normal(size=(64, 1)).astype(np.float32)
    for _ in range(3):
        model = keras.Sequential([keras.Input((6,), dtype="int32"), keras.layers.Embedding(50, 8), keras.layers.Flatten(), keras.layers.Dense(1)])
        model.compile(optimizer=FusedAdam(0.01), loss="mse")
        start = model.layers[0].embeddings.numpy()
        model.fit(tokens, target, batch_size=16, verbose=0)
        assert not np.allclose(start, model.layers[0].embeddings.numpy())
        del model
        gc.collect()
