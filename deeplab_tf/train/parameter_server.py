"""Training with ``tf.distribute.ParameterServerStrategy``: the original's ``--num_ps_tasks``.

The original placed the variables round-robin on ``num_ps_tasks`` parameter servers and let
``num_replicas`` workers update them asynchronously. TF2's equivalent is
``ParameterServerStrategy`` with a ``ClusterCoordinator``: the cluster comes from
``TF_CONFIG`` (a ``chief``, ``worker`` tasks and ``ps`` tasks); the chief runs this loop and
the other tasks only serve (``serve_cluster_task``: deeplab-train on a worker or ps task
starts a ``tf.distribute.Server`` and waits, as the original's ps tasks did).

On the chief, ``ParameterServerTrainer`` is deeplab-train's ``Trainer`` with three changes:

* data: each worker reads its own pipeline (``ClusterCoordinator.create_per_worker_dataset``
  of the usual ``dataset_fn``);
* steps: a step (the same replica step as every other strategy: forward, loss, gradients
  with the multipliers, the optimizer's update of the variables on the parameter servers) is
  scheduled on whichever worker is free, up to one step per worker in flight, so the workers
  update asynchronously as in the original; the loop reads the steps' results in order (the
  progress line, the bad-label and non-finite checks);
* checkpoints: every scheduled step finishes first (``ClusterCoordinator.join``); a save
  asked for by time or SIGTERM is named by the steps actually done. Steps are never scheduled
  past a ``save_interval_steps`` boundary, so those checkpoints hold exactly that step.

Not available here: ``jit_compile``, ``sync_batch_norm`` (it all-reduces over synchronous
replicas) and the image summaries (the batches stay on the workers). Keras ``fit`` does not
run under ``ParameterServerStrategy`` in Keras 3 (it iterates the dataset without a
coordinator: "To use this dataset, you need to pass this dataset to
ClusterCoordinator.create_per_worker_dataset").
"""

from __future__ import annotations

import collections

import tensorflow as tf
from absl import logging

from deeplab_tf.errors import ConfigError
from deeplab_tf.train.loop import Trainer
from deeplab_tf.train.progress import step_values


class ParameterServerTrainer(Trainer):
    """``Trainer`` under a ``tf.distribute.ParameterServerStrategy`` (see the module
    docstring). Arguments as ``Trainer``; ``strategy`` must be that strategy."""

    def __init__(self, model_config, train_config, *, strategy, **kwargs):
        if not isinstance(strategy, tf.distribute.ParameterServerStrategy):
            raise TypeError("ParameterServerTrainer needs a ParameterServerStrategy. "
                            f"Received: {type(strategy).__name__}")
        for name in ("jit_compile", "sync_batch_norm"):
            config = model_config if name == "sync_batch_norm" else train_config
            if getattr(config, name):
                raise ConfigError(f"{name} is not available with parameter servers "
                                 f"(--num_ps_tasks). Received: {name}=True")
        super().__init__(model_config, train_config, strategy=strategy, **kwargs)
        if train_config.save_summaries_images:
            logging.warning("save_summaries_images: no image summaries with parameter servers "
                            "(the batches stay on the workers)")
        self.coordinator = tf.distribute.coordinator.ClusterCoordinator(strategy)
        self._workers = _worker_count(strategy)
        self._in_flight = collections.deque()
        self._scheduled = 0
        self._scheduled_step = tf.function(self._scheduled_step_fn)

    def _scheduled_step_fn(self, iterator, requests):
        return self._train_step_fn(next(iterator), requests)

    def _iterator(self, dataset_fn):
        self._scheduled = int(self.step.numpy())
        distributed = self.strategy.distribute_datasets_from_function(dataset_fn)
        return iter(self.coordinator.create_per_worker_dataset(distributed))

    def _next_step(self, iterator, requests, step, start):
        total, interval = self.config.training_number_of_steps, self.config.save_interval_steps
        # Up to one step per worker in flight, never past a save_interval_steps boundary.
        while (len(self._in_flight) < self._workers and self._scheduled < total
               and (not self._in_flight or self._scheduled % interval)):
            self._in_flight.append(
                self.coordinator.schedule(self._scheduled_step, args=(iterator, requests)))
            self._scheduled += 1
        try:
            outputs = self._in_flight.popleft().fetch()
        except (StopIteration, tf.errors.OutOfRangeError):
            raise self._data_exhausted(step, start) from None
        return step_values(outputs), None

    def _save(self, step: int) -> str:
        self.coordinator.join()
        return self.checkpoint.save(int(self.step.numpy()))


def _worker_count(strategy) -> int:
    # The strategy's resolver (its public ``cluster_resolver`` is None in TF 2.21).
    resolver = strategy.cluster_resolver or getattr(strategy, "_cluster_resolver", None)
    if resolver is None:
        return 1
    return max(1, len(resolver.cluster_spec().as_dict().get("worker", ())))


def cluster_task():
    """(task type, task id) of this process in a ``TF_CONFIG`` cluster that has a ``ps`` job;
    None outside such a cluster."""
    resolver = tf.distribute.cluster_resolver.TFConfigClusterResolver()
    if "ps" not in resolver.cluster_spec().as_dict():
        return None
    return resolver.task_type, resolver.task_id


def serve_cluster_task() -> bool:
    """On a ``worker`` or ``ps`` task of a parameter-server cluster: serves the chief's
    coordinator until the process is stopped (never returns). False on the chief (or outside
    such a cluster): the caller trains."""
    task = cluster_task()
    if task is None or task[0] not in ("worker", "ps"):
        return False
    resolver = tf.distribute.cluster_resolver.TFConfigClusterResolver()
    server = tf.distribute.Server(resolver.cluster_spec(), job_name=task[0],
                                  task_index=task[1], protocol=resolver.rpc_layer or "grpc",
                                  start=True)
    print(f"deeplab-train: {task[0]} task {task[1]} serving the chief's parameter-server "
          "training (stop this process when the chief is done)", flush=True)
    server.join()
    return True
