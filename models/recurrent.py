"""Recurrent layers that read right-padded batches exactly, without a Keras mask.

A masked Keras RNN checks the mask at every time step (a select per output and state, each
step), which costs a fifth of a small model's training time here. Padding is only ever at the
end of a row, so the same results come cheaper from each row's length: the forward direction's
answer is its output at the row's last real token (the padding after it changes nothing before
it), and the backward direction reads each row's real tokens reversed in place
(`tf.reverse_sequence`), so it too starts at the last real token and ends at the first.
Where no row of a batch is padded (most batches at length 100), a plain `tf.reverse` does the
same, and its gradient is far cheaper than `tf.reverse_sequence`'s.

The cells' arithmetic runs here, not in Keras's loop: while training, every step's input
projection is one large matrix multiply per direction before the loop (Keras multiplies each
step's input inside it, where small multiplies run far below the machine's peak), and the two
directions of a bidirectional layer run in one loop, their states stacked, so that each step's
recurrent multiply is one batched multiply whose two halves two cores can share. The weights are
the wrapped Keras layers' own, so models saved before load and predict as they did.
"""

from __future__ import annotations

import keras
import tensorflow as tf

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
        cells = [self.forward_layer.cell] + ([self.backward_layer.cell] if self.bidirectional else [])
        rows = [sequences] + ([_reverse_rows(sequences, lengths)] if self.bidirectional else [])
        steps = [tf.transpose(x, [1, 0, 2]) for x in rows]  # time first: the loop reads one step at a time
        if training:
            # The input dropout has one mask per row for all steps, as Keras applies it.
            steps = tf.stack([_projected(cell, x, training) for cell, x in zip(cells, steps)], axis=1)
            input_kernel = input_bias = None
        else:
            # At prediction each step is projected in the loop, so that a long batch does not hold all
            # its projections at once (scoring's memory).
            steps = tf.stack(steps, axis=1)
            input_kernel = _stacked(cell.kernel for cell in cells)
            input_bias = _stacked(_input_bias(cell) for cell in cells)[:, None, :] if cells[0].use_bias else None
        recurrent_bias = _stacked(cell.bias[1] for cell in cells)[:, None, :] if _has_recurrent_bias(cells[0]) else None
        recurrent_mask = _recurrent_dropout_mask(cells, tf.shape(sequences)[0]) if training else None
        kernel = _stacked(cell.recurrent_kernel for cell in cells)
        # (steps, directions, batch, units)
        outputs = _recurrence(cells[0], steps, kernel, input_kernel, input_bias, recurrent_bias, recurrent_mask)
        directions, batch = len(cells), tf.shape(lengths)[0]
        if not self.return_sequences:
            # Both directions end at index length - 1: the backward one reads each row reversed in place.
            shape = [batch, directions]
            at = [(tf.maximum(lengths, 1) - 1)[:, None], tf.range(directions)[None, :], tf.range(batch)[:, None]]
            ends = tf.gather_nd(outputs, tf.stack([tf.broadcast_to(i, shape) for i in at], axis=-1))  # (batch, directions, units)
            return tf.reshape(ends, [batch, directions * self.forward_layer.units])
        outputs = tf.transpose(outputs, [1, 2, 0, 3])  # (directions, batch, steps, units)
        if not self.bidirectional:
            return outputs[0]
        # The backward outputs, put back in the rows' order; what lies past a row's length is never read.
        return tf.concat([outputs[0], _reverse_rows(outputs[1], lengths)], axis=-1)

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




def _stacked(values):
    """One tensor of the directions' values (Keras variables or tensors), direction first."""
    return tf.stack([tf.convert_to_tensor(v) for v in values])


def _input_bias(cell):
    return cell.bias[0] if _has_recurrent_bias(cell) else cell.bias


def _has_recurrent_bias(cell) -> bool:
    # A GRU's bias (reset_after, Keras's default) is two rows: the input's and the recurrent state's.
    return cell.use_bias and len(cell.bias.shape) == 2


def _projected(cell, steps, training):
    """(steps, batch, width) inputs times the cell's input kernel plus its input bias, after its input dropout."""
    if training and 0 < cell.dropout < 1:
        steps = steps * keras.random.dropout(tf.ones_like(steps[:1]), cell.dropout, seed=cell.seed_generator)
    projected = tf.tensordot(steps, tf.convert_to_tensor(cell.kernel), axes=1)  # one multiply of (steps x batch, width) rows
    return projected + _input_bias(cell) if cell.use_bias else projected


def _recurrent_dropout_mask(cells, batch):
    if not 0 < cells[0].recurrent_dropout < 1:
        return None
    # One mask per row for all steps, each direction its own; Keras's GRU and LSTM draw one per gate.
    ones = tf.ones([batch, cells[0].units])
    return tf.stack([keras.random.dropout(ones, cell.recurrent_dropout, seed=cell.seed_generator) for cell in cells])


def _recurrence(cell, steps, kernel, input_kernel, input_bias, recurrent_bias, recurrent_mask):
    """The cell's recurrence (SimpleRNN, GRU or LSTM, Keras's arithmetic) over (steps, directions, batch, width):
    projected inputs, or raw ones with `input_kernel`; every step's output, (steps, directions, batch, units)."""
    activation, gate = cell.activation, getattr(cell, "recurrent_activation", None)
    kind = cell.__class__.__name__

    def step(state, x):
        h = state[0]
        if input_kernel is not None:
            x = tf.matmul(x, input_kernel) if input_bias is None else tf.matmul(x, input_kernel) + input_bias
        inner = tf.matmul(h if recurrent_mask is None else h * recurrent_mask, kernel)
        if kind == "SimpleRNNCell":
            return (activation(x + inner),)
        if kind == "LSTMCell":
            i, f, c, o = tf.split(x + inner, 4, axis=-1)
            carry = gate(f) * state[1] + gate(i) * activation(c)
            return gate(o) * activation(carry), carry
        if recurrent_bias is not None:
            inner += recurrent_bias
        x_z, x_r, x_h = tf.split(x, 3, axis=-1)
        inner_z, inner_r, inner_h = tf.split(inner, 3, axis=-1)
        z = gate(x_z + inner_z)
        return (z * h + (1 - z) * activation(x_h + gate(x_r + inner_r) * inner_h),)

    shape = tf.shape(steps)
    zeros = tf.zeros([shape[1], shape[2], tf.shape(kernel)[1]], dtype=steps.dtype)
    return tf.scan(step, steps, initializer=(zeros, zeros) if kind == "LSTMCell" else (zeros,))[0]
