"""deeplab-train: trains a DeepLab model, flags as the original train.py.

    deeplab-train --flagfile=configs/pascal_voc_seg/xception65_os16.flags \\
        --dataset_dir=tfrecord --train_logdir=train \\
        [--tf_initial_checkpoint=xception_65/model.ckpt] [--initialize_last_layer=false]

One custom training loop (``deeplab_tf.train.loop``) for every ``--strategy``: ``auto``
(multi-worker if TF_CONFIG names several tasks, TPU if ``--tpu`` is given, every GPU if there
are several, else one device), ``one_device``, ``mirrored``, ``multi_worker`` (TF_CONFIG) or
``tpu``. ``--train_batch_size`` is the global batch, split evenly over the replicas.

``train_logdir`` receives ``flags.txt`` (the resolved flags: ``deeplab-train
--flagfile=train_logdir/flags.txt`` repeats the run), ``config.json`` (model, data and train
configs), the checkpoints ``ckpt-<step>`` (every ``--save_interval_steps``, at the end and on
SIGTERM) and TensorBoard summaries. Restarting with the same ``train_logdir`` resumes model,
optimizer and step; ``--tf_initial_checkpoint`` (an original TF1 checkpoint or one of this
project's) is then ignored, as in the original.

New compared with the original: ``--strategy``, ``--tpu``, ``--sync_batch_norm``,
``--mixed_precision``, ``--jit_compile``, ``--optimizer=adam`` with the learning policy,
``--learning_policy=cosine``, ``--label_weights``, ``--save_interval_steps`` (instead of
``--save_interval_secs``), ``--max_to_keep``, ``--seed``, ``--batch_norm_decay``.
"""

from __future__ import annotations

import json
import os
import sys

from absl import flags, logging

from deeplab_tf.cli import _model_flags
from deeplab_tf.cli._common import UserError, atomic_write_text, run_app
from deeplab_tf.config import (LEARNING_POLICIES, MIXED_PRECISION, OPTIMIZERS, STRATEGIES,
                               DataConfig, ModelConfig, TrainConfig)

CONFIG_JSON = "config.json"
FLAGS_TXT = "flags.txt"

# --- logging and checkpoints (original names) --------------------------------------------
_TRAIN_LOGDIR = flags.DEFINE_string(
    "train_logdir", None, "Where the checkpoints, summaries, flags.txt and config.json go.")
_LOG_STEPS = flags.DEFINE_integer(
    "log_steps", 10, "Log a progress line and the scalar summaries every log_steps.")
_SAVE_INTERVAL_STEPS = flags.DEFINE_integer(
    "save_interval_steps", 1000, "Save a checkpoint every this many steps.")
_MAX_TO_KEEP = flags.DEFINE_integer("max_to_keep", 5, "Number of checkpoints kept.")
_SAVE_SUMMARIES_IMAGES = flags.DEFINE_boolean(
    "save_summaries_images", False,
    "Save sample inputs, labels and predictions (in the dataset's palette) as image summaries.")

# --- learning rate and optimiser ----------------------------------------------------------
_LEARNING_POLICY = flags.DEFINE_enum(
    "learning_policy", "poly", list(LEARNING_POLICIES), "Learning rate policy.")
_BASE_LEARNING_RATE = flags.DEFINE_float(
    "base_learning_rate", 0.0001,
    "Base learning rate (0.007 for PASCAL train_aug; 0.0001 to fine-tune on trainval).")
_LEARNING_RATE_DECAY_FACTOR = flags.DEFINE_float(
    "learning_rate_decay_factor", 0.1, "Decay factor of the step policy.")
_LEARNING_RATE_DECAY_STEP = flags.DEFINE_integer(
    "learning_rate_decay_step", 2000, "Decay period (steps) of the step policy.")
_LEARNING_POWER = flags.DEFINE_float("learning_power", 0.9, "Power of the poly policy.")
_TRAINING_NUMBER_OF_STEPS = flags.DEFINE_integer(
    "training_number_of_steps", 30000, "Number of training steps.")
_SLOW_START_STEP = flags.DEFINE_integer(
    "slow_start_step", 0, "Train with slow_start_learning_rate for this many first steps.")
_SLOW_START_LEARNING_RATE = flags.DEFINE_float(
    "slow_start_learning_rate", 1e-4, "Learning rate of the slow start.")
_OPTIMIZER = flags.DEFINE_enum("optimizer", "momentum", list(OPTIMIZERS), "Optimizer.")
_MOMENTUM = flags.DEFINE_float("momentum", 0.9, "Momentum of the momentum optimizer.")
_ADAM_LEARNING_RATE = flags.DEFINE_float(
    "adam_learning_rate", 0.001,
    "Base learning rate of Adam (the learning policy and slow start apply to it).")
_ADAM_EPSILON = flags.DEFINE_float("adam_epsilon", 1e-08, "Adam's epsilon.")
_LAST_LAYER_GRADIENT_MULTIPLIER = flags.DEFINE_float(
    "last_layer_gradient_multiplier", 1.0,
    "Gradient multiplier of the last layers (> 1 boosts them).")

# --- loss ---------------------------------------------------------------------------------
_UPSAMPLE_LOGITS = flags.DEFINE_boolean(
    "upsample_logits", True,
    "Upsample logits to the label size for the loss (else downsample the labels).")
_LABEL_WEIGHTS = flags.DEFINE_multi_float(
    "label_weights", None,
    "Loss weight of each class, one per class in order (repeat the flag); default all 1.")
_TOP_K_PERCENT_PIXELS = flags.DEFINE_float(
    "top_k_percent_pixels", 1.0,
    "Fraction of pixels (by loss) kept for the loss: hard pixel mining when < 1.")
_HARD_EXAMPLE_MINING_STEP = flags.DEFINE_integer(
    "hard_example_mining_step", 0,
    "Steps over which the mined fraction decreases from 100% to top_k_percent_pixels.")

# --- fine-tuning ----------------------------------------------------------------------------
_TF_INITIAL_CHECKPOINT = flags.DEFINE_string(
    "tf_initial_checkpoint", None,
    "Checkpoint to start from: an original TF1 DeepLab/ImageNet checkpoint or one of this "
    "project's (prefix or directory). Ignored when train_logdir holds a checkpoint.")
_INITIALIZE_LAST_LAYER = flags.DEFINE_boolean(
    "initialize_last_layer", True,
    "Load the last layers from tf_initial_checkpoint (false for another class count).")
_LAST_LAYERS_CONTAIN_LOGITS_ONLY = flags.DEFINE_boolean(
    "last_layers_contain_logits_only", False,
    "Only the logits are last layers (else also ASPP, image pooling, decoder).")
_FINE_TUNE_BATCH_NORM = flags.DEFINE_boolean(
    "fine_tune_batch_norm", True,
    "Train batch norm (batch statistics); false keeps it in inference mode and frozen.")
_SYNC_BATCH_NORM = flags.DEFINE_boolean(
    "sync_batch_norm", False, "Batch statistics over the global batch (all replicas).")
_BATCH_NORM_DECAY = flags.DEFINE_float(
    "batch_norm_decay", None,
    "Decay of the batch-norm moving averages; default the network's own (0.9997 / 0.997). "
    "Short runs (hundreds of steps) need e.g. 0.99 for usable inference statistics.")

# --- data (original names) ----------------------------------------------------------------
_DATASET = flags.DEFINE_string(
    "dataset", "pascal_voc_seg",
    "Dataset name (pascal_voc_seg, cityscapes, ade20k, a custom name, tfds:NAME, or '' for "
    "the manifest.json in --dataset_dir).")
_DATASET_DIR = flags.DEFINE_string("dataset_dir", None, "Where the dataset resides.")
_TRAIN_SPLIT = flags.DEFINE_string("train_split", "train", "Split used for training.")
_TRAIN_BATCH_SIZE = flags.DEFINE_integer(
    "train_batch_size", 8, "Global batch size (divided evenly over the replicas).")
_TRAIN_CROP_SIZE = flags.DEFINE_list(
    "train_crop_size", "513,513", "Training crop 'height,width'.")
_MIN_SCALE_FACTOR = flags.DEFINE_float("min_scale_factor", 0.5, "Smallest augmentation scale.")
_MAX_SCALE_FACTOR = flags.DEFINE_float("max_scale_factor", 2.0, "Largest augmentation scale.")
_SCALE_FACTOR_STEP_SIZE = flags.DEFINE_float(
    "scale_factor_step_size", 0.25, "Step between augmentation scales (0: continuous).")
_MIN_RESIZE_VALUE = flags.DEFINE_integer(
    "min_resize_value", None, "Desired size of the smaller image side (resize to range).")
_MAX_RESIZE_VALUE = flags.DEFINE_integer(
    "max_resize_value", None, "Maximum allowed size of the larger image side.")
_RESIZE_FACTOR = flags.DEFINE_integer(
    "resize_factor", None, "Resized dimensions are a multiple of this plus one.")

# --- how to run -----------------------------------------------------------------------------
_STRATEGY = flags.DEFINE_enum(
    "strategy", "auto", list(STRATEGIES),
    "Distribution: auto, one_device, mirrored (local GPUs), multi_worker (TF_CONFIG), tpu.")
_TPU = flags.DEFINE_string("tpu", None, "TPU name or address (for --strategy=tpu / auto).")
_MIXED_PRECISION = flags.DEFINE_enum(
    "mixed_precision", "float32", list(MIXED_PRECISION),
    "Compute dtype: float32, bfloat16 or float16 (with loss scaling); the loss is float32.")
_JIT_COMPILE = flags.DEFINE_boolean(
    "jit_compile", False, "XLA-compile the forward and backward pass (one replica per worker).")
_SEED = flags.DEFINE_integer(
    "seed", None, "Seed of the weight initialisation and of the data order / augmentation.")


def _crop_size():
    values = _TRAIN_CROP_SIZE.value or []
    try:
        size = tuple(int(v) for v in values)
    except ValueError:
        size = ()
    if len(size) != 2:
        raise UserError(f"--train_crop_size must be 'height,width'. "
                        f"Received: --train_crop_size={','.join(values)}")
    return size


def configs_from_flags(dataset_info):
    """(ModelConfig, DataConfig, TrainConfig) from the parsed flags."""
    model_config = _model_flags.model_config_from_flags(
        num_classes=dataset_info.num_classes, fine_tune_batch_norm=_FINE_TUNE_BATCH_NORM.value,
        sync_batch_norm=_SYNC_BATCH_NORM.value)
    if model_config.num_classes != dataset_info.num_classes:
        raise UserError(
            f"--num_classes={model_config.num_classes} but dataset {dataset_info.name!r} has "
            f"{dataset_info.num_classes} classes")
    data_config = DataConfig(
        dataset=_DATASET.value, dataset_dir=_DATASET_DIR.value or "",
        train_split=_TRAIN_SPLIT.value, train_crop_size=_crop_size(),
        min_resize_value=_MIN_RESIZE_VALUE.value, max_resize_value=_MAX_RESIZE_VALUE.value,
        resize_factor=_RESIZE_FACTOR.value, min_scale_factor=_MIN_SCALE_FACTOR.value,
        max_scale_factor=_MAX_SCALE_FACTOR.value,
        scale_factor_step_size=_SCALE_FACTOR_STEP_SIZE.value, seed=_SEED.value)
    train_config = TrainConfig(
        train_batch_size=_TRAIN_BATCH_SIZE.value,
        training_number_of_steps=_TRAINING_NUMBER_OF_STEPS.value,
        learning_policy=_LEARNING_POLICY.value, base_learning_rate=_BASE_LEARNING_RATE.value,
        learning_rate_decay_step=_LEARNING_RATE_DECAY_STEP.value,
        learning_rate_decay_factor=_LEARNING_RATE_DECAY_FACTOR.value,
        learning_power=_LEARNING_POWER.value, slow_start_step=_SLOW_START_STEP.value,
        slow_start_learning_rate=_SLOW_START_LEARNING_RATE.value, optimizer=_OPTIMIZER.value,
        momentum=_MOMENTUM.value, adam_learning_rate=_ADAM_LEARNING_RATE.value,
        adam_epsilon=_ADAM_EPSILON.value, upsample_logits=_UPSAMPLE_LOGITS.value,
        label_weights=tuple(_LABEL_WEIGHTS.value or ()),
        top_k_percent_pixels=_TOP_K_PERCENT_PIXELS.value,
        hard_example_mining_step=_HARD_EXAMPLE_MINING_STEP.value,
        last_layer_gradient_multiplier=_LAST_LAYER_GRADIENT_MULTIPLIER.value,
        last_layers_contain_logits_only=_LAST_LAYERS_CONTAIN_LOGITS_ONLY.value,
        tf_initial_checkpoint=_TF_INITIAL_CHECKPOINT.value,
        initialize_last_layer=_INITIALIZE_LAST_LAYER.value,
        save_interval_steps=_SAVE_INTERVAL_STEPS.value, max_to_keep=_MAX_TO_KEEP.value,
        log_steps=_LOG_STEPS.value, save_summaries_images=_SAVE_SUMMARIES_IMAGES.value,
        strategy=_STRATEGY.value, tpu=_TPU.value, mixed_precision=_MIXED_PRECISION.value,
        jit_compile=_JIT_COMPILE.value, seed=_SEED.value,
        batch_norm_decay=_BATCH_NORM_DECAY.value)
    if train_config.label_weights and len(train_config.label_weights) != model_config.num_classes:
        raise UserError(
            f"--label_weights needs one weight per class ({model_config.num_classes}). Received "
            f"{len(train_config.label_weights)}: {list(train_config.label_weights)}")
    return model_config, data_config, train_config


def resolved_flags() -> str:
    """This binary's flags (and the model flags) as a flagfile, one flag per line."""
    lines = []
    for module in (sys.modules[__name__], _model_flags):
        for flag in sorted(flags.FLAGS.get_flags_for_module(module), key=lambda f: f.name):
            if flag.value is None or flag.value == []:
                continue  # unset: the default (None) is what a rerun gets too
            lines.append(flag.serialize())
    return "\n".join(lines) + "\n"


def _check_resumable(train_logdir: str, model_config: ModelConfig):
    """A train_logdir with checkpoints must be resumed with the same model."""
    from deeplab_tf.checkpoints import latest_checkpoint

    path = os.path.join(train_logdir, CONFIG_JSON)
    if latest_checkpoint(train_logdir) is None or not os.path.isfile(path):
        return
    try:
        with open(path) as f:
            previous = json.load(f)["model"]
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise UserError(f"Cannot read {path}: {error}") from None
    current = model_config.to_dict()
    differ = sorted(k for k in set(current) | set(previous) if current.get(k) != previous.get(k))
    if differ:
        raise UserError(
            f"--train_logdir={train_logdir} holds checkpoints of another model (its "
            f"{CONFIG_JSON} differs in {', '.join(differ)}): resume with the flags of "
            f"{os.path.join(train_logdir, FLAGS_TXT)} or use a new --train_logdir")


def _data_description(data_config: DataConfig) -> str:
    """Checks that the training split has shards; returns its file pattern (for errors)."""
    from deeplab_tf.data import registry, schema

    if data_config.dataset.startswith(registry.TFDS_PREFIX):
        return f"{data_config.dataset} split {data_config.train_split!r}"
    schema.list_shards(data_config.dataset_dir, data_config.train_split)
    pattern = schema.shard_pattern(data_config.dataset_dir, data_config.train_split)
    return f"split {data_config.train_split!r} ({pattern})"


def main(argv):
    if len(argv) > 1:
        raise UserError(f"Unexpected arguments: {' '.join(argv[1:])}")
    train_logdir = _TRAIN_LOGDIR.value
    if not _DATASET.value.startswith("tfds:"):
        if not _DATASET_DIR.value:
            raise UserError("--dataset_dir is required")
        if not os.path.isdir(_DATASET_DIR.value):
            raise UserError(f"--dataset_dir={_DATASET_DIR.value} is not a directory")

    from deeplab_tf.data import pipeline, registry
    from deeplab_tf.model import mean_pixel

    info = registry.get_dataset_info(_DATASET.value, _DATASET_DIR.value or None)
    model_config, data_config, train_config = configs_from_flags(info)
    data_description = _data_description(data_config)
    os.makedirs(train_logdir, exist_ok=True)
    _check_resumable(train_logdir, model_config)

    from deeplab_tf.train.loop import Trainer
    from deeplab_tf.train.strategy import create_strategy

    strategy = create_strategy(train_config.strategy, train_config.tpu)
    pad = mean_pixel(model_config.model_variant)

    def dataset_fn(input_context):
        return pipeline.train_dataset(
            data_config, batch_size=train_config.train_batch_size, mean_pixel=pad,
            ignore_label=info.ignore_label, input_context=input_context)

    trainer = Trainer(model_config, train_config, train_logdir=train_logdir,
                      dataset_fn=dataset_fn, ignore_label=info.ignore_label,
                      palette=info.palette, strategy=strategy,
                      data_description=data_description)
    if trainer.chief:
        atomic_write_text(os.path.join(train_logdir, FLAGS_TXT), resolved_flags())
        atomic_write_text(os.path.join(train_logdir, CONFIG_JSON), json.dumps(
            {"model": model_config.to_dict(), "data": data_config.to_dict(),
             "train": train_config.to_dict()}, indent=2, sort_keys=True) + "\n")
    logging.info("Training %s on %s with %d replica(s); logdir %s.", model_config.model_variant,
                 data_description, trainer.num_replicas, train_logdir)
    result = trainer.run()
    state = "stopped by SIGTERM at" if result.preempted else "reached"
    print(f"Training {state} step {result.step}/{train_config.training_number_of_steps}; "
          f"checkpoint: {result.checkpoint}", flush=True)


def run():
    flags.mark_flag_as_required("train_logdir")
    run_app(main)


if __name__ == "__main__":
    run()
