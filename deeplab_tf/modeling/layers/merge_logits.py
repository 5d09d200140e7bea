"""``MergeLogits``: the image pyramid's merge of equally sized logits, as the original's
``multi_scale_logits``: stacked on a new last axis, then its maximum or mean."""

from __future__ import annotations

import keras
import tensorflow as tf

from deeplab_tf.config import MERGE_METHODS


@keras.saving.register_keras_serializable(package="deeplab_tf")
class MergeLogits(keras.layers.Layer):
    """Element-wise maximum (``"max"``) or mean (``"avg"``) of a list of logits.

    Args:
        method: str. ``"max"`` or ``"avg"`` (the original's ``merge_method``).

    Example:

    >>> MergeLogits("avg")([np.zeros((1, 2, 2, 3)), np.ones((1, 2, 2, 3))])[0, 0, 0]
    [0.5, 0.5, 0.5]
    """

    def __init__(self, method: str = "max", **kwargs):
        super().__init__(**kwargs)
        if method not in MERGE_METHODS:
            raise ValueError(f"method must be one of {', '.join(MERGE_METHODS)}. "
                             f"Received: method={method!r}")
        self.method = method

    def call(self, inputs):
        stacked = tf.stack(list(inputs), axis=4)
        if self.method == "max":
            return tf.reduce_max(stacked, axis=4)
        return tf.reduce_mean(stacked, axis=4)

    def compute_output_shape(self, input_shapes):
        return tuple(input_shapes[0])

    def get_config(self):
        config = super().get_config()
        config.update(method=self.method)
        return config
