"""Keras's Adam, with each variable's update done in one pass over it.

Keras's Adam updates a variable in a dozen separate element-wise ops, each a pass over the
variable; for the 30,000 x 64 embedding that is a third of a small model's step (a SimpleRNN batch
took 29.4 ms with the embedding trained, 19.6 ms with it frozen; Keras's own issue 19992 says the
same of sparse gradients). A dense gradient goes to TensorFlow's fused `ResourceApplyAdam`
kernel, which does the same arithmetic in the same order for each element. A sparse gradient (an
embedding's) goes to one XLA computation of Keras's own formula instead: the kernel needs it made
dense first, and squares the sum of a repeated row's occurrences where Keras squares each
occurrence, which a scatter into the second moment had to make up for: a SimpleRNN batch took
27.1 ms that way and 25.1 ms this way (one thread, the two alternated in one process).
"""

from __future__ import annotations

import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package="reviewflow")
class FusedAdam(keras.optimizers.Adam):
    """`keras.optimizers.Adam` step for step, each variable's update one pass (on the CPU, without amsgrad)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # A compiled function per optimizer, so per model: one shared by the module reused a trace made
        # for a dropped model's variables when the next model trained in the same process.
        self._sparse_adam = tf.function(_sparse_adam, jit_compile=True)

    def update_step(self, gradient, variable, learning_rate):
        # On a GPU, passes over memory are cheap and a scatter-add of repeated rows may not be deterministic: Keras's own update.
        if self.amsgrad or "GPU" in variable.device.upper():
            return super().update_step(gradient, variable, learning_rate)
        dtype = variable.dtype
        step = tf.cast(self.iterations + 1, dtype)
        index = self._get_variable_index(variable)
        momentum, velocity = _owner(self._momentums[index]), _owner(self._velocities[index])
        beta_1, beta_2 = tf.cast(self.beta_1, dtype), tf.cast(self.beta_2, dtype)
        learning_rate, epsilon = tf.cast(learning_rate, dtype), tf.cast(self.epsilon, dtype)
        if isinstance(gradient, tf.IndexedSlices):
            values, indices = _padded_rows(tf.cast(gradient.values, dtype), gradient.indices)
            self._sparse_adam(_owner(variable), momentum, velocity, values, indices, learning_rate, beta_1, beta_2, epsilon, step)
            return
        tf.raw_ops.ResourceApplyAdam(
            var=_owner(variable).handle,
            m=momentum.handle,
            v=velocity.handle,
            beta1_power=tf.pow(beta_1, step),
            beta2_power=tf.pow(beta_2, step),
            lr=learning_rate,
            beta1=beta_1,
            beta2=beta_2,
            epsilon=epsilon,
            grad=tf.cast(gradient, dtype),
        )


def _sparse_adam(variable, momentum, velocity, values, indices, learning_rate, beta_1, beta_2, epsilon, step):
    """Keras's Adam step (keras/src/optimizers/adam.py) for a gradient of `values` at rows `indices`, rows repeating.

    As Keras's does, the first moment takes each row's summed gradient and the second the sum of its
    occurrences' squares. XLA makes the sums one scatter and the rest one pass over the variable.
    """
    width = values.shape[-1]
    sums = tf.math.unsorted_segment_sum(tf.concat([values, values * values], axis=-1), indices, tf.shape(variable)[0])
    gradient, squares = sums[:, :width], sums[:, width:]
    alpha = learning_rate * tf.sqrt(1 - tf.pow(beta_2, step)) / (1 - tf.pow(beta_1, step))
    new_momentum = momentum + (gradient - momentum) * (1 - beta_1)
    new_velocity = velocity + (squares - velocity) * (1 - beta_2)
    variable.assign(variable - (new_momentum * alpha) / (tf.sqrt(new_velocity) + epsilon))
    momentum.assign(new_momentum)
    velocity.assign(new_velocity)


def _padded_rows(values, indices):
    """`values` and `indices` with zero rows (at index 0) added, up to one of four sizes per doubling (under 25% more).

    XLA compiles once for each shape it meets, about 0.15 s here; a length-bucketed batch's gradient has
    as many rows as tokens: an epoch of the default BiLSTM has 138 batch lengths, and 21 padded sizes.
    Adding zeros changes no sum.
    """
    rows = tf.shape(indices)[0]
    doublings = tf.math.floor(tf.math.log(tf.cast(tf.maximum(rows, 1), tf.float64)) / tf.math.log(tf.constant(2.0, tf.float64)))
    step = tf.cast(tf.pow(tf.constant(2.0, tf.float64), tf.maximum(doublings - 2, 0)), tf.int32)
    extra = (rows + step - 1) // step * step - rows
    return tf.pad(values, [[0, extra], [0, 0]]), tf.pad(indices, [[0, extra]])


def _owner(variable) -> tf.Variable:
    """The TensorFlow variable behind a Keras one."""
    return variable.value if isinstance(variable, keras.Variable) else variable
