"""``Normalization``: the backbone's input normalisation, inside the model as the original."""

from __future__ import annotations

import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package="deeplab_tf")
class Normalization(keras.layers.Layer):
    """The backbone's input normalisation, applied inside the model as the original does.

    Args:
        mode: str. ``"zero_mean_unit_range"`` maps [0, 255] to [-1, 1];
            ``"subtract_imagenet_mean"`` subtracts the original's mean RGB.
    """

    MEAN_RGB = (123.15, 115.90, 103.06)
    MODES = ("zero_mean_unit_range", "subtract_imagenet_mean")

    def __init__(self, mode="zero_mean_unit_range", **kwargs):
        super().__init__(**kwargs)
        if mode not in self.MODES:
            raise ValueError(f"mode must be one of {self.MODES}. Received: mode={mode!r}")
        self.mode = mode

    def call(self, inputs):
        x = tf.cast(inputs, self.compute_dtype)
        if self.mode == "zero_mean_unit_range":
            return x * (2.0 / 255.0) - 1.0
        return x - tf.constant(self.MEAN_RGB, dtype=x.dtype)

    def get_config(self):
        config = super().get_config()
        config["mode"] = self.mode
        return config
