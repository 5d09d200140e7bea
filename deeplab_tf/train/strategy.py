"""Choosing the ``tf.distribute`` strategy that the one training loop runs under.

* ``one_device``: the first GPU, else the CPU.
* ``mirrored``: every local GPU (or the local logical CPU devices when there is no GPU).
* ``multi_worker``: ``MultiWorkerMirroredStrategy`` over the cluster in ``TF_CONFIG``.
* ``parameter_server``: ``ParameterServerStrategy`` over the cluster in ``TF_CONFIG`` (a
  ``chief``, ``worker`` and ``ps`` tasks; ``train.parameter_server``).
* ``tpu``: ``TPUStrategy`` over the TPU named by ``tpu`` (cluster resolver).
* ``auto``: parameter_server if ``TF_CONFIG`` has ``ps`` tasks, multi_worker if it names
  more than one task, tpu if a TPU name is given, mirrored if there are several GPUs, else
  one_device.

Keras 3's ``model.fit`` fails under ``MultiWorkerMirroredStrategy`` (keras-team/keras#20585),
so training always runs its own loop (``train.loop``) under the strategy chosen here.
"""

from __future__ import annotations

import json
import os
from typing import Optional

import tensorflow as tf

from deeplab_tf.config import STRATEGIES
from deeplab_tf.errors import ConfigError


def _cluster() -> dict:
    try:
        config = json.loads(os.environ.get("TF_CONFIG", "") or "{}")
    except json.JSONDecodeError as error:
        raise ConfigError(f"TF_CONFIG is not valid JSON: {error}") from None
    return config.get("cluster", {})


def _cluster_task_count() -> int:
    cluster = _cluster()
    return sum(len(cluster.get(kind, [])) for kind in ("chief", "worker"))


def parameter_server_count() -> int:
    """Number of ``ps`` tasks in ``TF_CONFIG``'s cluster (0 without one)."""
    return len(_cluster().get("ps", []))


def resolve_strategy_name(name: str = "auto", tpu: Optional[str] = None) -> str:
    """The concrete strategy ``auto`` stands for on this machine (others unchanged)."""
    if name not in STRATEGIES:
        raise ConfigError(f"strategy must be one of {', '.join(STRATEGIES)}. "
                         f"Received: strategy={name!r}")
    if name != "auto":
        return name
    if parameter_server_count():
        return "parameter_server"
    if _cluster_task_count() > 1:
        return "multi_worker"
    if tpu:
        return "tpu"
    if len(tf.config.list_logical_devices("GPU")) > 1:
        return "mirrored"
    return "one_device"


def create_strategy(name: str = "auto", tpu: Optional[str] = None) -> tf.distribute.Strategy:
    """A ``tf.distribute.Strategy`` for ``name`` (see the module docstring)."""
    name = resolve_strategy_name(name, tpu)
    if name == "multi_worker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    if name == "parameter_server":
        if not parameter_server_count():
            raise ConfigError("strategy=parameter_server needs TF_CONFIG naming a cluster with "
                              "'ps' tasks (and a 'chief' and 'worker' tasks)")
        return tf.distribute.ParameterServerStrategy(
            tf.distribute.cluster_resolver.TFConfigClusterResolver())
    if name == "tpu":
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu or "")
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
        return tf.distribute.TPUStrategy(resolver)
    gpus = tf.config.list_logical_devices("GPU")
    if name == "mirrored":
        devices = [d.name for d in gpus] or [d.name for d in tf.config.list_logical_devices("CPU")]
        return tf.distribute.MirroredStrategy(devices)
    return tf.distribute.OneDeviceStrategy(gpus[0].name if gpus else "/cpu:0")


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """True on the worker that writes checkpoints, summaries and the run's files."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return True
    task_type, task_id = resolver.task_type, resolver.task_id
    if task_type in (None, "chief"):
        return True
    has_chief = "chief" in resolver.cluster_spec().as_dict()
    return task_type == "worker" and task_id == 0 and not has_chief


def task_name(strategy: tf.distribute.Strategy) -> str:
    """``"<type>-<id>"`` of this worker (``"chief-0"`` outside multi-worker training)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or resolver.task_type is None:
        return "chief-0"
    return f"{resolver.task_type}-{resolver.task_id}"


def per_replica_batch_size(global_batch_size: int, strategy: tf.distribute.Strategy) -> int:
    """The batch of each replica; raises ValueError unless the replicas split it evenly."""
    replicas = strategy.num_replicas_in_sync
    if global_batch_size % replicas:
        raise ConfigError(
            f"train_batch_size must be divisible by the number of replicas ({replicas}). "
            f"Received: train_batch_size={global_batch_size}")
    return global_batch_size // replicas


def clone_strategy(num_clones: int, clone_on_cpu: bool,
                   strategy: str = "auto") -> Optional[tf.distribute.Strategy]:
    """The original's ``--num_clones`` / ``--clone_on_cpu`` as a strategy, or None.

    ``num_clones`` > 1: MirroredStrategy over that many local GPUs, or over that many logical
    CPU devices with ``clone_on_cpu``. ``clone_on_cpu`` alone: train on the CPU. Call before
    TensorFlow initialises its devices (the logical CPU devices are set up here).

    Raises:
        ConfigError: a bad count, a strategy they cannot combine with, too few GPUs.
    """
    if num_clones < 1:
        raise ConfigError(f"--num_clones must be >= 1. Received: --num_clones={num_clones}")
    if num_clones == 1 and not clone_on_cpu:
        return None
    if strategy not in ("auto", "mirrored", "one_device"):
        raise ConfigError(f"--num_clones / --clone_on_cpu run local replicas; they cannot be "
                          f"combined with --strategy={strategy}")
    if clone_on_cpu:
        tf.config.set_visible_devices([], "GPU")
        if num_clones > 1:
            cpu = tf.config.list_physical_devices("CPU")[0]
            tf.config.set_logical_device_configuration(
                cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(num_clones)])
        devices = [d.name for d in tf.config.list_logical_devices("CPU")]
    else:
        devices = [d.name for d in tf.config.list_logical_devices("GPU")]
        if len(devices) < num_clones:
            raise ConfigError(
                f"--num_clones={num_clones} needs {num_clones} local GPUs; this machine has "
                f"{len(devices)} (add --clone_on_cpu to split the CPU into {num_clones} "
                "devices)")
    if num_clones == 1:
        return tf.distribute.OneDeviceStrategy(devices[0])
    return tf.distribute.MirroredStrategy(devices[:num_clones])
