"""The DeepLab network as a Keras functional graph, from a ``ModelConfig``.

Data flow::

    images float32 RGB [B, H, W, 3] in [0, 255]
      -> Normalization (the backbone's: [-1, 1] scaling, or mean-RGB subtraction)
      -> backbone (features at ``output_stride`` + named endpoints)
      -> ASPP (image pooling + 1x1 + atrous branches, concat projection)
      -> decoder (one stage per ``decoder_output_stride``), if any
      -> logits [B, h, w, num_classes] at the native output stride

``build_network`` returns the graph's input and output; ``deeplab_tf.model.DeepLab`` makes the
Keras model of them (and the inference path builds a plain ``keras.Model`` of them to fold).
"""

from __future__ import annotations

import keras

from deeplab_tf.config import ModelConfig
from deeplab_tf.modeling.backbones import get_backbone
from deeplab_tf.modeling.heads.aspp import aspp
from deeplab_tf.modeling.heads.decoder import decoder
from deeplab_tf.modeling.heads.logits import logits
from deeplab_tf.modeling.layers.normalization import Normalization
from deeplab_tf.modeling.layers.quantize import quantization_scope


def build_network(config: ModelConfig, input_shape=(None, None, 3)):
    """``(images, logits)``: the Keras input and output tensors of the network.

    With ``config.quantization`` set, every block is built quantization-aware (the blocks
    take it from ``quantization_scope``; see ``modeling.layers.quantize``).

    Args:
        config: ModelConfig.
        input_shape: (height, width, 3). Height and width may be None (dynamic).
    """
    spec = get_backbone(config.model_variant)
    images = keras.Input(shape=tuple(input_shape), name="images", dtype="float32")
    with quantization_scope(config.quantization):
        x = Normalization(spec.normalization, name="normalization")(images)
        features, endpoints = spec.builder(x, config, config.model_variant)
        features = aspp(features, config)
        if config.uses_decoder:
            features = decoder(features, endpoints, config, spec.decoder_taps)
        return images, logits(features, config)

