"""``ScaledResize``: align-corners bilinear resize to a scaled size of another tensor.

The original's image pyramid resizes the images to ``scale_dimension(crop, scale)`` and each
scale's logits to ``scale_dimension(crop, max(1, max scale) / logits stride)``: both are this
layer, with the image (whose size plays the crop's) as the reference.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from deeplab_tf.modeling.layers.resize import resize_bilinear, scale_dimension


@keras.saving.register_keras_serializable(package="deeplab_tf")
class ScaledResize(keras.layers.Layer):
    """Resizes ``inputs[0]`` to ``scale_dimension(size of inputs[1], factor)`` (align corners).

    Args:
        factor: float. Scale of the reference's height and width, by the original's
            ``scale_dimension`` rule ``int((d - 1) * factor + 1)``.

    Example:

    >>> layer = ScaledResize(0.5)
    >>> layer([np.zeros((1, 65, 33, 3)), np.zeros((1, 65, 33, 3))]).shape
    TensorShape([1, 33, 17, 3])
    """

    def __init__(self, factor: float, **kwargs):
        super().__init__(**kwargs)
        self.factor = float(factor)
        if not self.factor > 0:
            raise ValueError(f"factor must be > 0. Received: factor={factor}")

    def call(self, inputs):
        x, reference = inputs
        shape = tf.shape(reference)
        return resize_bilinear(x, [scale_dimension(shape[1], self.factor),
                                   scale_dimension(shape[2], self.factor)])

    def compute_output_shape(self, input_shapes):
        x, reference = input_shapes
        size = [None if d is None else scale_dimension(d, self.factor) for d in reference[1:3]]
        return (x[0], size[0], size[1], x[3])

    def get_config(self):
        config = super().get_config()
        config.update(factor=self.factor)
        return config
