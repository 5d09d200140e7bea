"""``DeepLabSegmenter``: a DeepLab whose outputs are at the input size (labels, probabilities
or logits), so that ``segmenter.predict(images)`` gives a segmentation, as keras-hub's
image segmenters do.

The wrapped ``DeepLab`` keeps the model contract (logits at the native output stride); the
segmenter adds the inference path's align-corners upsampling to the input size and the
softmax / argmax of ``deeplab_tf.inference``. Single scale, no padding: use
``DeepLab.predict_labels`` for the padded, multi-scale, flipped evaluation path.

Example:

>>> segmenter = DeepLabSegmenter(model, output_type="labels")
>>> segmenter.predict(np.zeros((2, 65, 65, 3), "float32")).shape
(2, 65, 65)
"""

from __future__ import annotations

import keras
import tensorflow as tf

from deeplab_tf.inference import upsample_logits

OUTPUTS = ("labels", "probabilities", "logits")


@keras.saving.register_keras_serializable(package="deeplab_tf")
class DeepLabSegmenter(keras.Model):
    """A ``DeepLab`` with input-size outputs (shares the wrapped model's weights).

    Args:
        deeplab: DeepLab. The network.
        output_type: str. ``"labels"`` (int32 [B, H, W]), ``"probabilities"`` (float32
            [B, H, W, C] softmax) or ``"logits"`` (float32 [B, H, W, C]).
    """

    def __init__(self, deeplab, output_type: str = "labels", **kwargs):
        if output_type not in OUTPUTS:
            raise ValueError(f"output_type must be one of {', '.join(OUTPUTS)}. "
                             f"Received: output_type={output_type!r}")
        super().__init__(**kwargs)
        self.deeplab = deeplab
        self.output_type = output_type

    @property
    def config(self):
        """The wrapped model's ModelConfig."""
        return self.deeplab.config

    def call(self, images, training=False):
        images = tf.cast(images, tf.float32)
        logits = upsample_logits(self.deeplab(images, training=training), tf.shape(images)[1:3])
        if self.output_type == "logits":
            return logits
        if self.output_type == "probabilities":
            return tf.nn.softmax(logits)
        return tf.argmax(logits, axis=3, output_type=tf.int32)

    def get_config(self):
        config = super().get_config()
        config.update({"deeplab": keras.saving.serialize_keras_object(self.deeplab),
                       "output_type": self.output_type})
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["deeplab"] = keras.saving.deserialize_keras_object(config["deeplab"])
        return cls(**config)
