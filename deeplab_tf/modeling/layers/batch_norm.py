"""``BatchNorm``: Keras batch normalisation that trains with the fused kernel, as the original.

Keras 3's ``BatchNormalization`` computes training-mode statistics with ``Mean`` /
``SquaredDifference`` / ``Rsqrt`` and differentiates them op by op. The original (slim's
``batch_norm(fused=True)``) runs one ``FusedBatchNormV3`` forward and one
``FusedBatchNormGradV3`` backward, about twice as fast on a CPU for DeepLab's feature maps.
This subclass keeps Keras' variables (``gamma``, ``beta``, ``moving_mean``,
``moving_variance``: same names, shapes, initialisers and checkpoint keys) and its inference
path (``training=False`` computes exactly what Keras computes), and replaces training mode:

* statistics of the batch from ``FusedBatchNormV3`` on NHWC input, computed in float32 under
  mixed precision (as Keras does), cast back to the layer's compute dtype;
* moving averages ``moving = decay * moving + (1 - decay) * batch`` with ``decay`` = Keras'
  ``momentum`` and the kernel's batch variance, which like the original's carries Bessel's
  correction (``n / (n - 1)``; Keras uses the biased variance there). The batch itself is
  normalised with the biased variance, as both do;
* ``synchronized=True`` under more than one replica: Keras' all-reduced moments (the fused
  kernel cannot all-reduce its statistics), the same Bessel-corrected moving variance over
  the global batch; with one replica it is the fused path;
* ``always_inference=True`` (``--fine_tune_batch_norm=false``): inference mode whatever
  ``training`` says (moving statistics used, never updated) while ``gamma`` and ``beta`` stay
  trainable, as the original's slim code with ``is_training=False`` for batch norm only.

Example:

>>> layer = BatchNorm(momentum=0.9997, epsilon=1e-5)
>>> y = layer(tf.random.normal([2, 9, 9, 4]), training=True)
"""

from __future__ import annotations

import keras
import tensorflow as tf


def _num_replicas() -> int:
    context = tf.distribute.get_replica_context()
    if context is None:  # cross-replica context: strategy.scope() without strategy.run
        return tf.distribute.get_strategy().num_replicas_in_sync
    return context.num_replicas_in_sync


@keras.saving.register_keras_serializable(package="deeplab_tf")
class BatchNorm(keras.layers.BatchNormalization):
    """Batch normalisation over the last axis of 4-D NHWC input; fused kernel in training.

    Args:
        always_inference: bool. Use (and never update) the moving statistics, also when
            called with ``training=True``; ``gamma`` and ``beta`` remain trainable.
        **kwargs: ``keras.layers.BatchNormalization`` arguments (``momentum`` is the
            original's ``decay``; ``axis`` must be -1; no renorm).
    """

    def __init__(self, always_inference: bool = False, **kwargs):
        super().__init__(**kwargs)
        if self.axis not in (-1, 3):
            raise ValueError(f"BatchNorm normalises the channel axis of NHWC input (-1). "
                             f"Received: axis={self.axis}")
        if self.renorm:
            raise ValueError("BatchNorm has no renorm. Received: renorm=True")
        self.always_inference = bool(always_inference)

    def call(self, inputs, training=None, mask=None):
        if self.always_inference:
            training = False
        if not (training and self.trainable) or mask is not None or inputs.shape.rank != 4:
            return super().call(inputs, training=training, mask=mask)
        x = tf.cast(inputs, tf.float32)
        channels = x.shape[-1]
        gamma = tf.cast(self.gamma, tf.float32) if self.scale else tf.ones([channels])
        beta = tf.cast(self.beta, tf.float32) if self.center else tf.zeros([channels])
        if self.synchronized and _num_replicas() > 1:
            # Keras' all-reduced moments (sums and counts over every replica).
            mean, variance, count = self.batch_moments(x)
            y = tf.nn.batch_normalization(x, mean, variance, beta, gamma, self.epsilon)
            batch_variance = variance * count / tf.maximum(count - 1.0, 1.0)
        else:
            y, mean, batch_variance, _, _, _ = tf.raw_ops.FusedBatchNormV3(
                x=x, scale=gamma, offset=beta, mean=tf.zeros([0]), variance=tf.zeros([0]),
                epsilon=float(self.epsilon), exponential_avg_factor=1.0, data_format="NHWC",
                is_training=True)
        self.update_moving_statistics(mean, batch_variance)
        return tf.cast(y, self.compute_dtype)

    def batch_moments(self, x):
        """(mean, biased variance, count) per channel of float32 NHWC ``x``, differentiable;
        over every replica's batch when ``synchronized`` (the quantization-aware ``ConvBN``
        folds them into its kernel)."""
        channels = x.shape[-1]
        count = tf.cast(tf.size(x) // channels, tf.float32)
        if self.synchronized and _num_replicas() > 1:
            mean, variance = self._moments(x, None)
            return mean, variance, count * float(_num_replicas())
        mean, variance = tf.nn.moments(x, axes=[0, 1, 2])
        return mean, variance, count

    def update_moving_statistics(self, mean, batch_variance):
        """``moving = decay * moving + (1 - decay) * batch`` (``batch_variance`` carries
        Bessel's correction, as the original's)."""
        decay = tf.cast(self.momentum, tf.float32)
        for variable, batch in ((self.moving_mean, mean), (self.moving_variance, batch_variance)):
            batch = tf.stop_gradient(batch)
            variable.assign(tf.cast(variable, tf.float32) * decay + batch * (1.0 - decay))

    def get_config(self):
        config = super().get_config()
        config["always_inference"] = self.always_inference
        return config
