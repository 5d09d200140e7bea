"""deeplab-train: trains a DeepLab model, flags as the original train.py.

    deeplab-train --flagfile=configs/pascal_voc_seg/xception65_os16.flags \\
        --dataset_dir=tfrecord --train_logdir=train \\
        [--tf_initial_checkpoint=xception_65/model.ckpt] [--initialize_last_layer=false]

One custom training loop (``deeplab_tf.train.loop``) for every ``--strategy``: ``auto``
(parameter servers if TF_CONFIG has ps tasks, multi-worker if it names several tasks, TPU if
``--tpu`` is given, every GPU if there are several, else one device), ``one_device``,
``mirrored``, ``multi_worker`` (TF_CONFIG), ``parameter_server`` (TF_CONFIG; the original's
``--num_ps_tasks``: the chief trains, worker and ps tasks serve it) or ``tpu``.
``--train_batch_size`` is the global batch, split evenly over the replicas.

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

import os

from absl import flags, logging

from deeplab_tf.checkpoints import run_dir
from deeplab_tf.cli._common import run_app
from deeplab_tf.cli.flags import data, legacy, model
from deeplab_tf.cli.flags import train as train_flags
from deeplab_tf.config import DataConfig
from deeplab_tf.errors import UserError
from deeplab_tf.fileio import check_writable


def configs_from_flags(dataset_info):
    """(ModelConfig, DataConfig, TrainConfig) from the parsed flags."""
    from deeplab_tf.losses import check_label_weights

    model_config = model.model_config(num_classes=dataset_info.num_classes,
                                      **train_flags.model_overrides())
    if model_config.num_classes != dataset_info.num_classes:
        raise UserError(
            f"--num_classes={model_config.num_classes} but dataset {dataset_info.name!r} has "
            f"{dataset_info.num_classes} classes")
    data_config = data.data_config(**train_flags.data_fields())
    train_config = train_flags.train_config()
    check_label_weights(train_config.label_weights, model_config.num_classes)
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


def clone_strategy_from_flags():
    """The original's --num_clones / --clone_on_cpu as a strategy (``train.strategy``)."""
    from deeplab_tf.train.strategy import clone_strategy

    return clone_strategy(legacy.NUM_CLONES.value, legacy.CLONE_ON_CPU.value,
                          train_flags.STRATEGY.value)


def _serves_parameter_server_training() -> bool:
    """On a worker or ps task of a parameter-server cluster (TF_CONFIG), serves the chief
    (blocks until stopped) and returns True; checks --num_ps_tasks against TF_CONFIG."""
    tasks = train_flags.NUM_PS_TASKS.value
    train_flags.strategy()  # --num_ps_tasks against --strategy
    if tasks == 0 and train_flags.STRATEGY.value not in ("auto", "parameter_server"):
        return False
    from deeplab_tf.train.strategy import parameter_server_count

    found = parameter_server_count()
    if tasks and found != tasks:
        raise UserError(f"--num_ps_tasks={tasks} but TF_CONFIG's cluster has {found} 'ps' "
                        "tasks (set TF_CONFIG to the cluster: a chief, workers, ps tasks)")
    if not found:
        return False
    from deeplab_tf.train.parameter_server import serve_cluster_task

    return serve_cluster_task()


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
    if _serves_parameter_server_training():
        return
    data.require_dataset_dir()
    clone_strategy = clone_strategy_from_flags()

    from deeplab_tf.checkpoints.loading import latest_checkpoint

    info = data.dataset_info()
    model_config, data_config, train_config = configs_from_flags(info)
    data_description = _data_description(data_config)
    check_writable(train_logdir, f"--train_logdir={train_logdir}")
    if os.path.isdir(train_logdir):
        run_dir.check_resumable(train_logdir, model_config,
                                has_checkpoint=latest_checkpoint(train_logdir) is not None)
    trainer = None
    # A start that fails (bad data at the first batch, a checkpoint that cannot be resumed)
    # leaves train_logdir as it was.
    with run_dir.failed_start_guard(train_logdir, lambda: bool(trainer and trainer.steps_run)):
        os.makedirs(train_logdir, exist_ok=True)
        trainer = _trainer(train_logdir, info, model_config, data_config, train_config,
                           clone_strategy, data_description)
        if trainer.chief:
            run_dir.write_training_run(
                train_logdir, {"model": model_config, "data": data_config,
                               "train": train_config}, resolved_flags())
        logging.info("Training %s on %s with %d replica(s); logdir %s.",
                     model_config.model_variant, data_description, trainer.num_replicas,
                     train_logdir)
        result = trainer.run()
    state = "stopped by SIGTERM at" if result.preempted else "reached"
    print(f"Training {state} step {result.step}/{train_config.training_number_of_steps}; "
          f"checkpoint: {result.checkpoint}", flush=True)


def _trainer(train_logdir, info, model_config, data_config, train_config, clone_strategy,
             data_description):
    """The Trainer of the run (the strategy, the model, the input pipeline's function)."""
    import tensorflow as tf

    from deeplab_tf.data import pipeline
    from deeplab_tf.modeling.backbones import mean_pixel
    from deeplab_tf.train.loop import Trainer
    from deeplab_tf.train.parameter_server import ParameterServerTrainer
    from deeplab_tf.train.strategy import create_strategy

    strategy = clone_strategy or create_strategy(train_config.strategy, train_config.tpu)
    pad = mean_pixel(model_config.model_variant)

    def dataset_fn(input_context):
        return pipeline.train_dataset(
            data_config, batch_size=train_config.train_batch_size, mean_pixel=pad,
            ignore_label=info.ignore_label, input_context=input_context)

    trainer_class = (ParameterServerTrainer
                     if isinstance(strategy, tf.distribute.ParameterServerStrategy) else Trainer)
    trainer = trainer_class(model_config, train_config, train_logdir=train_logdir,
                            dataset_fn=dataset_fn, ignore_label=info.ignore_label,
                            palette=info.palette, strategy=strategy,
                            data_description=data_description)
    if train_config.mixed_precision == "auto":
        print(f"--mixed_precision=auto: {trainer.config.mixed_precision} "
              f"({trainer.mixed_precision_reason})", flush=True)
    return trainer


def run():
    run_app(main, "deeplab-train")


if __name__ == "__main__":
    run()
