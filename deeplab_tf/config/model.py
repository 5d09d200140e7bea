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
    "mobilenet_v3_large_seg",
    "mobilenet_v3_small_seg",
    "mobilenet_edgetpu",
    "nas_pnasnet",
    "nas_hnasnet",
)
OUTPUT_STRIDES = (8, 16, 32)
# Variants the original defines no decoder taps for (its decoder fails with a KeyError).
NO_DECODER_VARIANTS = ("mobilenet_edgetpu",)
MERGE_METHODS = ("max", "avg")
NAS_VARIANTS = ("nas_pnasnet", "nas_hnasnet")
# The NAS options (name -> the original's default): they apply to NAS_VARIANTS only.
_NAS_DEFAULTS = dict(nas_stem_output_num_conv_filters=20, nas_use_classification_head=False,
                     nas_remove_os32_stride=False, drop_path_keep_prob=1.0)
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
        depth_multiplier: float. Channel multiplier of the MobileNets (mobilenet_v2,
            mobilenet_v3_*_seg, mobilenet_edgetpu).
        divisible_by: int or None. MobileNetV2 channel rounding; None: the original's default
            (8 for depth_multiplier 1.0, else 1). MobileNetV3 and EdgeTPU-MobileNet always
            round to multiples of 8 (the original ignores the flag for them, and so does this
            library).
        aspp_with_separable_conv: bool. Separable 3x3 ASPP branches.
        decoder_use_separable_conv: bool. Separable 3x3 decoder convs.
        add_image_level_feature: bool. Image pooling ASPP branch.
        image_pooling_crop_size: (h, w) or None. None: global average pooling (any input
            size); else the original's average pooling with a kernel of this crop's feature
            size, strided by ``image_pooling_stride``.
        image_pooling_stride: (h, w). Stride of that pooling.
        aspp_convs_filters: int. Channels of the ASPP branches and projection (256).
        decoder_filters: int. Channels of the decoder convs (256).
        aspp_with_concat_projection: bool. The 1x1 projection (and its dropout) after the
            ASPP concatenation; false: the concatenation is the ASPP output.
        aspp_with_squeeze_and_excitation: bool. The image-level branch becomes a gate: its
            1x1 convolution has a bias and no batch norm, a sigmoid (or q-sigmoid), and
            multiplies the ASPP output instead of joining the concatenation.
        image_se_uses_qsigmoid: bool. That gate's activation is ``relu6(x + 3) * 0.16667``
            instead of the sigmoid.
        decoder_use_sum_merge: bool. Each decoder stage adds one convolution of the
            (resized) features to the projected tap, whose width is then
            ``decoder_filters``, instead of concatenating them and applying two convolutions.
        decoder_output_is_logits: bool. The decoder's convolutions are linear with biases
            (1x1 under sum merge), and its output is the logits: no ``logits/semantic``
            layer; ``decoder_filters`` must equal ``num_classes``.
        weight_decay: float. slim's L2 weight decay (``wd * sum(w**2) / 2``).
        sync_batch_norm: bool. Batch statistics synchronised across replicas in training.
        fine_tune_batch_norm: bool. If false, batch norm runs in inference mode (moving
            statistics) and its parameters are frozen, as the original's flag.
        image_pyramid: tuple of float. The original's multi-scale feature extraction: the
            network runs on the image resized by each scale (weights shared) and the logits
            are merged by ``merge_method`` (``modeling.pyramid``); empty or ``(1.0,)``: none.
        merge_method: str. ``"max"`` or ``"avg"``: how ``image_pyramid`` merges the logits.
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
    aspp_with_concat_projection: bool = True
    aspp_with_squeeze_and_excitation: bool = False
    image_se_uses_qsigmoid: bool = False
    decoder_use_sum_merge: bool = False
    decoder_output_is_logits: bool = False
    weight_decay: float = 4e-5
    sync_batch_norm: bool = False
    fine_tune_batch_norm: bool = True
    image_pyramid: Tuple[float, ...] = ()
    merge_method: str = "max"
    dense_prediction_cell: Tuple[DenseCellBranch, ...] = ()
    use_bounded_activation: bool = False
    aspp_with_batch_norm: bool = True
    logits_kernel_size: int = 1
    prediction_with_upsampled_logits: bool = True
    nas_stem_output_num_conv_filters: int = 20
    nas_use_classification_head: bool = False
    nas_remove_os32_stride: bool = False
    drop_path_keep_prob: float = 1.0
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
                "depth_multiplier applies to the mobilenet variants only. Received: "
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
        if self.quantization is not None and self.model_variant in NAS_VARIANTS:
            raise ConfigError(
                f"quantization-aware training is built for the MobileNet, Xception and ResNet "
                f"families; the NAS cells are not quantization-aware. Received: "
                f"model_variant={self.model_variant!r}, quantization={self.quantization!r}")
        if self.weight_decay < 0:
            raise ConfigError(f"weight_decay must be >= 0. Received: weight_decay={self.weight_decay}")
        set_("image_pyramid", _image_pyramid(self.image_pyramid))
        if self.merge_method not in MERGE_METHODS:
            raise ConfigError(f"merge_method must be one of {', '.join(MERGE_METHODS)}. "
                              f"Received: merge_method={self.merge_method!r}")
        self._check_head_switches()
        self._check_heads()
        self._check_nas()

    def _check_head_switches(self):
        """The combinations of head switches the original builds into a working network."""
        if self.decoder_output_stride and self.model_variant in NO_DECODER_VARIANTS:
            raise ConfigError(
                f"model_variant={self.model_variant!r} has no decoder taps in the original: "
                "remove decoder_output_stride. Received: "
                f"decoder_output_stride={list(self.decoder_output_stride)}")
        if self.image_se_uses_qsigmoid and not self.aspp_with_squeeze_and_excitation:
            raise ConfigError("image_se_uses_qsigmoid=True needs aspp_with_squeeze_and_excitation"
                              "=True (it is that gate's activation)")
        if self.aspp_with_squeeze_and_excitation and not self.add_image_level_feature:
            raise ConfigError("aspp_with_squeeze_and_excitation=True gates the ASPP output with "
                              "the image-level branch: it needs add_image_level_feature=True")
        if (self.aspp_with_squeeze_and_excitation and not self.aspp_with_concat_projection
                and self.atrous_rates):
            raise ConfigError(
                "aspp_with_squeeze_and_excitation=True with aspp_with_concat_projection=False "
                "multiplies the concatenated branches by a gate of aspp_convs_filters channels: "
                f"it allows no atrous branches. Received: atrous_rates={list(self.atrous_rates)}")
        for name in ("decoder_use_sum_merge", "decoder_output_is_logits"):
            if getattr(self, name) and not self.decoder_output_stride:
                raise ConfigError(f"{name}=True needs a decoder: set decoder_output_stride "
                                  "(e.g. 8). Received: decoder_output_stride=[]")
        if self.decoder_output_is_logits and self.decoder_filters != self.num_classes:
            raise ConfigError(
                "decoder_output_is_logits=True: the decoder's output is the logits, so "
                f"decoder_filters must equal num_classes={self.num_classes}. Received: "
                f"decoder_filters={self.decoder_filters}")

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

    @property
    def uses_image_pyramid(self) -> bool:
        """True unless ``image_pyramid`` is empty or ``(1.0,)`` (the plain network)."""
        return self.image_pyramid not in ((), (1.0,))


def _image_pyramid(value) -> Tuple[float, ...]:
    """``image_pyramid`` as a tuple of positive floats whose ``%.2f`` names differ."""
    if value is None:
        return ()
    scales = (value,) if isinstance(value, (int, float)) else value
    try:
        scales = tuple(float(s) for s in scales)
    except (TypeError, ValueError):
        raise ConfigError(f"image_pyramid must be numbers. Received: image_pyramid={value!r}")
    if any(not s > 0 for s in scales):
        raise ConfigError(f"image_pyramid must be positive numbers. Received: "
                          f"image_pyramid={list(scales)}")
    # The original keys each scale's logits by "logits_%.2f": two scales with one key would
    # silently drop one from the merge.
    if len({f"{s:.2f}" for s in scales}) != len(scales):
        raise ConfigError("image_pyramid scales must differ at two decimals. Received: "
                          f"image_pyramid={list(scales)}")
    return scales
