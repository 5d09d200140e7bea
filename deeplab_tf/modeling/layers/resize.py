"""Align-corners bilinear resizing, as the original resizes every feature map and logits.

``resize_bilinear`` (a function), ``ResizeLike`` (the layer that resizes to another tensor's
size), ``resize_nearest`` (labels) and ``scale_dimension`` (the original's size rule for a
scaled input).
"""

from __future__ import annotations

import keras
import tensorflow as tf


def scale_dimension(dim, scale):
    """The original's ``scale_dimension``: ``int((dim - 1) * scale + 1)``.

    Works on Python ints and on integer tensors (for dynamic shapes). For ``scale = 1/s``
    with integer ``s`` it equals ``(dim - 1) // s + 1`` exactly.
    """
    if isinstance(dim, tf.Tensor):
        return tf.cast((tf.cast(dim, tf.float32) - 1.0) * scale + 1.0, tf.int32)
    return int((float(dim) - 1.0) * scale + 1.0)


def resize_bilinear(images, size):
    """Bilinear resize with align_corners=True (corner pixels map onto corner pixels).

    Args:
        images: tensor [batch, height, width, channels], any float dtype.
        size: (new_height, new_width), ints or scalar int tensors.

    Returns:
        The resized tensor, in the dtype of ``images``.
    """
    resized = tf.compat.v1.image.resize_bilinear(images, size, align_corners=True)
    return tf.cast(resized, images.dtype)


def _nearest_indices(n_in, n_out):
    """Source index of each output index: ``round(i * (n_in - 1) / (n_out - 1))`` in float32,
    rounded half up, clamped (TensorFlow's align-corners nearest neighbour)."""
    n_in = tf.cast(n_in, tf.int32)
    n_out = tf.cast(n_out, tf.int32)
    scale = tf.where(n_out > 1, tf.cast(n_in - 1, tf.float32) /
                     tf.cast(tf.maximum(n_out - 1, 1), tf.float32), 0.0)
    positions = tf.cast(tf.range(n_out), tf.float32) * scale
    return tf.minimum(tf.cast(tf.floor(positions + 0.5), tf.int32), n_in - 1)


def resize_nearest(labels, size):
    """Nearest-neighbour resize with align_corners=True of integer labels [B, h, w].

    The original's ``tf.image.resize_nearest_neighbor(..., align_corners=True)``, computed as
    two gathers so that any integer dtype works in every runtime (TFLite's resize has no
    int32 kernel).

    Args:
        labels: int tensor [batch, height, width].
        size: (new_height, new_width), ints or scalar int tensors.
    """
    shape = tf.shape(labels)
    rows = tf.gather(labels, _nearest_indices(shape[1], size[0]), axis=1)
    return tf.gather(rows, _nearest_indices(shape[2], size[1]), axis=2)


@keras.saving.register_keras_serializable(package="deeplab_tf")
class ResizeLike(keras.layers.Layer):
    """Align-corners bilinear resize of ``inputs[0]`` to the spatial size of ``inputs[1]``."""

    def call(self, inputs):
        x, reference = inputs
        shape = tf.shape(reference)
        return resize_bilinear(x, [shape[1], shape[2]])

    def compute_output_shape(self, input_shapes):
        x, reference = input_shapes
        return (x[0], reference[1], reference[2], x[3])
