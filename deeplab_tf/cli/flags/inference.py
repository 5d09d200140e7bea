"""Inference flags shared by deeplab-eval, deeplab-vis, deeplab-export and deeplab-bench.

Defaults are ``EvalConfig``'s. Images of any size are predicted whole; ``--eval_crop_size``
(default 513,513, as the original) only pads smaller ones; ``--sliding_window_size``
predicts large images window by window.
"""

from __future__ import annotations

from absl import flags

from deeplab_tf.cli.flags import data
from deeplab_tf.cli.flags.values import default, parse_size, size_default
from deeplab_tf.config import INFERENCE_PRECISIONS, EvalConfig

_E = EvalConfig

CHECKPOINT_DIR = flags.DEFINE_string(
    "checkpoint_dir", None,
    "Directory of model checkpoints (a deeplab-train train_logdir, or an original TF1 "
    "checkpoint directory); its latest checkpoint is used, then each new one.")
CHECKPOINT_PATH = flags.DEFINE_string(
    "checkpoint_path", None,
    "One checkpoint: a prefix (train/model.ckpt-30000), a model-zoo .tar.gz or its folder; "
    "overrides --checkpoint_dir and is used once.")
EVAL_SCALES = flags.DEFINE_multi_float(
    "eval_scales", list(default(_E, "eval_scales")),
    "Scales to resize images to for evaluation (repeat the flag); 0.5 0.75 1.0 1.25 1.5 "
    "1.75 for the original's multi-scale test (softmax probabilities averaged).")
ADD_FLIPPED_IMAGES = flags.DEFINE_boolean(
    "add_flipped_images", default(_E, "add_flipped_images"),
    "Also average left-right flipped images.")
EVAL_CROP_SIZE = flags.DEFINE_multi_string(
    "eval_crop_size", size_default(_E, "eval_crop_size"),
    "'height,width' (or the flag twice). As the original, smaller images are padded to it "
    "(mean pixel); larger images are evaluated whole, not rejected.")
EVAL_INTERVAL_SECS = flags.DEFINE_integer(
    "eval_interval_secs", default(_E, "eval_interval_secs"),
    "Minimum seconds between two checkpoint evaluations.")
SLIDING_WINDOW_SIZE = flags.DEFINE_multi_string(
    "sliding_window_size", None,
    "'height,width' (e.g. 513,513): predict large images by overlapping windows of this "
    "size, averaging probabilities; empty: whole images.")
SLIDING_WINDOW_OVERLAP = flags.DEFINE_float(
    "sliding_window_overlap", default(_E, "sliding_window_overlap"),
    "Overlap fraction of neighbouring windows.")
FOLD_BATCH_NORM = flags.DEFINE_boolean(
    "fold_batch_norm", default(_E, "fold_batch_norm"),
    "Fold batch norm into the convolutions for inference (faster; predictions equal the "
    "unfolded model's up to float rounding). --nofold_batch_norm: run batch norm as trained.")

INFERENCE_PRECISION = flags.DEFINE_enum(
    "inference_precision", default(_E, "inference_precision"), list(INFERENCE_PRECISIONS),
    "Precision inference computes in (deeplab-eval, deeplab-vis, SavedModel exports): auto "
    "(bfloat16 where the CPU/GPU computes it natively, e.g. AVX-512 BF16 or AMX; float32 "
    "elsewhere), float32 (the model as trained) or bfloat16 (labels equal float32's on over "
    "99.5 % of the pixels of trained models). Default: auto for deeplab-eval and deeplab-vis, "
    "float32 for deeplab-export (the serving machine is not known there).")


def value_or(holder, config_cls, field_name):
    """The flag's value when given, else ``config_cls``'s default of ``field_name``."""
    return holder.value if holder.present else default(config_cls, field_name)


def eval_config(**fields) -> EvalConfig:
    """An EvalConfig from these flags (and resize-to-range); the binary's ``fields`` added."""
    values = dict(
        eval_scales=tuple(EVAL_SCALES.value or (1.0,)),
        add_flipped_images=ADD_FLIPPED_IMAGES.value,
        eval_crop_size=parse_size(EVAL_CROP_SIZE.value, "eval_crop_size"),
        sliding_window_size=parse_size(SLIDING_WINDOW_SIZE.value, "sliding_window_size"),
        sliding_window_overlap=SLIDING_WINDOW_OVERLAP.value,
        eval_interval_secs=EVAL_INTERVAL_SECS.value,
        fold_batch_norm=FOLD_BATCH_NORM.value,
        inference_precision=INFERENCE_PRECISION.value,
        **data.resize_fields())
    values.update(fields)
    return EvalConfig(**values)
