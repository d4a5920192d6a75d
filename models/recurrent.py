"""Recurrent layers that read right-padded batches exactly, without a Keras mask.

A masked Keras RNN checks the mask at every time step (a select per output and state, each
step), which costs a fifth of a small model's training time here. Padding is only ever at the
end of a row, so the same results come cheaper from each row's length: the forward direction's
answer is its output at the row's last real token (the padding after it changes nothing before
it), and the backward direction reads each row's real tokens reversed in place
(`tf.reverse_sequence`), so it too starts at the last real token and ends at the first.
Where no row of a batch is padded (most batches at length 100), a plain `tf.reverse` does the
same, and its gradient is far cheaper than `tf.reverse_sequence`'s.

The cells' step is written here (Keras's arithmetic, run by Keras's own loop) so that, while
training, every step's input projection is one large matrix multiply before the loop, forward and
backward: Keras multiplies each step's input inside the loop, where such small multiplies run far
below the machine's peak. At prediction each step is still projected in the loop, so that a long
batch never holds all its projections at once (scoring's memory). The weights are the wrapped
Keras layers' own, so models saved before load and predict as they did.
"""

from __future__ import annotations

import keras
import tensorflow as tf
from keras.src.backend.tensorflow.rnn import rnn as keras_rnn

from models.text import PAD_ID


@keras.saving.register_keras_serializable(package="reviewflow")
class TokenCounts(keras.layers.Layer):
    """How many real (non-padding) tokens each right-padded row holds."""

    def call(self, tokens):
        return tf.reduce_sum(tf.cast(tf.not_equal(tokens, PAD_ID), "int32"), axis=1)


@keras.saving.register_keras_serializable(package="reviewflow")
class PaddedRecurrent(keras.layers.Layer):
    """`layer` (a SimpleRNN, GRU or LSTM) over right-padded rows of known lengths; both ways when `bidirectional`.

    Gives what `layer` (or `Bidirectional(layer)`) gives on the same rows with padding masked:
    the output at every real position (`return_sequences`) or the final output of each direction.
    """

    def __init__(self, layer: keras.layers.Layer, bidirectional: bool = False, return_sequences: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.bidirectional, self.return_sequences = bidirectional, return_sequences
        config = {**layer.get_config(), "return_sequences": True, "go_backwards": False}
        self.forward_layer = layer.__class__.from_config({**config, "name": f"{self.name}_forward"})
        self.backward_layer = layer.__class__.from_config({**config, "name": f"{self.name}_backward"}) if bidirectional else None

    def build(self, input_shape):
        self.forward_layer.build(input_shape[0])
        if self.backward_layer is not None:
            self.backward_layer.build(input_shape[0])

    def call(self, inputs, training=None):
        sequences, lengths = inputs
        outputs = [self._ends(_recurrence(self.forward_layer.cell, sequences, training), lengths, reversed_=False)]
        if self.backward_layer is not None:
            reversed_rows = _reverse_rows(sequences, lengths)
            outputs.append(self._ends(_recurrence(self.backward_layer.cell, reversed_rows, training), lengths, reversed_=True))
        return outputs[0] if len(outputs) == 1 else tf.concat(outputs, axis=-1)

    def _ends(self, outputs, lengths, reversed_: bool):
        if self.return_sequences:
            # The backward outputs, put back in the rows' order; what lies past a row's length is never read.
            return _reverse_rows(outputs, lengths) if reversed_ else outputs
        return tf.gather(outputs, tf.maximum(lengths, 1) - 1, axis=1, batch_dims=1)

    def compute_output_shape(self, input_shape):
        shape = self.forward_layer.compute_output_shape(input_shape[0])
        units = shape[-1] * (2 if self.bidirectional else 1)
        return (*shape[:-1], units) if self.return_sequences else (shape[0], units)

    def get_config(self):
        return {
            **super().get_config(),
            "layer": keras.saving.serialize_keras_object(self.forward_layer),
            "bidirectional": self.bidirectional,
            "return_sequences": self.return_sequences,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["layer"] = keras.saving.deserialize_keras_object(config["layer"])
        return cls(**config)


def _reverse_rows(rows, lengths):
    """Each row's first `lengths` steps in reverse order, what lies after them left in place."""
    unpadded = tf.reduce_all(tf.equal(lengths, tf.shape(rows)[1]))
    return tf.cond(
        unpadded, lambda: tf.reverse(rows, axis=[1]), lambda: tf.reverse_sequence(rows, lengths, seq_axis=1, batch_axis=0)
    )


def _recurrence(cell, rows, training):
    """Every step's output of `cell` (a SimpleRNN, GRU or LSTM cell, with Keras's arithmetic) over (batch, steps, width) rows.

    While training, the input dropout has one mask per row for all steps, as Keras's layers apply it;
    the recurrent dropout likewise one mask per row (Keras's GRU and LSTM draw one per gate).
    """
    kernel, recurrent_kernel = tf.convert_to_tensor(cell.kernel), tf.convert_to_tensor(cell.recurrent_kernel)
    # A GRU's bias (reset_after, Keras's default) is two rows: the input's and the recurrent state's.
    input_bias, recurrent_bias = (cell.bias[0], cell.bias[1]) if cell.use_bias and len(cell.bias.shape) == 2 else (cell.bias, None)
    state_mask = None
    if training and 0 < cell.dropout < 1:
        rows = rows * keras.random.dropout(tf.ones_like(rows[:, :1]), cell.dropout, seed=cell.seed_generator)
    if training and 0 < cell.recurrent_dropout < 1:
        state_mask = keras.random.dropout(tf.ones([tf.shape(rows)[0], cell.units]), cell.recurrent_dropout, seed=cell.seed_generator)

    def project(x):
        x = tf.tensordot(x, kernel, axes=1)
        return x + input_bias if cell.use_bias else x

    if training:
        rows = project(rows)
    kind = cell.__class__.__name__
    activation, gate = cell.activation, getattr(cell, "recurrent_activation", None)

    def step(x, states):
        if not training:
            x = project(x)
        h = states[0]
        inner = tf.matmul(h if state_mask is None else h * state_mask, recurrent_kernel)
        if kind == "SimpleRNNCell":
            h = activation(x + inner)
            return h, [h]
        if kind == "LSTMCell":
            i, f, c, o = tf.split(x + inner, 4, axis=-1)
            carry = gate(f) * states[1] + gate(i) * activation(c)
            h = gate(o) * activation(carry)
            return h, [h, carry]
        if recurrent_bias is not None:
            inner += recurrent_bias
        x_z, x_r, x_h = tf.split(x, 3, axis=-1)
        inner_z, inner_r, inner_h = tf.split(inner, 3, axis=-1)
        z = gate(x_z + inner_z)
        h = z * h + (1 - z) * activation(x_h + gate(x_r + inner_r) * inner_h)
        return h, [h]

    zeros = tf.zeros([tf.shape(rows)[0], cell.units], dtype=rows.dtype)
    return keras_rnn(step, rows, [zeros, zeros] if kind == "LSTMCell" else [zeros])[1]
