"""Model flags (the original common.py's), read by every binary that builds a model.

Defaults are ``ModelConfig``'s. List flags keep the original's forms: repeated
(``--atrous_rates=6 --atrous_rates=12``) or comma lists (``--decoder_output_stride=4``).
The training toggles that live in ModelConfig (fine_tune_batch_norm, sync_batch_norm) are
deeplab-train's flags (``flags/train.py``).
"""

from __future__ import annotations

from absl import flags

from deeplab_tf.cli.flags.values import (FlagValueError, default, list_default, parse_ints,
                                         parse_size)
from deeplab_tf.config import MERGE_METHODS, MODEL_VARIANTS, ModelConfig
from deeplab_tf.config.dense_prediction_cell import load_cell_json
from deeplab_tf.errors import ConfigError

_M = ModelConfig

MODEL_VARIANT = flags.DEFINE_enum(
    "model_variant", default(_M, "model_variant"), list(MODEL_VARIANTS), "DeepLab backbone.")
NUM_CLASSES = flags.DEFINE_integer(
    "num_classes", None,
    "Number of classes; default: the dataset's (deeplab-export: the checkpoint's logits).")
OUTPUT_STRIDE = flags.DEFINE_integer(
    "output_stride", default(_M, "output_stride"),
    "Ratio of input to encoder output resolution: 8, 16 or 32.")
ATROUS_RATES = flags.DEFINE_multi_integer(
    "atrous_rates", list_default(_M, "atrous_rates"),
    "Atrous rates of the ASPP 3x3 branches (repeat the flag).")
DECODER_OUTPUT_STRIDE = flags.DEFINE_list(
    "decoder_output_stride", list_default(_M, "decoder_output_stride"),
    "Comma list of decoder output strides (e.g. 4, or 8,4); empty: DeepLabv3 (no decoder).")
MULTI_GRID = flags.DEFINE_multi_integer(
    "multi_grid", list_default(_M, "multi_grid"),
    "Unit rates of the last block (repeat the flag), e.g. 1, 2, 4.")
DEPTH_MULTIPLIER = flags.DEFINE_float(
    "depth_multiplier", default(_M, "depth_multiplier"),
    "Channel multiplier of the MobileNets (mobilenet_v2, mobilenet_v3_*_seg, mobilenet_edgetpu).")
DIVISIBLE_BY = flags.DEFINE_integer(
    "divisible_by", default(_M, "divisible_by"),
    "MobileNetV2 channel rounding (default: the original's). MobileNetV3 and EdgeTPU-MobileNet "
    "always round to multiples of 8 and ignore it, as the original does.")
ASPP_WITH_SEPARABLE_CONV = flags.DEFINE_boolean(
    "aspp_with_separable_conv", default(_M, "aspp_with_separable_conv"),
    "Separable convolutions in ASPP.")
DECODER_USE_SEPARABLE_CONV = flags.DEFINE_boolean(
    "decoder_use_separable_conv", default(_M, "decoder_use_separable_conv"),
    "Separable convolutions in the decoder.")
ADD_IMAGE_LEVEL_FEATURE = flags.DEFINE_boolean(
    "add_image_level_feature", default(_M, "add_image_level_feature"),
    "Add the image-level (pooling) ASPP branch.")
IMAGE_POOLING_CROP_SIZE = flags.DEFINE_multi_string(
    "image_pooling_crop_size", None,
    "Crop size 'h,w' whose feature size is the image pooling kernel; empty: global pooling.")
IMAGE_POOLING_STRIDE = flags.DEFINE_multi_string(
    "image_pooling_stride", [",".join(str(v) for v in default(_M, "image_pooling_stride"))],
    "Stride 'h,w' of the image pooling.")
ASPP_CONVS_FILTERS = flags.DEFINE_integer(
    "aspp_convs_filters", default(_M, "aspp_convs_filters"), "Channels of the ASPP branches.")
DECODER_FILTERS = flags.DEFINE_integer(
    "decoder_filters", default(_M, "decoder_filters"), "Channels of the decoder convolutions.")
ASPP_WITH_CONCAT_PROJECTION = flags.DEFINE_boolean(
    "aspp_with_concat_projection", default(_M, "aspp_with_concat_projection"),
    "1x1 projection (and dropout) after the ASPP concatenation.")
ASPP_WITH_SQUEEZE_AND_EXCITATION = flags.DEFINE_boolean(
    "aspp_with_squeeze_and_excitation", default(_M, "aspp_with_squeeze_and_excitation"),
    "The image-level branch gates the ASPP output (bias, no batch norm, sigmoid) instead of "
    "joining the concatenation.")
IMAGE_SE_USES_QSIGMOID = flags.DEFINE_boolean(
    "image_se_uses_qsigmoid", default(_M, "image_se_uses_qsigmoid"),
    "That gate uses relu6(x + 3) * 0.16667 instead of the sigmoid.")
DECODER_USE_SUM_MERGE = flags.DEFINE_boolean(
    "decoder_use_sum_merge", default(_M, "decoder_use_sum_merge"),
    "Decoder stages add one convolution of the features to the projected tap "
    "(decoder_filters wide) instead of concatenating them.")
DECODER_OUTPUT_IS_LOGITS = flags.DEFINE_boolean(
    "decoder_output_is_logits", default(_M, "decoder_output_is_logits"),
    "The decoder (linear convolutions with biases) outputs the logits; no logits layer. "
    "Needs --decoder_filters equal to the class count.")
WEIGHT_DECAY = flags.DEFINE_float(
    "weight_decay", default(_M, "weight_decay"), "slim L2 weight decay (wd * sum(w^2) / 2).")
IMAGE_PYRAMID = flags.DEFINE_multi_float(
    "image_pyramid", list_default(_M, "image_pyramid"),
    "Multi-scale feature extraction: input scales (repeat the flag, e.g. 0.5 then 1.0); the "
    "logits of every scale are merged by --merge_method. Empty or 1.0: none.")
MERGE_METHOD = flags.DEFINE_enum(
    "merge_method", default(_M, "merge_method"), list(MERGE_METHODS),
    "How --image_pyramid merges the logits of its scales: max or avg.")
DENSE_PREDICTION_CELL_JSON = flags.DEFINE_string(
    "dense_prediction_cell_json", "",
    "The Dense Prediction Cell (the original's JSON) in place of ASPP; the original's "
    "dense_prediction_cell_branch5_top1_cityscapes.json is known without the file.")
USE_BOUNDED_ACTIVATION = flags.DEFINE_boolean(
    "use_bounded_activation", default(_M, "use_bounded_activation"),
    "ReLU6 and clipping in Xception, ASPP and the decoder (for quantized inference).")
ASPP_WITH_BATCH_NORM = flags.DEFINE_boolean(
    "aspp_with_batch_norm", default(_M, "aspp_with_batch_norm"),
    "ASPP with batch norm; false: no ASPP, DeepLab-v2's summed logits over --atrous_rates.")
LOGITS_KERNEL_SIZE = flags.DEFINE_integer(
    "logits_kernel_size", default(_M, "logits_kernel_size"),
    "Kernel of the logits convolutions (other than 1 with --aspp_with_batch_norm=false only).")
PREDICTION_WITH_UPSAMPLED_LOGITS = flags.DEFINE_boolean(
    "prediction_with_upsampled_logits", default(_M, "prediction_with_upsampled_logits"),
    "Single-scale predictions: argmax of the upsampled logits; false: argmax at logits "
    "resolution, resized nearest-neighbour.")
NAS_STEM_OUTPUT_NUM_CONV_FILTERS = flags.DEFINE_integer(
    "nas_stem_output_num_conv_filters", default(_M, "nas_stem_output_num_conv_filters"),
    "NAS backbones: base number of filters of the cells.")
NAS_USE_CLASSIFICATION_HEAD = flags.DEFINE_boolean(
    "nas_use_classification_head", default(_M, "nas_use_classification_head"),
    "NAS backbones: the classification head (to output stride 32, 2048 channels).")
NAS_REMOVE_OS32_STRIDE = flags.DEFINE_boolean(
    "nas_remove_os32_stride", default(_M, "nas_remove_os32_stride"),
    "NAS backbones: no stride into output stride 32.")

# The flags that describe the network (a run's config.json is used when none is given).
ARCHITECTURE = (MODEL_VARIANT, NUM_CLASSES, OUTPUT_STRIDE, ATROUS_RATES, DECODER_OUTPUT_STRIDE,
                MULTI_GRID, DEPTH_MULTIPLIER, DIVISIBLE_BY, ASPP_WITH_SEPARABLE_CONV,
                DECODER_USE_SEPARABLE_CONV, ADD_IMAGE_LEVEL_FEATURE, IMAGE_POOLING_CROP_SIZE,
                IMAGE_POOLING_STRIDE, ASPP_CONVS_FILTERS, DECODER_FILTERS,
                ASPP_WITH_CONCAT_PROJECTION, ASPP_WITH_SQUEEZE_AND_EXCITATION,
                IMAGE_SE_USES_QSIGMOID, DECODER_USE_SUM_MERGE, DECODER_OUTPUT_IS_LOGITS,
                WEIGHT_DECAY, IMAGE_PYRAMID, MERGE_METHOD,
                DENSE_PREDICTION_CELL_JSON, USE_BOUNDED_ACTIVATION, ASPP_WITH_BATCH_NORM,
                LOGITS_KERNEL_SIZE, PREDICTION_WITH_UPSAMPLED_LOGITS,
                NAS_STEM_OUTPUT_NUM_CONV_FILTERS, NAS_USE_CLASSIFICATION_HEAD,
                NAS_REMOVE_OS32_STRIDE)


# Model flags whose ModelConfig field has another name.
_FIELD_OF_FLAG = {"dense_prediction_cell_json": "dense_prediction_cell"}


def explicit() -> list:
    """The ModelConfig fields whose model flags were given (on the command line or in a
    flagfile): what overrides a run's config.json (``checkpoints.run_dir``)."""
    return sorted(_FIELD_OF_FLAG.get(holder.name, holder.name) for holder in ARCHITECTURE
                  if holder.present)


def dense_prediction_cell():
    """The cell of --dense_prediction_cell_json (empty without the flag)."""
    path = DENSE_PREDICTION_CELL_JSON.value
    if not path:
        return ()
    try:
        return load_cell_json(path)
    except ConfigError as error:
        raise FlagValueError(f"--dense_prediction_cell_json={path}: {error}") from None


def model_config(num_classes=None, **overrides) -> ModelConfig:
    """A ModelConfig from the parsed flags.

    Args:
        num_classes: int or None. Used when --num_classes is not given (e.g. the dataset's).
        **overrides: ModelConfig fields the binary sets itself (fine_tune_batch_norm, ...).

    Raises:
        ValueError: a one-line message naming the bad flag value.
    """
    classes = NUM_CLASSES.value or num_classes
    if classes is None:
        raise ConfigError("--num_classes is required when the dataset does not define it")
    values = dict(
        model_variant=MODEL_VARIANT.value,
        num_classes=classes,
        output_stride=OUTPUT_STRIDE.value,
        atrous_rates=tuple(ATROUS_RATES.value or ()),
        decoder_output_stride=parse_ints(DECODER_OUTPUT_STRIDE.value, "decoder_output_stride"),
        multi_grid=tuple(MULTI_GRID.value or ()),
        depth_multiplier=DEPTH_MULTIPLIER.value,
        divisible_by=DIVISIBLE_BY.value,
        aspp_with_separable_conv=ASPP_WITH_SEPARABLE_CONV.value,
        decoder_use_separable_conv=DECODER_USE_SEPARABLE_CONV.value,
        add_image_level_feature=ADD_IMAGE_LEVEL_FEATURE.value,
        image_pooling_crop_size=parse_size(IMAGE_POOLING_CROP_SIZE.value,
                                           "image_pooling_crop_size"),
        image_pooling_stride=parse_size(IMAGE_POOLING_STRIDE.value, "image_pooling_stride"),
        aspp_convs_filters=ASPP_CONVS_FILTERS.value,
        decoder_filters=DECODER_FILTERS.value,
        aspp_with_concat_projection=ASPP_WITH_CONCAT_PROJECTION.value,
        aspp_with_squeeze_and_excitation=ASPP_WITH_SQUEEZE_AND_EXCITATION.value,
        image_se_uses_qsigmoid=IMAGE_SE_USES_QSIGMOID.value,
        decoder_use_sum_merge=DECODER_USE_SUM_MERGE.value,
        decoder_output_is_logits=DECODER_OUTPUT_IS_LOGITS.value,
        weight_decay=WEIGHT_DECAY.value,
        image_pyramid=tuple(IMAGE_PYRAMID.value or ()),
        merge_method=MERGE_METHOD.value,
        dense_prediction_cell=dense_prediction_cell(),
        use_bounded_activation=USE_BOUNDED_ACTIVATION.value,
        aspp_with_batch_norm=ASPP_WITH_BATCH_NORM.value,
        logits_kernel_size=LOGITS_KERNEL_SIZE.value,
        prediction_with_upsampled_logits=PREDICTION_WITH_UPSAMPLED_LOGITS.value,
        nas_stem_output_num_conv_filters=NAS_STEM_OUTPUT_NUM_CONV_FILTERS.value,
        nas_use_classification_head=NAS_USE_CLASSIFICATION_HEAD.value,
        nas_remove_os32_stride=NAS_REMOVE_OS32_STRIDE.value,
    )
    values.update(overrides)
    return ModelConfig(**values)
