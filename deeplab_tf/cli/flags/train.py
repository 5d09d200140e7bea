"""deeplab-train's flags: the original train.py's names, defaults from TrainConfig/DataConfig.

New compared with the original: ``--strategy``, ``--tpu``, ``--sync_batch_norm``,
``--mixed_precision`` (``auto`` asks ``deeplab_tf.runtime.hardware``), ``--jit_compile``,
``--learning_policy=cosine``, ``--save_interval_steps`` (beside ``--save_interval_secs``),
``--max_to_keep``, ``--seed``, ``--batch_norm_decay`` default None (the network's own).
``--quantize_delay_step`` (the original's) is in the ``quantize`` group.
"""

from __future__ import annotations

from absl import flags

from deeplab_tf.cli.flags import quantize
from deeplab_tf.cli.flags.values import default, parse_size, size_default
from deeplab_tf.config import (LEARNING_POLICIES, MIXED_PRECISION, OPTIMIZERS,
                               STRATEGIES, DataConfig, ModelConfig,
                               TrainConfig)
from deeplab_tf.errors import ConfigError

_T, _D, _M = TrainConfig, DataConfig, ModelConfig

TRAIN_LOGDIR = flags.DEFINE_string(
    "train_logdir", None, "Where the checkpoints, summaries, flags.txt and config.json go.")
LOG_STEPS = flags.DEFINE_integer(
    "log_steps", default(_T, "log_steps"),
    "Log a progress line and the scalar summaries every log_steps.")
SAVE_INTERVAL_SECS = flags.DEFINE_integer(
    "save_interval_secs", default(_T, "save_interval_secs"),
    "Save a checkpoint when this many seconds passed since the last save (0: by steps only).")
SAVE_INTERVAL_STEPS = flags.DEFINE_integer(
    "save_interval_steps", default(_T, "save_interval_steps"),
    "Also save a checkpoint every this many steps.")
MAX_TO_KEEP = flags.DEFINE_integer("max_to_keep", default(_T, "max_to_keep"),
                                   "Number of checkpoints kept.")
SAVE_SUMMARIES_IMAGES = flags.DEFINE_boolean(
    "save_summaries_images", default(_T, "save_summaries_images"),
    "Save sample inputs, labels and predictions (in the dataset's palette) as image summaries.")

LEARNING_POLICY = flags.DEFINE_enum(
    "learning_policy", default(_T, "learning_policy"), list(LEARNING_POLICIES),
    "Learning rate policy.")
BASE_LEARNING_RATE = flags.DEFINE_float(
    "base_learning_rate", default(_T, "base_learning_rate"),
    "Base learning rate (0.007 for PASCAL train_aug; 0.0001 to fine-tune on trainval).")
LEARNING_RATE_DECAY_FACTOR = flags.DEFINE_float(
    "learning_rate_decay_factor", default(_T, "learning_rate_decay_factor"),
    "Decay factor of the step policy.")
LEARNING_RATE_DECAY_STEP = flags.DEFINE_integer(
    "learning_rate_decay_step", default(_T, "learning_rate_decay_step"),
    "Decay period (steps) of the step policy.")
LEARNING_POWER = flags.DEFINE_float("learning_power", default(_T, "learning_power"),
                                    "Power of the poly policy.")
DECAY_STEPS = flags.DEFINE_float(
    "decay_steps", default(_T, "decay_steps"),
    "Poly policy: steps after the slow start over which the rate decays to "
    "end_learning_rate (0: to the last step).")
END_LEARNING_RATE = flags.DEFINE_float(
    "end_learning_rate", default(_T, "end_learning_rate"),
    "Poly policy: the rate at the end of the decay.")
TRAINING_NUMBER_OF_STEPS = flags.DEFINE_integer(
    "training_number_of_steps", default(_T, "training_number_of_steps"),
    "Number of training steps.")
SLOW_START_STEP = flags.DEFINE_integer(
    "slow_start_step", default(_T, "slow_start_step"),
    "Train with slow_start_learning_rate for this many first steps.")
SLOW_START_LEARNING_RATE = flags.DEFINE_float(
    "slow_start_learning_rate", default(_T, "slow_start_learning_rate"),
    "Learning rate of the slow start.")
OPTIMIZER = flags.DEFINE_enum("optimizer", default(_T, "optimizer"), list(OPTIMIZERS),
                              "Optimizer.")
MOMENTUM = flags.DEFINE_float("momentum", default(_T, "momentum"),
                              "Momentum of the momentum optimizer.")
ADAM_LEARNING_RATE = flags.DEFINE_float(
    "adam_learning_rate", default(_T, "adam_learning_rate"),
    "Base learning rate of Adam (the learning policy and slow start apply to it).")
ADAM_EPSILON = flags.DEFINE_float("adam_epsilon", default(_T, "adam_epsilon"), "Adam's epsilon.")
LAST_LAYER_GRADIENT_MULTIPLIER = flags.DEFINE_float(
    "last_layer_gradient_multiplier", default(_T, "last_layer_gradient_multiplier"),
    "Gradient multiplier of the last layers (> 1 boosts them).")

UPSAMPLE_LOGITS = flags.DEFINE_boolean(
    "upsample_logits", default(_T, "upsample_logits"),
    "Upsample logits to the label size for the loss (else downsample the labels).")
LABEL_WEIGHTS = flags.DEFINE_multi_float(
    "label_weights", None,
    "Loss weight of each class, one per class in order (repeat the flag); default all 1.")
TOP_K_PERCENT_PIXELS = flags.DEFINE_float(
    "top_k_percent_pixels", default(_T, "top_k_percent_pixels"),
    "Fraction of pixels (by loss) kept for the loss: hard pixel mining when < 1.")
HARD_EXAMPLE_MINING_STEP = flags.DEFINE_integer(
    "hard_example_mining_step", default(_T, "hard_example_mining_step"),
    "Steps over which the mined fraction decreases from 100% to top_k_percent_pixels.")

TF_INITIAL_CHECKPOINT = flags.DEFINE_string(
    "tf_initial_checkpoint", default(_T, "tf_initial_checkpoint"),
    "Checkpoint to start from: an original TF1 DeepLab/ImageNet checkpoint, a model-zoo "
    ".tar.gz or one of this project's (prefix or directory). Ignored when train_logdir "
    "holds a checkpoint.")
TF_INITIAL_CHECKPOINTS = flags.DEFINE_string(
    "tf_initial_checkpoints", None,
    "Alias of --tf_initial_checkpoint (the spelling in the original's g3doc/pascal.md).")
ALIAS_NOTICE = ("--tf_initial_checkpoints is read as --tf_initial_checkpoint (the spelling in "
                "the original's g3doc/pascal.md)")


def initial_checkpoint():
    """--tf_initial_checkpoint, or its alias --tf_initial_checkpoints (with a one-line notice)."""
    import sys

    alias = TF_INITIAL_CHECKPOINTS.value
    if alias is None:
        return TF_INITIAL_CHECKPOINT.value
    if TF_INITIAL_CHECKPOINT.value not in (None, alias):
        raise ConfigError(
            f"--tf_initial_checkpoints={alias} and --tf_initial_checkpoint="
            f"{TF_INITIAL_CHECKPOINT.value} differ: give one of them")
    print(f"notice: {ALIAS_NOTICE}", file=sys.stderr)
    return alias


INITIALIZE_LAST_LAYER = flags.DEFINE_boolean(
    "initialize_last_layer", default(_T, "initialize_last_layer"),
    "Load the last layers from the initial checkpoint (false for another class count).")
LAST_LAYERS_CONTAIN_LOGITS_ONLY = flags.DEFINE_boolean(
    "last_layers_contain_logits_only", default(_T, "last_layers_contain_logits_only"),
    "Only the logits are last layers (else also ASPP, image pooling, decoder).")
FINE_TUNE_BATCH_NORM = flags.DEFINE_boolean(
    "fine_tune_batch_norm", default(_M, "fine_tune_batch_norm"),
    "Train batch norm (batch statistics); false keeps it in inference mode.")
SYNC_BATCH_NORM = flags.DEFINE_boolean(
    "sync_batch_norm", default(_M, "sync_batch_norm"),
    "Batch statistics over the global batch (all replicas).")
DROP_PATH_KEEP_PROB = flags.DEFINE_float(
    "drop_path_keep_prob", default(_M, "drop_path_keep_prob"),
    "NAS backbones: drop-path keep probability of the last cell, annealed over "
    "--training_number_of_steps (only with --fine_tune_batch_norm, as the original).")
BATCH_NORM_DECAY = flags.DEFINE_float(
    "batch_norm_decay", default(_T, "batch_norm_decay"),
    "Decay of the batch-norm moving averages; default the network's own (0.9997 / 0.997). "
    "Short runs (hundreds of steps) need e.g. 0.99 for usable inference statistics.")

TRAIN_SPLIT = flags.DEFINE_string("train_split", default(_D, "train_split"),
                                  "Split used for training.")
TRAIN_BATCH_SIZE = flags.DEFINE_integer(
    "train_batch_size", default(_T, "train_batch_size"),
    "Global batch size (divided evenly over the replicas).")
TRAIN_CROP_SIZE = flags.DEFINE_multi_string(
    "train_crop_size", size_default(_D, "train_crop_size"),
    "Training crop 'height,width' (or the flag twice: height, then width).")
MIN_SCALE_FACTOR = flags.DEFINE_float("min_scale_factor", default(_D, "min_scale_factor"),
                                      "Smallest augmentation scale.")
MAX_SCALE_FACTOR = flags.DEFINE_float("max_scale_factor", default(_D, "max_scale_factor"),
                                      "Largest augmentation scale.")
SCALE_FACTOR_STEP_SIZE = flags.DEFINE_float(
    "scale_factor_step_size", default(_D, "scale_factor_step_size"),
    "Step between augmentation scales (0: continuous).")

STRATEGY = flags.DEFINE_enum(
    "strategy", default(_T, "strategy"), list(STRATEGIES),
    "Distribution: auto, one_device, mirrored (local GPUs), multi_worker (TF_CONFIG), "
    "parameter_server (TF_CONFIG with ps tasks), tpu.")
NUM_PS_TASKS = flags.DEFINE_integer(
    "num_ps_tasks", 0,
    "Number of parameter servers: > 0 trains asynchronously with ParameterServerStrategy "
    "over TF_CONFIG's cluster (a chief, workers and this many ps tasks; deeplab-train on a "
    "worker or ps task serves the chief).")
TPU = flags.DEFINE_string("tpu", default(_T, "tpu"),
                          "TPU name or address (for --strategy=tpu / auto).")
MIXED_PRECISION = flags.DEFINE_enum(
    "mixed_precision", default(_T, "mixed_precision"), list(MIXED_PRECISION),
    "Compute dtype: float32, bfloat16, float16 (with loss scaling) or auto (this machine's "
    "fastest safe choice, said on stdout); the loss is float32.")
JIT_COMPILE = flags.DEFINE_boolean(
    "jit_compile", default(_T, "jit_compile"),
    "XLA-compile the forward and backward pass (one replica per worker).")
SEED = flags.DEFINE_integer(
    "seed", default(_T, "seed"),
    "Seed of the weight initialisation and of the data order / augmentation.")


def strategy() -> str:
    """--strategy, or parameter_server for the original's --num_ps_tasks > 0."""
    tasks, name = NUM_PS_TASKS.value, STRATEGY.value
    if tasks < 0:
        raise ValueError(f"--num_ps_tasks must be >= 0. Received: --num_ps_tasks={tasks}")
    if tasks == 0:
        return name
    if name not in ("auto", "parameter_server"):
        raise ValueError(f"--num_ps_tasks={tasks} trains with parameter servers; it cannot be "
                         f"combined with --strategy={name}")
    return "parameter_server"


def train_crop_size():
    return parse_size(TRAIN_CROP_SIZE.value, "train_crop_size")


def model_overrides() -> dict:
    """The ModelConfig fields deeplab-train sets."""
    return dict(fine_tune_batch_norm=FINE_TUNE_BATCH_NORM.value,
                sync_batch_norm=SYNC_BATCH_NORM.value,
                drop_path_keep_prob=DROP_PATH_KEEP_PROB.value,
                quantization=quantize.requested_quantization())


def data_fields() -> dict:
    """The DataConfig fields deeplab-train sets (beside the data group's)."""
    return dict(train_split=TRAIN_SPLIT.value, train_crop_size=train_crop_size(),
                min_scale_factor=MIN_SCALE_FACTOR.value, max_scale_factor=MAX_SCALE_FACTOR.value,
                scale_factor_step_size=SCALE_FACTOR_STEP_SIZE.value, seed=SEED.value)


def train_config(mixed_precision=None) -> TrainConfig:
    """A TrainConfig from these flags (``mixed_precision``: the resolved --mixed_precision)."""
    return TrainConfig(
        train_batch_size=TRAIN_BATCH_SIZE.value,
        training_number_of_steps=TRAINING_NUMBER_OF_STEPS.value,
        learning_policy=LEARNING_POLICY.value, base_learning_rate=BASE_LEARNING_RATE.value,
        learning_rate_decay_step=LEARNING_RATE_DECAY_STEP.value,
        learning_rate_decay_factor=LEARNING_RATE_DECAY_FACTOR.value,
        learning_power=LEARNING_POWER.value, decay_steps=DECAY_STEPS.value,
        end_learning_rate=END_LEARNING_RATE.value, slow_start_step=SLOW_START_STEP.value,
        slow_start_learning_rate=SLOW_START_LEARNING_RATE.value, optimizer=OPTIMIZER.value,
        momentum=MOMENTUM.value, adam_learning_rate=ADAM_LEARNING_RATE.value,
        adam_epsilon=ADAM_EPSILON.value, upsample_logits=UPSAMPLE_LOGITS.value,
        label_weights=tuple(LABEL_WEIGHTS.value or ()),
        top_k_percent_pixels=TOP_K_PERCENT_PIXELS.value,
        hard_example_mining_step=HARD_EXAMPLE_MINING_STEP.value,
        last_layer_gradient_multiplier=LAST_LAYER_GRADIENT_MULTIPLIER.value,
        last_layers_contain_logits_only=LAST_LAYERS_CONTAIN_LOGITS_ONLY.value,
        tf_initial_checkpoint=initial_checkpoint(),
        initialize_last_layer=INITIALIZE_LAST_LAYER.value,
        save_interval_steps=SAVE_INTERVAL_STEPS.value,
        save_interval_secs=SAVE_INTERVAL_SECS.value, max_to_keep=MAX_TO_KEEP.value,
        log_steps=LOG_STEPS.value, save_summaries_images=SAVE_SUMMARIES_IMAGES.value,
        strategy=strategy(), tpu=TPU.value,
        mixed_precision=mixed_precision or MIXED_PRECISION.value,
        jit_compile=JIT_COMPILE.value, seed=SEED.value, batch_norm_decay=BATCH_NORM_DECAY.value,
        quantize_delay_step=quantize.QUANTIZE_DELAY_STEP.value)
