"""``DropPath``: the NAS cells' drop-path regularisation, with the original's schedule.

In training, each example's output of an operation is kept with probability ``k_t`` (and
scaled by ``1 / k_t``) or zeroed; one draw per example and per call. The keep probability
decreases linearly from 1 to ``keep_prob`` over the training steps::

    k_t = 1 - min(1, step / total_steps) * (1 - keep_prob)

where ``keep_prob`` is the cell's (the network's keep probability scaled by the cell's
depth, see ``cell_keep_prob``). The step comes from the training loop:
``bind_drop_path(model, step_variable, total_steps)`` (the Trainer binds its step,
``DeepLab.compile(drop_path_total_steps=...)`` the optimizer's iterations). In inference the
layer is the identity.

Example:

>>> layer = DropPath(0.9)
>>> bind_drop_path(keras.Sequential([layer]), tf.Variable(500), total_steps=1000)
>>> y = layer(x, training=True)   # k_t = 0.95
"""

from __future__ import annotations

import keras
import tensorflow as tf

from deeplab_tf.errors import ConfigError


def cell_keep_prob(keep_prob: float, cell_num: int, total_num_cells: int) -> float:
    """The original's keep probability of cell ``cell_num`` (0-based) of ``total_num_cells``:
    ``1 - (cell_num + 1) / total_num_cells * (1 - keep_prob)``."""
    return 1.0 - (cell_num + 1) / float(total_num_cells) * (1.0 - keep_prob)


@keras.saving.register_keras_serializable(package="deeplab_tf")
class DropPath(keras.layers.Layer):
    """Drop path with the original's linear schedule over the training steps.

    Args:
        keep_prob: float in (0, 1]. Keep probability at the end of training.
    """

    def __init__(self, keep_prob: float, **kwargs):
        super().__init__(**kwargs)
        if not 0.0 < float(keep_prob) <= 1.0:
            raise ValueError(f"keep_prob must be in (0, 1]. Received: keep_prob={keep_prob}")
        self.keep_prob = float(keep_prob)
        self._progress = None  # a callable: the fraction of training done, in [0, 1]

    def bind(self, step, total_steps: int) -> None:
        """Reads the training step from ``step`` (a variable) at every call in training."""
        if int(total_steps) < 1:
            raise ConfigError(f"total_steps must be >= 1. Received: total_steps={total_steps}")
        total = float(total_steps)
        # A function, not the variable itself: Keras would track a variable attribute as a
        # weight of this layer.
        self._progress = lambda: tf.minimum(1.0, tf.cast(step, tf.float32) / total)

    def call(self, inputs, training=None):
        if not training or self.keep_prob >= 1.0:
            return inputs
        if self._progress is None:
            raise ConfigError(
                "DropPath needs the training step: deeplab-train binds it; with Keras, "
                "compile a deeplab_tf.DeepLab with drop_path_total_steps=..., or call "
                "deeplab_tf.modeling.layers.drop_path.bind_drop_path(model, step, total_steps)")
        keep = 1.0 - self._progress() * (1.0 - self.keep_prob)
        noise = tf.random.uniform([tf.shape(inputs)[0], 1, 1, 1], dtype=tf.float32)
        mask = tf.floor(keep + noise) / keep
        return inputs * tf.cast(mask, inputs.dtype)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config["keep_prob"] = self.keep_prob
        return config


def bind_drop_path(model, step, total_steps: int) -> int:
    """Binds every ``DropPath`` of ``model`` to the training ``step``; returns their number."""
    layers = [layer for layer in model._flatten_layers(include_self=False, recursive=True)
              if isinstance(layer, DropPath)]
    for layer in layers:
        layer.bind(step, total_steps)
    return len(layers)
