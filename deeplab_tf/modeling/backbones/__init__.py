"""Backbones: one literal dict from model_variant to its builder and facts.

A backbone builder takes the *normalised* image tensor (a Keras functional tensor), the
``ModelConfig`` and the variant name, adds its layers to the graph and returns
``(features, endpoints)``: the encoder output at ``config.output_stride`` and a dict of named
endpoints, keyed by the original's endpoint names relative to the network scope (e.g.
``"entry_flow/block2/unit_1/xception_module/separable_conv2_pointwise"``). The decoder picks
its low-level inputs from ``BackboneSpec.decoder_taps`` (output stride -> endpoint name).
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Dict

from deeplab_tf.modeling.backbones import mobilenet_v2, mobilenet_v3, nas, resnet_v1, xception
from deeplab_tf.modeling.layers.normalization import Normalization


@dataclasses.dataclass(frozen=True)
class BackboneSpec:
    builder: Callable
    scope: str  # variable scope of the original checkpoints
    normalization: str  # deeplab_tf.modeling.layers.normalization.Normalization mode
    decoder_taps: Dict[int, str]  # output stride -> endpoint name


_XCEPTION_TAPS = {
    4: "entry_flow/block2/unit_1/xception_module/separable_conv2_pointwise",
    8: "entry_flow/block3/unit_1/xception_module/separable_conv2_pointwise",
    16: "exit_flow/block1/unit_1/xception_module/separable_conv2_pointwise",
}
_XCEPTION_71_TAPS = {
    4: "entry_flow/block3/unit_1/xception_module/separable_conv2_pointwise",
    8: "entry_flow/block5/unit_1/xception_module/separable_conv2_pointwise",
    16: "exit_flow/block1/unit_1/xception_module/separable_conv2_pointwise",
}
_RESNET_50_TAPS = {
    4: "block1/unit_2/bottleneck_v1/conv3",
    8: "block2/unit_3/bottleneck_v1/conv3",
    16: "block3/unit_5/bottleneck_v1/conv3",
}
_RESNET_101_TAPS = {
    4: "block1/unit_2/bottleneck_v1/conv3",
    8: "block2/unit_3/bottleneck_v1/conv3",
    16: "block3/unit_22/bottleneck_v1/conv3",
}
_RESNET_18_TAPS = {
    4: "block1/unit_1/lite_bottleneck_v1/conv2",
    8: "block2/unit_1/lite_bottleneck_v1/conv2",
    16: "block3/unit_1/lite_bottleneck_v1/conv2",
}
_PNASNET_TAPS = {4: "Stem", 8: "Cell_3", 16: "Cell_7"}
_HNASNET_TAPS = {4: "Cell_2", 8: "Cell_5", 16: "Cell_7"}
_MOBILENET_V2_TAPS = {
    4: "layer_4/depthwise_output",
    8: "layer_7/depthwise_output",
    16: "layer_14/depthwise_output",
}
_MOBILENET_V3_LARGE_TAPS = {
    4: "layer_4/depthwise_output",
    8: "layer_7/depthwise_output",
    16: "layer_13/depthwise_output",
}
_MOBILENET_V3_SMALL_TAPS = {
    4: "layer_2/depthwise_output",
    8: "layer_4/depthwise_output",
    16: "layer_9/depthwise_output",
}

BACKBONES = {
    "xception_41": BackboneSpec(xception.build, "xception_41", "zero_mean_unit_range", _XCEPTION_TAPS),
    "xception_65": BackboneSpec(xception.build, "xception_65", "zero_mean_unit_range", _XCEPTION_TAPS),
    "xception_71": BackboneSpec(xception.build, "xception_71", "zero_mean_unit_range", _XCEPTION_71_TAPS),
    "resnet_v1_50": BackboneSpec(resnet_v1.build, "resnet_v1_50", "subtract_imagenet_mean", _RESNET_50_TAPS),
    "resnet_v1_50_beta": BackboneSpec(resnet_v1.build, "resnet_v1_50", "zero_mean_unit_range", _RESNET_50_TAPS),
    "resnet_v1_101": BackboneSpec(resnet_v1.build, "resnet_v1_101", "subtract_imagenet_mean", _RESNET_101_TAPS),
    "resnet_v1_101_beta": BackboneSpec(resnet_v1.build, "resnet_v1_101", "zero_mean_unit_range", _RESNET_101_TAPS),
    "resnet_v1_18": BackboneSpec(resnet_v1.build, "resnet_v1_18", "subtract_imagenet_mean", _RESNET_18_TAPS),
    "resnet_v1_18_beta": BackboneSpec(resnet_v1.build, "resnet_v1_18", "zero_mean_unit_range", _RESNET_18_TAPS),
    "mobilenet_v2": BackboneSpec(mobilenet_v2.build, "MobilenetV2", "zero_mean_unit_range", _MOBILENET_V2_TAPS),
    "mobilenet_v3_large_seg": BackboneSpec(mobilenet_v3.build, "MobilenetV3", "zero_mean_unit_range",
                                           _MOBILENET_V3_LARGE_TAPS),
    "mobilenet_v3_small_seg": BackboneSpec(mobilenet_v3.build, "MobilenetV3", "zero_mean_unit_range",
                                           _MOBILENET_V3_SMALL_TAPS),
    # The original defines no decoder taps for EdgeTPU-MobileNet (ModelConfig refuses a decoder).
    "mobilenet_edgetpu": BackboneSpec(mobilenet_v3.build, "MobilenetEdgeTPU", "zero_mean_unit_range", {}),
    "nas_pnasnet": BackboneSpec(nas.build, "pnasnet", "zero_mean_unit_range", _PNASNET_TAPS),
    "nas_hnasnet": BackboneSpec(nas.build, "hnasnet", "zero_mean_unit_range", _HNASNET_TAPS),
}
# The original's mean_pixel gives the ImageNet mean for these only: resnet_v1_18 subtracts
# the mean too but pads with 127.5.
_MEAN_PIXEL_VARIANTS = ("resnet_v1_50", "resnet_v1_101")


def get_backbone(model_variant: str) -> BackboneSpec:
    try:
        return BACKBONES[model_variant]
    except KeyError:
        raise ValueError(
            f"model_variant must be one of {', '.join(sorted(BACKBONES))}. "
            f"Received: model_variant={model_variant!r}") from None


def mean_pixel(model_variant: str):
    """The padding value of images: the original's ``mean_pixel``, the RGB value the model's
    normalisation maps to zero, except for resnet_v1_18 (mean subtracted, yet padded with
    127.5 as the original does)."""
    get_backbone(model_variant)
    if model_variant in _MEAN_PIXEL_VARIANTS:
        return Normalization.MEAN_RGB
    return (127.5, 127.5, 127.5)
