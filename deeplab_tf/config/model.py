"""``ModelConfig``: the architecture of a DeepLab model, validated once, frozen."""

from __future__ import annotations

import dataclasses
from typing import Optional, Tuple

from deeplab_tf.config.base import ConfigMixin, _as_int_tuple
from deeplab_tf.errors import ConfigError

# The model variants the library builds, and facts about each: the variable scope used by
# the original checkpoints and the low-level feature taps (by output stride) the decoder can
# use. One source of truth, imported by the backbones, the heads and the converter.
MODEL_VARIANTS = (
    "xception_41",
    "xception_65",
    "xception_71",
    "resnet_v1_50",
    "resnet_v1_50_beta",
    "resnet_v1_101",
    "resnet_v1_101_beta",
    "mobilenet_v2",
)
OUTPUT_STRIDES = (8, 16, 32)
# How a quantization-aware network quantizes its weights (``modeling.layers.quantize``).
QUANTIZATIONS = ("per_channel", "per_tensor")


@dataclasses.dataclass(frozen=True)
class ModelConfig(ConfigMixin):
    """Architecture of a DeepLabv3 / DeepLabv3+ model.

    Args:
        model_variant: str. Backbone, one of ``MODEL_VARIANTS``.
        num_classes: int. Number of output classes (logits channels).
        output_stride: int. 8, 16 or 32: ratio of input to encoder feature resolution.
        atrous_rates: tuple of int. Rates of the 3x3 ASPP branches; empty for none
            (the original's MobileNetV2 recipe).
        decoder_output_stride: tuple of int. Strides at which the DeepLabv3+ decoder refines
            features (the original's list flag, usually ``(4,)``); empty for DeepLabv3.
        multi_grid: tuple of int. Unit rates of the last block (e.g. ``(1, 2, 4)``); empty
            for the network's default.
        depth_multiplier: float. Channel multiplier for MobileNetV2.
        divisible_by: int or None. MobileNetV2 channel rounding; None: the original's default
            (8 for depth_multiplier 1.0, else 1).
        aspp_with_separable_conv: bool. Separable 3x3 ASPP branches.
        decoder_use_separable_conv: bool. Separable 3x3 decoder convs.
        add_image_level_feature: bool. Image pooling ASPP branch.
        image_pooling_crop_size: (h, w) or None. None: global average pooling (any input
            size); else the original's average pooling with a kernel of this crop's feature
            size, strided by ``image_pooling_stride``.
        image_pooling_stride: (h, w). Stride of that pooling.
        aspp_convs_filters: int. Channels of the ASPP branches and projection (256).
        decoder_filters: int. Channels of the decoder convs (256).
        weight_decay: float. slim's L2 weight decay (``wd * sum(w**2) / 2``).
        sync_batch_norm: bool. Batch statistics synchronised across replicas in training.
        fine_tune_batch_norm: bool. If false, batch norm runs in inference mode (moving
            statistics) and its parameters are frozen, as the original's flag.
        quantization: str or None. None: the float network. Otherwise the
            quantization-aware network of the original's ``--quantize_delay_step``
            (``modeling.layers.quantize``): batch norm folded into the convolutions, 8-bit
            fake-quantized weights and activations, their ranges variables of the
            checkpoint. ``"per_channel"``: weights quantized symmetrically per output
            channel (TFLite's int8 specification: exports as an int8 model);
            ``"per_tensor"``: one asymmetric range per kernel, the original's
            contrib.quantize scheme and its 8-bit zoo checkpoints (exports as an all-uint8
            model, as the original's). deeplab-train sets it from ``--quantize_delay_step``
            and ``--weight_quantization``; when it trains is ``TrainConfig``'s.
    """

    model_variant: str = "mobilenet_v2"
    num_classes: int = 21
    output_stride: int = 16
    atrous_rates: Tuple[int, ...] = ()
    decoder_output_stride: Tuple[int, ...] = ()
    multi_grid: Tuple[int, ...] = ()
    depth_multiplier: float = 1.0
    divisible_by: Optional[int] = None
    aspp_with_separable_conv: bool = True
    decoder_use_separable_conv: bool = True
    add_image_level_feature: bool = True
    image_pooling_crop_size: Optional[Tuple[int, int]] = None
    image_pooling_stride: Tuple[int, int] = (1, 1)
    aspp_convs_filters: int = 256
    decoder_filters: int = 256
    weight_decay: float = 4e-5
    sync_batch_norm: bool = False
    fine_tune_batch_norm: bool = True
    quantization: Optional[str] = None

    def __post_init__(self):
        set_ = lambda k, v: object.__setattr__(self, k, v)  # noqa: E731 (frozen dataclass)
        set_("atrous_rates", _as_int_tuple(self.atrous_rates, "atrous_rates"))
        set_("decoder_output_stride",
             _as_int_tuple(self.decoder_output_stride, "decoder_output_stride"))
        set_("multi_grid", _as_int_tuple(self.multi_grid, "multi_grid"))
        set_("image_pooling_stride",
             _as_int_tuple(self.image_pooling_stride, "image_pooling_stride"))
        if self.image_pooling_crop_size is not None:
            set_("image_pooling_crop_size",
                 _as_int_tuple(self.image_pooling_crop_size, "image_pooling_crop_size") or None)

        if self.model_variant not in MODEL_VARIANTS:
            raise ConfigError(
                f"model_variant must be one of {', '.join(MODEL_VARIANTS)}. "
                f"Received: model_variant={self.model_variant!r}")
        if self.output_stride not in OUTPUT_STRIDES:
            raise ConfigError(
                f"output_stride must be 8, 16 or 32. Received: output_stride={self.output_stride}")
        if int(self.num_classes) < 1:
            raise ConfigError(f"num_classes must be >= 1. Received: num_classes={self.num_classes}")
        if any(r < 1 for r in self.atrous_rates):
            raise ConfigError(f"atrous_rates must be positive. Received: atrous_rates={list(self.atrous_rates)}")
        previous = self.output_stride
        for stride in self.decoder_output_stride:
            if stride not in (4, 8, 16) or stride >= previous:
                raise ConfigError(
                    "decoder_output_stride must be decreasing values from {4, 8, 16}, each below "
                    f"output_stride={self.output_stride}. Received: "
                    f"decoder_output_stride={list(self.decoder_output_stride)}")
            previous = stride
        if self.multi_grid and len(self.multi_grid) != 3:
            raise ConfigError(f"multi_grid must have 3 values. Received: multi_grid={list(self.multi_grid)}")
        if self.multi_grid and any(r < 1 for r in self.multi_grid):
            raise ConfigError(f"multi_grid must be positive. Received: multi_grid={list(self.multi_grid)}")
        if not self.depth_multiplier > 0:
            raise ConfigError(f"depth_multiplier must be > 0. Received: depth_multiplier={self.depth_multiplier}")
        if self.depth_multiplier != 1.0 and not self.model_variant.startswith("mobilenet"):
            raise ConfigError(
                "depth_multiplier applies to mobilenet_v2 only. Received: "
                f"depth_multiplier={self.depth_multiplier} with model_variant={self.model_variant!r}")
        if self.image_pooling_crop_size is not None and len(self.image_pooling_crop_size) != 2:
            raise ConfigError(
                "image_pooling_crop_size must be two integers (height, width). Received: "
                f"image_pooling_crop_size={self.image_pooling_crop_size}")
        if len(self.image_pooling_stride) != 2:
            raise ConfigError(
                f"image_pooling_stride must be two integers. Received: image_pooling_stride={self.image_pooling_stride}")
        if self.quantization is not None and self.quantization not in QUANTIZATIONS:
            raise ConfigError(
                f"quantization must be None or one of {', '.join(QUANTIZATIONS)}. "
                f"Received: quantization={self.quantization!r}")
        if self.weight_decay < 0:
            raise ConfigError(f"weight_decay must be >= 0. Received: weight_decay={self.weight_decay}")

    @property
    def uses_decoder(self) -> bool:
        return bool(self.decoder_output_stride)
