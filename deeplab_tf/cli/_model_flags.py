"""Model flags shared by every binary, named and typed as the original's common.py flags.

Importing this module defines the flags (absl flags are global); ``model_config_from_flags``
turns them into a validated ``ModelConfig``. As in the original, list-valued flags are
repeated (``--atrous_rates=6 --atrous_rates=12 --atrous_rates=18``) or comma lists
(``--decoder_output_stride=4``), so the original's commands and flagfiles work unchanged.
"""

from __future__ import annotations

from absl import flags

from deeplab_tf.config import MODEL_VARIANTS, ModelConfig

_MODEL_VARIANT = flags.DEFINE_enum(
    "model_variant", "mobilenet_v2", list(MODEL_VARIANTS), "DeepLab backbone.")
_OUTPUT_STRIDE = flags.DEFINE_integer(
    "output_stride", 16, "Ratio of input to encoder output resolution: 8, 16 or 32.")
_ATROUS_RATES = flags.DEFINE_multi_integer(
    "atrous_rates", None, "Atrous rates of the ASPP 3x3 branches (repeat the flag).")
_DECODER_OUTPUT_STRIDE = flags.DEFINE_list(
    "decoder_output_stride", None,
    "Comma list of decoder output strides (e.g. 4); empty for DeepLabv3 (no decoder).")
_MULTI_GRID = flags.DEFINE_multi_integer(
    "multi_grid", None, "Unit rates of the last block (repeat the flag), e.g. 1,2,4.")
_DEPTH_MULTIPLIER = flags.DEFINE_float(
    "depth_multiplier", 1.0, "MobileNetV2 channel multiplier.")
_DIVISIBLE_BY = flags.DEFINE_integer(
    "divisible_by", None, "MobileNetV2 channel rounding (default: the original's).")
_ASPP_WITH_SEPARABLE_CONV = flags.DEFINE_boolean(
    "aspp_with_separable_conv", True, "Separable convolutions in ASPP.")
_DECODER_USE_SEPARABLE_CONV = flags.DEFINE_boolean(
    "decoder_use_separable_conv", True, "Separable convolutions in the decoder.")
_ADD_IMAGE_LEVEL_FEATURE = flags.DEFINE_boolean(
    "add_image_level_feature", True, "Add the image-level (pooling) ASPP branch.")
_IMAGE_POOLING_CROP_SIZE = flags.DEFINE_list(
    "image_pooling_crop_size", None,
    "Crop size 'h,w' whose feature size is the image pooling kernel; empty: global pooling.")
_IMAGE_POOLING_STRIDE = flags.DEFINE_list(
    "image_pooling_stride", "1,1", "Stride 'h,w' of the image pooling.")
_ASPP_CONVS_FILTERS = flags.DEFINE_integer(
    "aspp_convs_filters", 256, "Channels of the ASPP branches.")
_WEIGHT_DECAY = flags.DEFINE_float(
    "weight_decay", 0.00004, "slim L2 weight decay (wd * sum(w^2) / 2).")
_NUM_CLASSES = flags.DEFINE_integer(
    "num_classes", None, "Number of classes; default: the dataset's.")


def _int_list(flag_name, values):
    if not values:
        return ()
    try:
        return tuple(int(v) for v in values)
    except ValueError:
        raise flags.ValidationError(
            f"--{flag_name} must be integers. Received: --{flag_name}={','.join(values)}")


def model_config_from_flags(num_classes=None, **overrides) -> ModelConfig:
    """A ModelConfig from the parsed flags.

    Args:
        num_classes: int. Used when --num_classes is not given (e.g. the dataset's).
        **overrides: ModelConfig fields that the binary sets itself (e.g.
            fine_tune_batch_norm, sync_batch_norm).

    Raises:
        ValueError: a one-line message naming the bad flag value.
    """
    classes = _NUM_CLASSES.value or num_classes
    if classes is None:
        raise ValueError("--num_classes is required when the dataset does not define it")
    pooling = _IMAGE_POOLING_CROP_SIZE.value
    values = dict(
        model_variant=_MODEL_VARIANT.value,
        num_classes=classes,
        output_stride=_OUTPUT_STRIDE.value,
        atrous_rates=tuple(_ATROUS_RATES.value or ()),
        decoder_output_stride=_int_list("decoder_output_stride", _DECODER_OUTPUT_STRIDE.value),
        multi_grid=tuple(_MULTI_GRID.value or ()),
        depth_multiplier=_DEPTH_MULTIPLIER.value,
        divisible_by=_DIVISIBLE_BY.value,
        aspp_with_separable_conv=_ASPP_WITH_SEPARABLE_CONV.value,
        decoder_use_separable_conv=_DECODER_USE_SEPARABLE_CONV.value,
        add_image_level_feature=_ADD_IMAGE_LEVEL_FEATURE.value,
        image_pooling_crop_size=_int_list("image_pooling_crop_size", pooling) or None,
        image_pooling_stride=_int_list("image_pooling_stride", _IMAGE_POOLING_STRIDE.value),
        aspp_convs_filters=_ASPP_CONVS_FILTERS.value,
        weight_decay=_WEIGHT_DECAY.value,
    )
    values.update(overrides)
    return ModelConfig(**values)
