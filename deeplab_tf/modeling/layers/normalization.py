"""``Normalization``: the backbone's input normalisation, inside the model as the original."""

from __future__ import annotations

import keras
import tensorflow as tf

from deeplab_tf.modeling.layers import quantize


@keras.saving.register_keras_serializable(package="deeplab_tf")
class Normalization(keras.layers.Layer):
    """The backbone's input normalisation, applied inside the model as the original does.

    Quantization-aware (``quantization`` set, ``layers.quantize``): the pixels are
    fake-quantized with the fixed range [0, 255] (uint8 pixels are exact: scale 1, zero point
    0, the integer model's input), the normalisation is a 1x1 depthwise convolution with a
    fake-quantized kernel (the scale, exact in 8 bits) and a bias (the offset), and its
    output is fake-quantized with the fixed range of the normalised pixels. So the integer
    model normalises in integer arithmetic (a TFLite DEPTHWISE_CONV_2D; a float multiply by a
    constant would stay float there). For [-1, 1] the 8-bit grid holding 0 is offset from the
    pixels' by half a step (at most 1/255 of error), as in the original's converted models.

    Args:
        mode: str. ``"zero_mean_unit_range"`` maps [0, 255] to [-1, 1];
            ``"subtract_imagenet_mean"`` subtracts the original's mean RGB.
        quantization: None, "per_channel", "per_tensor" or "inherit" (see above).
    """

    MEAN_RGB = (123.15, 115.90, 103.06)
    MODES = ("zero_mean_unit_range", "subtract_imagenet_mean")

    def __init__(self, mode="zero_mean_unit_range", quantization=quantize.INHERIT, **kwargs):
        super().__init__(**kwargs)
        if mode not in self.MODES:
            raise ValueError(f"mode must be one of {self.MODES}. Received: mode={mode!r}")
        self.mode = mode
        self.quantization = quantize.resolve_quantization(quantization)
        if self.quantization:
            self.quantization_active = True  # see quantize.set_quantization_active

    def affine(self):
        """(scale, offset) per channel: normalised = pixels * scale + offset."""
        if self.mode == "zero_mean_unit_range":
            return (2.0 / 255.0,) * 3, (-1.0,) * 3
        return (1.0,) * 3, tuple(-m for m in self.MEAN_RGB)

    def output_range(self):
        """(min, max) of the normalised pixels."""
        scale, offset = self.affine()
        return (min(offset), max(s * 255.0 + o for s, o in zip(scale, offset)))

    def _quantized_call(self, x):
        x = quantize.fake_quant(tf.cast(x, tf.float32), 0.0, 255.0)
        scale, offset = self.affine()
        per_channel = self.quantization == "per_channel"
        kernel = tf.constant(scale, tf.float32)[tf.newaxis, tf.newaxis, tf.newaxis, :]
        if per_channel:  # each channel's scale is its largest level: exact
            low, high = tf.constant([-s for s in scale]), tf.constant(scale)
        else:
            low, high = 0.0, max(scale)
        kernel = quantize.fake_quant(kernel, low, high, narrow_range=True,
                                     per_channel=per_channel)
        x = tf.nn.depthwise_conv2d(x, tf.reshape(kernel, [1, 1, 3, 1]), [1, 1, 1, 1], "VALID")
        x = tf.nn.bias_add(x, tf.constant(offset, tf.float32))
        return quantize.fake_quant(x, *self.output_range())

    def call(self, inputs, training=None):
        if self.quantization and not (training and not self.quantization_active):
            return tf.cast(self._quantized_call(inputs), self.compute_dtype)
        x = tf.cast(inputs, self.compute_dtype)
        if self.mode == "zero_mean_unit_range":
            return x * (2.0 / 255.0) - 1.0
        return x - tf.constant(self.MEAN_RGB, dtype=x.dtype)

    def get_config(self):
        config = super().get_config()
        config.update(mode=self.mode, quantization=self.quantization)
        return config
