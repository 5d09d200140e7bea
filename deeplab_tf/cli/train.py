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
configs), the checkpoints (every ``--save_interval_secs`` and ``--save_interval_steps``, at
the end and on SIGTERM) and TensorBoard summaries. Restarting with the same ``train_logdir`` resumes model,
optimizer and step; ``--tf_initial_checkpoint`` (an original TF1 checkpoint or one of this
project's) is then ignored, as in the original.

``--quantize_delay_step=N`` (N >= 0) trains the quantization-aware network (batch norm folded,
8-bit fake-quantized weights and activations) from step N on, as the original; unlike the
original it also trains with several replicas (``deeplab_tf.train.loop``).

New compared with the original: ``--strategy``, ``--tpu``, ``--sync_batch_norm``,
``--mixed_precision``, ``--jit_compile``, ``--optimizer=adam`` with the learning policy,
``--learning_policy=cosine``, ``--save_interval_steps``, ``--max_to_keep``, ``--seed``.
The original's ``--num_clones=N`` trains with MirroredStrategy on N local devices.
"""

from __future__ import annotations

import json
import os

from absl import flags, logging

from deeplab_tf.cli._common import UserError, atomic_write_text, run_app
from deeplab_tf.cli.flags import data, legacy, model, quantize
from deeplab_tf.cli.flags import train as train_flags
from deeplab_tf.config import DataConfig, ModelConfig

CONFIG_JSON = "config.json"
FLAGS_TXT = "flags.txt"


def _mixed_precision() -> str:
    """--mixed_precision, with ``auto`` resolved by deeplab_tf.runtime.hardware (said on stdout)."""
    name = train_flags.MIXED_PRECISION.value
    if name != "auto":
        return name
    if quantize.QUANTIZE_DELAY_STEP.value >= 0:
        print("--mixed_precision=auto: float32 (quantization-aware training)", flush=True)
        return "float32"
    try:
        from deeplab_tf.runtime.hardware import resolve_mixed_precision
    except ImportError as error:
        raise UserError(f"--mixed_precision=auto needs deeplab_tf.runtime.hardware ({error}); give "
                        "float32, bfloat16 or float16") from None
    dtype, reason = resolve_mixed_precision("auto")
    print(f"--mixed_precision=auto: {dtype} ({reason})", flush=True)
    return dtype


def configs_from_flags(dataset_info):
    """(ModelConfig, DataConfig, TrainConfig) from the parsed flags."""
    model_config = model.model_config(num_classes=dataset_info.num_classes,
                                      **train_flags.model_overrides())
    if model_config.num_classes != dataset_info.num_classes:
        raise UserError(
            f"--num_classes={model_config.num_classes} but dataset {dataset_info.name!r} has "
            f"{dataset_info.num_classes} classes")
    data_config = data.data_config(**train_flags.data_fields())
    train_config = train_flags.train_config(mixed_precision=_mixed_precision())
    if train_config.label_weights and len(train_config.label_weights) != model_config.num_classes:
        raise UserError(
            f"--label_weights needs one weight per class ({model_config.num_classes}). Received "
            f"{len(train_config.label_weights)}: {list(train_config.label_weights)}")
    return model_config, data_config, train_config


def resolved_flags() -> str:
    """The flags deeplab-train reads, as a flagfile (one per line): repeats the run."""
    from deeplab_tf.cli.flags import parsing

    lines = []
    for name in sorted(flags.FLAGS):
        flag = flags.FLAGS[name]
        if name != flag.name or not parsing.uses("deeplab-train", name):
            continue  # a short name, or another binary's flag
        if parsing.group_of(name) == "legacy" and not flag.present:
            continue
        if flag.value is None or flag.value == []:
            continue  # unset: the default (None) is what a rerun gets too
        lines.append(flag.serialize())
    return "\n".join(lines) + "\n"


def _clone_strategy():
    """The original's --num_clones / --clone_on_cpu as a tf.distribute strategy, or None.

    --num_clones=N (N > 1): MirroredStrategy over N local GPUs, or over N logical CPU devices
    with --clone_on_cpu. --clone_on_cpu alone: train on the CPU.
    """
    clones, on_cpu = legacy.NUM_CLONES.value, legacy.CLONE_ON_CPU.value
    if clones < 1:
        raise UserError(f"--num_clones must be >= 1. Received: --num_clones={clones}")
    if clones == 1 and not on_cpu:
        return None
    if train_flags.STRATEGY.value not in ("auto", "mirrored", "one_device"):
        raise UserError(f"--num_clones / --clone_on_cpu run local replicas; they cannot be "
                        f"combined with --strategy={train_flags.STRATEGY.value}")
    import tensorflow as tf

    if on_cpu:
        tf.config.set_visible_devices([], "GPU")
        if clones > 1:
            cpu = tf.config.list_physical_devices("CPU")[0]
            tf.config.set_logical_device_configuration(
                cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(clones)])
        devices = [d.name for d in tf.config.list_logical_devices("CPU")]
    else:
        devices = [d.name for d in tf.config.list_logical_devices("GPU")]
        if len(devices) < clones:
            raise UserError(
                f"--num_clones={clones} needs {clones} local GPUs; this machine has "
                f"{len(devices)} (add --clone_on_cpu to split the CPU into {clones} devices)")
    if clones == 1:
        return tf.distribute.OneDeviceStrategy(devices[0])
    return tf.distribute.MirroredStrategy(devices[:clones])


def _check_resumable(train_logdir: str, model_config: ModelConfig):
    """A train_logdir with checkpoints must be resumed with the same model."""
    from deeplab_tf.checkpoints.loading import latest_checkpoint

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
    train_logdir = train_flags.TRAIN_LOGDIR.value
    if not train_logdir:
        raise UserError("--train_logdir is required")
    data.require_dataset_dir()
    clone_strategy = _clone_strategy()

    from deeplab_tf.data import pipeline
    from deeplab_tf.modeling.backbones import mean_pixel

    info = data.dataset_info()
    model_config, data_config, train_config = configs_from_flags(info)
    data_description = _data_description(data_config)
    os.makedirs(train_logdir, exist_ok=True)
    _check_resumable(train_logdir, model_config)

    from deeplab_tf.train.loop import Trainer
    from deeplab_tf.train.strategy import create_strategy

    strategy = clone_strategy or create_strategy(train_config.strategy, train_config.tpu)
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
    run_app(main, "deeplab-train")


if __name__ == "__main__":
    run()
