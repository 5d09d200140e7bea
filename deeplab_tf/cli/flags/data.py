"""Data flags shared by training, evaluation, visualization and export (defaults: DataConfig).

``--min_resize_value`` / ``--max_resize_value`` / ``--resize_factor`` are the original
common.py's resize-to-range: applied to training images, to evaluated images (results in the
resized space, as the original) and inside exported graphs.
"""

from __future__ import annotations

import os
import sys

from absl import flags

from deeplab_tf.cli.flags.values import FlagValueError, default
from deeplab_tf.config import DataConfig

_D = DataConfig

DATASET = flags.DEFINE_string(
    "dataset", default(_D, "dataset"),
    "Dataset name (pascal_voc_seg, cityscapes, ade20k, a custom name, tfds:NAME, or '' for "
    "the manifest.json in --dataset_dir).")
DATASET_DIR = flags.DEFINE_string("dataset_dir", None, "Where the dataset resides.")
MIN_RESIZE_VALUE = flags.DEFINE_integer(
    "min_resize_value", default(_D, "min_resize_value"),
    "Desired size of the smaller image side (resize to range).")
MAX_RESIZE_VALUE = flags.DEFINE_integer(
    "max_resize_value", default(_D, "max_resize_value"),
    "Maximum allowed size of the larger image side.")
RESIZE_FACTOR = flags.DEFINE_integer(
    "resize_factor", default(_D, "resize_factor"),
    "Resized dimensions are a multiple of this plus one.")
NUM_READERS = flags.DEFINE_integer(
    "num_readers", default(_D, "num_readers"), "Shard files read in parallel.")
SKIP_CORRUPT_RECORDS = flags.DEFINE_boolean(
    "skip_corrupt_records", default(_D, "skip_corrupt_records"),
    "Skip (and count) corrupt or truncated TFRecord records instead of stopping with an "
    "error naming the shard and record.")

MAX_IMAGE_PIXELS = flags.DEFINE_integer(
    "max_image_pixels", default(_D, "max_image_pixels"),
    "Largest cost of one image, in pixels, read from its header before decoding: what "
    "predicting it allocates (padded to the crop and to k * output_stride + 1, times the "
    "scale/flip passes; in training, resized at the largest random scale and padded to the "
    "crop). The training/eval/vis input stops on a costlier record naming its shard and "
    "record (or skips it with --skip_corrupt_records); serving signatures reject such a "
    "request (InvalidArgument). Raising it costs about 0.2-0.35 GiB of memory per extra "
    "million pixels (docs/reliability.md). The dataset converters read it as the largest "
    "decoded image (height x width; their default 64000000). 0: no limit.")


def is_tfds() -> bool:
    return DATASET.value.startswith("tfds:")


def require_dataset_dir() -> None:
    """--dataset_dir must name a folder (TFDS datasets may use TFDS's default)."""
    if is_tfds():
        return
    if not DATASET_DIR.value:
        raise FlagValueError("--dataset_dir is required")
    if not os.path.isdir(DATASET_DIR.value):
        raise FlagValueError(f"--dataset_dir={DATASET_DIR.value} is not a directory")


def resize_fields() -> dict:
    """The resize-to-range fields, as DataConfig / EvalConfig / ExportConfig name them."""
    return dict(min_resize_value=MIN_RESIZE_VALUE.value, max_resize_value=MAX_RESIZE_VALUE.value,
                resize_factor=RESIZE_FACTOR.value)


def _split_name(flag: str, split: str) -> str:
    """``split``, or its current name when --dataset=cityscapes names a fine split the
    original's older way (``train`` for ``train_fine``, ...) and only the new shards exist."""
    from deeplab_tf.data import cityscapes_labels, schema

    new = cityscapes_labels.OLD_SPLIT_NAMES.get(split)
    if DATASET.value != "cityscapes" or new is None or not DATASET_DIR.value:
        return split
    if schema.has_shards(DATASET_DIR.value, split) or not schema.has_shards(
            DATASET_DIR.value, new):
        return split
    print(f"note: --{flag}={split}: the Cityscapes shards in --dataset_dir are named {new} "
          f"(the original's later name for the same split); reading {new}", file=sys.stderr)
    return new


def data_config(eval_split_flag: str = "eval_split", **fields) -> DataConfig:
    """A DataConfig from these flags; the binary's own ``fields`` (splits, crop, ...) added.

    ``train_split`` / ``eval_split`` pass through ``_split_name`` (the original's older
    Cityscapes split names); ``eval_split_flag`` names the flag ``eval_split`` came from."""
    for field, flag in (("train_split", "train_split"), ("eval_split", eval_split_flag)):
        if field in fields:
            fields[field] = _split_name(flag, fields[field])
    return DataConfig(dataset=DATASET.value, dataset_dir=DATASET_DIR.value or "",
                      num_readers=NUM_READERS.value,
                      skip_corrupt_records=SKIP_CORRUPT_RECORDS.value,
                      max_image_pixels=MAX_IMAGE_PIXELS.value,
                      **resize_fields(), **fields)


def dataset_info(require_dir: bool = True):
    """The registry's DatasetInfo of --dataset (with --dataset_dir's manifest if any)."""
    from deeplab_tf.data import registry

    if require_dir:
        require_dataset_dir()
    return registry.get_dataset_info(DATASET.value, DATASET_DIR.value or None)


def dataset_num_classes():
    """The registry's class count of --dataset, or None when it is not a registry name."""
    from deeplab_tf.data import registry

    try:
        return registry.get_dataset_info(DATASET.value).num_classes
    except (ValueError, KeyError, FileNotFoundError):
        return None
