"""The activations a ``ConvBN`` applies after its batch norm (or bias), by name.

The original's: ReLU, ReLU6, MobileNetV3's hard-swish and quantization-friendly sigmoid
(``q_sigmoid``, the gate of its squeeze-and-excitation and of the image-pooling branch under
``image_se_uses_qsigmoid``), sigmoid, and the bounded activation's clip to [-6, 6].
"""

from __future__ import annotations

import tensorflow as tf

CLIP_CAP = 6.0  # the original's bounded activation clips to [-6, 6]


def hard_swish(x):
    """MobileNetV3's hard-swish, as the original writes it: ``x * relu6(x + 3) * (1/6)``."""
    return x * tf.nn.relu6(x + 3.0) * (1.0 / 6.0)


def q_sigmoid(x):
    """The original's quantization-friendly sigmoid: ``relu6(x + 3) * 0.16667``.

    The gate of MobileNetV3's squeeze-and-excitation and of the image-pooling branch under
    ``image_se_uses_qsigmoid``; the literal 0.16667 (not 1/6) is the original's.
    """
    return tf.nn.relu6(x + 3.0) * 0.16667


def clip6(x):
    """The original's bounded activation without a floor: ``x`` clipped to [-6, 6]."""
    return tf.clip_by_value(x, -CLIP_CAP, CLIP_CAP)


# Name -> function (None: no activation).
ACTIVATIONS = {None: None, "relu": tf.nn.relu, "relu6": tf.nn.relu6,
               "hard_swish": hard_swish, "q_sigmoid": q_sigmoid, "sigmoid": tf.nn.sigmoid,
               "clip6": clip6}
