"""Recurrent layers that read right-padded batches exactly, without a Keras mask.

A masked Keras RNN checks the mask at every time step (a select per output and state, each
step), which costs a fifth of a small model's training time here. Padding is only ever at the
end of a row, so the same results come cheaper from each row's length: the forward direction's
answer is its output at the row's last real token (the padding after it changes nothing before
it), and the backward direction reads each row's real tokens reversed in place
(`tf.reverse_sequence`), so it too starts at the last real token and ends at the first.
Where no row of a batch is padded (most batches at length 100), a plain `tf.reverse` does the
same, and its gradient is far cheaper than `tf.reverse_sequence`'s.
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
        outputs = [self._ends(self.forward_layer(sequences, training=training), lengths, reversed_=False)]
        if self.backward_layer is not None:
            reversed_rows = _reverse_rows(sequences, lengths)
            outputs.append(self._ends(self.backward_layer(reversed_rows, training=training), lengths, reversed_=True))
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
