"""``ModelConfig``: the architecture of a DeepLab model, validated once, frozen."""

from __future__ import annotations

import dataclasses
from typing import Optional, Tuple

from deeplab_tf.config.base import ConfigMixin, _as_int_tuple
from deeplab_tf.config.dense_prediction_cell import DenseCellBranch, parse_cell
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
    "resnet_v1_18",
    "resnet_v1_18_beta",
    "mobilenet_v2",
    "nas_pnasnet",
    "nas_hnasnet",
)
OUTPUT_STRIDES = (8, 16, 32)
NAS_VARIANTS = ("nas_pnasnet", "nas_hnasnet")
# The NAS options (name -> the original's default): they apply to NAS_VARIANTS only.
_NAS_DEFAULTS = dict(nas_stem_output_num_conv_filters=20, nas_use_classification_head=False,
                     nas_remove_os32_stride=False, drop_path_keep_prob=1.0)


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
        dense_prediction_cell: tuple of ``DenseCellBranch`` (or dicts in the original's JSON
            form). Non-empty: this Dense Prediction Cell (scope ``meta_architecture``) replaces
            ASPP; its rates are scaled by ``16 // output_stride`` (output stride 8 or 16).
        use_bounded_activation: bool. ReLU6 and clipping to [-6, 6] in Xception, ASPP and
            the decoder, and Xception's strided convolutions with 'SAME' padding (the
            original's option for quantized inference).
        aspp_with_batch_norm: bool. False: no ASPP at all (the backbone's features go to the
            decoder / logits) and the logits are DeepLab-v2's: one biased convolution per
            atrous rate, summed.
        logits_kernel_size: int. Kernel of those logits convolutions (1 unless
            ``aspp_with_batch_norm`` is false with atrous rates).
        prediction_with_upsampled_logits: bool. Single-scale predictions: argmax of the
            logits upsampled to the image (true), or the argmax at logits resolution
            resized nearest-neighbour (false), as the original's ``predict_labels``.
        nas_stem_output_num_conv_filters: int. Base width of the NAS cells (F: a cell at
            filter scaling s has int(F * s) filters per operation).
        nas_use_classification_head: bool. NAS: the downsampling convolutions to output
            stride 32 and the 1x1 convolution to 2048 channels after the cells.
        nas_remove_os32_stride: bool. NAS: cells at level 3 keep output stride 16.
        drop_path_keep_prob: float in (0, 1]. NAS training: drop-path keep probability of the
            last cell, annealed over the training steps as the original (off when
            ``fine_tune_batch_norm`` is false, as the original).
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
    dense_prediction_cell: Tuple[DenseCellBranch, ...] = ()
    use_bounded_activation: bool = False
    aspp_with_batch_norm: bool = True
    logits_kernel_size: int = 1
    prediction_with_upsampled_logits: bool = True
    nas_stem_output_num_conv_filters: int = 20
    nas_use_classification_head: bool = False
    nas_remove_os32_stride: bool = False
    drop_path_keep_prob: float = 1.0

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
        set_("dense_prediction_cell", parse_cell(self.dense_prediction_cell))

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
        grid_length = 2 if self.model_variant.startswith("resnet_v1_18") else 3
        if self.multi_grid and len(self.multi_grid) != grid_length:
            raise ConfigError(f"multi_grid must have {grid_length} values for "
                              f"{self.model_variant}. Received: multi_grid={list(self.multi_grid)}")
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
        if self.weight_decay < 0:
            raise ConfigError(f"weight_decay must be >= 0. Received: weight_decay={self.weight_decay}")
        self._check_heads()
        self._check_nas()

    def _check_heads(self):
        if self.dense_prediction_cell:
            if self.output_stride not in (8, 16):
                raise ConfigError(
                    "dense_prediction_cell needs output_stride 8 or 16 (the original scales its "
                    f"rates by 16 // output_stride). Received: output_stride={self.output_stride}")
            if not self.aspp_with_batch_norm:
                raise ConfigError("dense_prediction_cell needs aspp_with_batch_norm=true (the "
                                  "original builds no cell without it)")
            if (any(b.op == "pyramid_pooling" for b in self.dense_prediction_cell)
                    and self.image_pooling_crop_size is None):
                raise ConfigError("dense_prediction_cell pyramid_pooling branches need "
                                  "image_pooling_crop_size (the crop their grid divides)")
        if int(self.logits_kernel_size) < 1:
            raise ConfigError("logits_kernel_size must be >= 1. "
                              f"Received: logits_kernel_size={self.logits_kernel_size}")
        if self.logits_kernel_size != 1 and (self.aspp_with_batch_norm or not self.atrous_rates):
            raise ConfigError(
                "logits_kernel_size other than 1 needs aspp_with_batch_norm=false and "
                f"atrous_rates (the DeepLab-v2 logits). Received: logits_kernel_size="
                f"{self.logits_kernel_size}, aspp_with_batch_norm={self.aspp_with_batch_norm}, "
                f"atrous_rates={list(self.atrous_rates)}")

    def _check_nas(self):
        if self.model_variant not in NAS_VARIANTS:
            for name, value in _NAS_DEFAULTS.items():
                if getattr(self, name) != value:
                    raise ConfigError(
                        f"{name} applies to {' and '.join(NAS_VARIANTS)} only. Received: "
                        f"{name}={getattr(self, name)} with model_variant={self.model_variant!r}")
            return
        if int(self.nas_stem_output_num_conv_filters) < 1:
            raise ConfigError("nas_stem_output_num_conv_filters must be >= 1. Received: "
                              f"nas_stem_output_num_conv_filters={self.nas_stem_output_num_conv_filters}")
        if not 0.0 < self.drop_path_keep_prob <= 1.0:
            raise ConfigError("drop_path_keep_prob must be in (0, 1]. "
                              f"Received: drop_path_keep_prob={self.drop_path_keep_prob}")
        if (self.model_variant == "nas_hnasnet" and not self.nas_use_classification_head
                and self.output_stride != 8):
            raise ConfigError(
                "nas_hnasnet's features are at output stride 8 (set output_stride=8, or "
                "nas_use_classification_head to reach another). "
                f"Received: output_stride={self.output_stride}")
        if (self.model_variant == "nas_pnasnet" and self.nas_remove_os32_stride
                and self.output_stride == 32):
            raise ConfigError(
                "nas_remove_os32_stride keeps nas_pnasnet's features at output stride 16: set "
                "output_stride=16. Received: output_stride=32")

    @property
    def uses_decoder(self) -> bool:
        return bool(self.decoder_output_stride)
