"""The DeepLab network as a Keras functional graph, from a ``ModelConfig``.

Data flow::

    images float32 RGB [B, H, W, 3] in [0, 255]
      -> Normalization (the backbone's: [-1, 1] scaling, or mean-RGB subtraction)
      -> backbone (features at ``output_stride`` + named endpoints)
      -> ASPP (image pooling + 1x1 + atrous branches, concat projection), or the Dense
         Prediction Cell, or nothing (``aspp_with_batch_norm=False``)
      -> decoder (one stage per ``decoder_output_stride``), if any
      -> logits [B, h, w, num_classes] at the native output stride (the decoder's output
         itself with ``decoder_output_is_logits``)

With ``ModelConfig.image_pyramid`` that network (a nested ``keras.Model`` named
``single_scale_network``) runs once per scale and the output is the merged logits
(``modeling.pyramid``).

``build_network`` returns the graph's input and output; ``deeplab_tf.model.DeepLab`` makes the
Keras model of them (and the inference path builds a plain ``keras.Model`` of them to fold).
``build_network_outputs`` also returns each pyramid scale's logits, for the training loss.
"""

from __future__ import annotations

import keras

from deeplab_tf.config import ModelConfig
from deeplab_tf.modeling.backbones import get_backbone
from deeplab_tf.modeling.heads.aspp import aspp
from deeplab_tf.modeling.heads.decoder import decoder
from deeplab_tf.modeling.heads.dense_prediction_cell import dense_prediction_cell
from deeplab_tf.modeling.heads.logits import logits
from deeplab_tf.modeling.layers.normalization import Normalization
from deeplab_tf.modeling.layers.quantize import quantization_scope
from deeplab_tf.modeling.pyramid import (MERGED_LOGITS, SINGLE_SCALE_NETWORK, pyramid_logits,
                                         with_scaled_image_pooling)


def build_network(config: ModelConfig, input_shape=(None, None, 3)):
    """``(images, logits)``: the Keras input and output tensors of the network.

    With ``config.quantization`` set, every block is built quantization-aware (the blocks
    take it from ``quantization_scope``; see ``modeling.layers.quantize``).

    Args:
        config: ModelConfig.
        input_shape: (height, width, 3). Height and width may be None (dynamic).
    """
    images, outputs = build_network_outputs(config, input_shape)
    return images, outputs[MERGED_LOGITS]


def build_network_outputs(config: ModelConfig, input_shape=(None, None, 3)):
    """``(images, {name: logits})``: ``{"merged_logits": logits}``, plus ``"logits_<s>"`` per
    scale of an image pyramid (``modeling.pyramid``).

    Args:
        config: ModelConfig.
        input_shape: (height, width, 3). Height and width may be None (dynamic).
    """
    if not config.uses_image_pyramid:
        images, logits_ = _single_scale(config, input_shape)
        return images, {MERGED_LOGITS: logits_}
    network = keras.Model(*_single_scale(config), name=SINGLE_SCALE_NETWORK)
    images = keras.Input(shape=tuple(input_shape), name="images", dtype="float32")
    twins = {}

    def network_for_scale(scale):
        if scale not in twins:
            twins[scale] = with_scaled_image_pooling(network, config, scale)
        return twins[scale]

    return images, pyramid_logits(images, config, network_for_scale)


def _single_scale(config: ModelConfig, input_shape=(None, None, 3)):
    spec = get_backbone(config.model_variant)
    images = keras.Input(shape=tuple(input_shape), name="images", dtype="float32")
    with quantization_scope(config.quantization):
        x = Normalization(spec.normalization, name="normalization")(images)
        features, endpoints = spec.builder(x, config, config.model_variant)
        if config.dense_prediction_cell:
            features = dense_prediction_cell(features, config)
        elif config.aspp_with_batch_norm:
            features = aspp(features, config)
        if config.uses_decoder:
            features = decoder(features, endpoints, config, spec.decoder_taps)
        if config.decoder_output_is_logits:
            return images, features
        return images, logits(features, config)

