"""What deeplab-eval and deeplab-vis share: their common flags, the model, the checkpoints.

Flags keep the original eval.py / vis.py names (checkpoint_dir, dataset, dataset_dir,
eval_scales, add_flipped_images, eval_crop_size, eval_interval_secs; and common.py's
min_resize_value / max_resize_value / resize_factor, with which images are evaluated in the
resized space, as in the original). New: ``--checkpoint_path`` (one checkpoint) and
``--sliding_window_size`` / ``--sliding_window_overlap``.

Which model: as in the original, the model flags describe the network. A training run's
``config.json`` (written by deeplab-train / deeplab-convert-checkpoint beside the checkpoints)
is used instead when no model flag is given explicitly (on the command line or in a
flagfile), so ``deeplab-eval --checkpoint_dir=RUN --dataset_dir=...`` is enough. The binary
says which it used.
"""

from __future__ import annotations

import json
import os
from typing import Iterator, Optional, Tuple

from absl import flags, logging

from deeplab_tf.cli import _model_flags
from deeplab_tf.cli._common import UserError
from deeplab_tf.config import DataConfig, EvalConfig, ModelConfig

CONFIG_JSON = "config.json"
# ModelConfig fields that do not change inference (not worth a note when they differ).
_TRAINING_ONLY_FIELDS = ("weight_decay", "sync_batch_norm", "fine_tune_batch_norm")

_CHECKPOINT_DIR = flags.DEFINE_string(
    "checkpoint_dir", None,
    "Directory of model checkpoints (a deeplab-train train_logdir, or an original TF1 "
    "checkpoint directory); its latest checkpoint is used, then each new one.")
_CHECKPOINT_PATH = flags.DEFINE_string(
    "checkpoint_path", None,
    "One checkpoint prefix (e.g. train/ckpt-30000 or model.ckpt-30000); overrides "
    "--checkpoint_dir and is used once.")
_DATASET = flags.DEFINE_string(
    "dataset", "pascal_voc_seg",
    "Dataset name (pascal_voc_seg, cityscapes, ade20k, a custom name, tfds:NAME, or '' for "
    "the manifest.json in --dataset_dir).")
_DATASET_DIR = flags.DEFINE_string("dataset_dir", None, "Where the dataset resides.")
_EVAL_SCALES = flags.DEFINE_multi_float(
    "eval_scales", [1.0],
    "Scales to resize images to for evaluation (repeat the flag); 0.5 0.75 1.0 1.25 1.5 "
    "1.75 for the original's multi-scale test (softmax probabilities averaged).")
_ADD_FLIPPED_IMAGES = flags.DEFINE_boolean(
    "add_flipped_images", False, "Also average left-right flipped images.")
_EVAL_CROP_SIZE = flags.DEFINE_list(
    "eval_crop_size", None,
    "'height,width'. As the original, smaller images are padded to it (mean pixel); larger "
    "images are evaluated whole, not rejected. Empty: pad to the next k*output_stride+1.")
_MIN_RESIZE_VALUE = flags.DEFINE_integer(
    "min_resize_value", None, "Desired size of the smaller image side (resize to range).")
_MAX_RESIZE_VALUE = flags.DEFINE_integer(
    "max_resize_value", None, "Maximum allowed size of the larger image side.")
_RESIZE_FACTOR = flags.DEFINE_integer(
    "resize_factor", None, "Resized dimensions are a multiple of this plus one.")
_EVAL_INTERVAL_SECS = flags.DEFINE_integer(
    "eval_interval_secs", 60 * 5, "Minimum seconds between two checkpoint evaluations.")
_SLIDING_WINDOW_SIZE = flags.DEFINE_list(
    "sliding_window_size", None,
    "'height,width' (e.g. 513,513): predict large images by overlapping windows of this "
    "size, averaging probabilities; empty: whole images.")
_SLIDING_WINDOW_OVERLAP = flags.DEFINE_float(
    "sliding_window_overlap", 1.0 / 3.0, "Overlap fraction of neighbouring windows.")


def check_no_arguments(argv):
    if len(argv) > 1:
        raise UserError(f"Unexpected arguments: {' '.join(argv[1:])}")


def size_flag(name, values):
    """(height, width) from a list flag's values, or None when empty."""
    if not values:
        return None
    try:
        return tuple(int(v) for v in values)
    except ValueError:
        raise UserError(
            f"--{name} must be 'height,width'. Received: --{name}={','.join(values)}") from None


def eval_config_from_flags(**fields) -> EvalConfig:
    """An EvalConfig from the shared flags; the binary's own ``fields`` override them."""
    values = dict(
        eval_scales=tuple(_EVAL_SCALES.value or (1.0,)),
        add_flipped_images=_ADD_FLIPPED_IMAGES.value,
        eval_crop_size=size_flag("eval_crop_size", _EVAL_CROP_SIZE.value),
        sliding_window_size=size_flag("sliding_window_size", _SLIDING_WINDOW_SIZE.value),
        sliding_window_overlap=_SLIDING_WINDOW_OVERLAP.value,
        eval_interval_secs=_EVAL_INTERVAL_SECS.value)
    values.update(fields)
    return EvalConfig(**values)


def _is_tfds() -> bool:
    return _DATASET.value.startswith("tfds:")


def data_config(split: str) -> DataConfig:
    """A DataConfig reading ``split`` of --dataset from --dataset_dir."""
    if not _is_tfds():
        if not _DATASET_DIR.value:
            raise UserError("--dataset_dir is required")
        if not os.path.isdir(_DATASET_DIR.value):
            raise UserError(f"--dataset_dir={_DATASET_DIR.value} is not a directory")
    return DataConfig(dataset=_DATASET.value, dataset_dir=_DATASET_DIR.value or "",
                      eval_split=split,
                      min_resize_value=_MIN_RESIZE_VALUE.value,
                      max_resize_value=_MAX_RESIZE_VALUE.value,
                      resize_factor=_RESIZE_FACTOR.value)


def dataset_info(require_dir: bool = True):
    """The registry's DatasetInfo of --dataset (with --dataset_dir's manifest if any)."""
    from deeplab_tf.data import registry

    if require_dir and not _DATASET_DIR.value and not _is_tfds():
        raise UserError("--dataset_dir is required")
    return registry.get_dataset_info(_DATASET.value, _DATASET_DIR.value or None)


# --- checkpoints ---------------------------------------------------------------------------

def checkpoint_dir() -> str:
    """The directory holding the checkpoint(s) (and maybe config.json); checked to exist."""
    if _CHECKPOINT_PATH.value:
        path = os.path.abspath(_CHECKPOINT_PATH.value)
        return path if os.path.isdir(path) else os.path.dirname(path)
    if not _CHECKPOINT_DIR.value:
        raise UserError("--checkpoint_dir (or --checkpoint_path) is required")
    if not os.path.isdir(_CHECKPOINT_DIR.value):
        raise UserError(f"--checkpoint_dir={_CHECKPOINT_DIR.value} is not a directory")
    return _CHECKPOINT_DIR.value


def checkpoints(max_count: int, interval_secs: float) -> Iterator[str]:
    """The checkpoints to process: --checkpoint_path once, else those of --checkpoint_dir.

    With ``max_count == 1`` the directory's latest checkpoint is used at once (an error if it
    has none); otherwise each new checkpoint as it appears (``max_count <= 0``: forever).
    """
    from deeplab_tf.checkpoints import latest_checkpoint
    from deeplab_tf.evaluation.evaluator import checkpoints_iterator

    if _CHECKPOINT_PATH.value:
        path = _CHECKPOINT_PATH.value
        from deeplab_tf.checkpoints import CheckpointError, resolve_checkpoint_path

        try:
            path = resolve_checkpoint_path(path)
        except CheckpointError as error:
            raise UserError(f"--checkpoint_path={path}: {error}") from None
        yield path
        return
    directory = checkpoint_dir()
    if max_count == 1 and latest_checkpoint(directory) is None:
        raise UserError(f"No checkpoint in --checkpoint_dir={directory}")
    if max_count != 1:
        print(f"Evaluating each new checkpoint in {directory} "
              f"({'until interrupted' if max_count <= 0 else f'{max_count} in all'}).",
              flush=True)
    yield from checkpoints_iterator(directory, latest_checkpoint, max_count=max_count,
                                    interval_secs=interval_secs)


def checkpoint_step(path: str) -> Optional[int]:
    """The training step of a checkpoint: its ``step`` / ``global_step`` variable, else the
    number after the last '-' of its name; None if neither exists."""
    import tensorflow as tf

    try:
        reader = tf.train.load_checkpoint(path)
        shapes = reader.get_variable_to_shape_map()
        for key in ("step/.ATTRIBUTES/VARIABLE_VALUE", "global_step"):
            if key in shapes:
                return int(reader.get_tensor(key))
    except (tf.errors.OpError, ValueError):
        pass
    suffix = os.path.basename(path).rsplit("-", 1)[-1]
    return int(suffix) if suffix.isdigit() else None


def restore(model, path: str) -> None:
    """Loads every model variable from ``path`` (an error if any is missing)."""
    from deeplab_tf.checkpoints import CheckpointError, load_for_inference

    try:
        report = load_for_inference(model, path)
    except CheckpointError as error:
        raise UserError(str(error)) from None
    logging.info("%s", report.summary())


# --- the model -----------------------------------------------------------------------------

def _explicit_model_flags():
    names = [f.name for f in flags.FLAGS.get_flags_for_module(_model_flags.__name__)]
    return sorted(name for name in names if flags.FLAGS[name].present)


def model_config(num_classes: int, directory: Optional[str]) -> Tuple[ModelConfig, str]:
    """The ModelConfig to evaluate and a line saying where it came from.

    ``directory/config.json`` (a training run's) is used when no model flag was given
    explicitly; otherwise the model flags, as in the original. Either way the class count
    must match the dataset's.
    """
    path = os.path.join(directory, CONFIG_JSON) if directory else None
    explicit = _explicit_model_flags()
    run_config = None
    if path and os.path.isfile(path):
        try:
            with open(path) as f:
                run_config = ModelConfig.from_dict(json.load(f)["model"])
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise UserError(f"Cannot read the model config of {path}: {error}") from None
    if run_config is not None and not explicit:
        config, source = run_config, f"Model: {path} (no model flags given)."
    else:
        config = _model_flags.model_config_from_flags(num_classes=num_classes)
        source = "Model: from the model flags."
        if run_config is not None:
            differ = sorted(k for k, v in config.to_dict().items()
                            if k not in _TRAINING_ONLY_FIELDS and run_config.to_dict().get(k) != v)
            if differ:
                source += (f" Note: {path} differs in {', '.join(differ)}; "
                           "give no model flags to use it.")
    if config.num_classes != num_classes:
        raise UserError(
            f"The model has {config.num_classes} classes but the dataset has {num_classes} "
            "(check --dataset / --num_classes)")
    return config, source


def build_predictor(num_classes: int, directory: Optional[str], eval_config: EvalConfig):
    """(model, model_config, predict_fn, pad_value): the model of ``model_config`` (announced
    on stdout) and its ``evaluator.make_predict_fn``; load weights with ``restore``."""
    from deeplab_tf.evaluation import evaluator
    from deeplab_tf.model import build_model, mean_pixel

    config, source = model_config(num_classes, directory)
    print(source, flush=True)
    model = build_model(config)
    pad_value = mean_pixel(config.model_variant)
    predict = evaluator.make_predict_fn(model, eval_config, config)
    return model, config, predict, pad_value
