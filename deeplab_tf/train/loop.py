"""``Trainer``: the one custom training loop, for every ``tf.distribute`` strategy.

Keras 3's ``model.fit`` fails under ``MultiWorkerMirroredStrategy``, so every strategy runs
this loop: a ``tf.function`` step that calls ``strategy.run`` on each replica's batch and
applies the gradients with a Keras optimizer.

One step, on each replica::

    logits = model(images, training=True)            # with an image pyramid: every scale's
    total, count = softmax_cross_entropy(...)        # summed over the replica's pixels
    loss = total / all_reduce_sum(count)             # mean over the global batch's pixels
                                                     # (summed over the pyramid's logits)
         + L2 weight decay / num_replicas            # counted once in the global sum
    optimizer.apply_gradients(d loss x multipliers)  # gradients all-reduced (SUM)

so an update equals one device's on the global batch (the original averaged the loss per
clone, then the clones' gradients; the two agree when clones have equally many valid pixels).
With ``jit_compile`` the forward and backward pass is XLA-compiled (one replica per worker).

Around the step, on the host: a progress line every ``log_steps`` (step, loss, learning
rate, images/s, ETA) and TensorBoard summaries; a checkpoint (``model.ckpt-<step>``) every
``save_interval_steps`` steps and whenever ``save_interval_secs`` passed since the last one,
at the end and on SIGTERM (the save and stop requests are summed in the step, so every
worker saves and stops at the same step); an error naming the step when the loss of any
replica is not finite (all replicas stop there, nothing is saved, so the last good
checkpoint stays the newest; the batch's source is named when the data provides it) or
when a label value is neither a class nor the ignore label.

Quantization-aware training (``quantize_delay_step >= 0``): fake quantization on from that
step (``model_setup.update_quantization``; the step is traced again), float before. Under
several replicas each measures its batch's ranges and the range variables (aggregation MEAN)
average them, so all quantize alike (the original refused it with more than one clone).

Beside this module: ``checks`` (those errors), ``progress`` (``TrainResult``, the progress
line), ``preemption`` (SIGTERM), ``model_setup`` (dtype policy, optimizer, batch-norm decay,
quantization switch), ``summaries``; ``checkpoints.training`` saves and restores.

Example:

>>> trainer = Trainer(model_config, train_config, train_logdir="/tmp/run",
...                   dataset_fn=lambda context: my_dataset(context), ignore_label=255)
>>> result = trainer.run()
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import time
from typing import Callable, Optional

import keras
import tensorflow as tf
from absl import logging

from deeplab_tf import losses
from deeplab_tf.checkpoints.loading import load_checkpoint
from deeplab_tf.checkpoints.training import TrainCheckpoint
from deeplab_tf.config import ModelConfig, TrainConfig, check_quantization
from deeplab_tf.fileio import directory_lock
from deeplab_tf.inference import predict_labels
from deeplab_tf.model import build_model, logits_by_scale
from deeplab_tf.modeling.layers.drop_path import bind_drop_path
from deeplab_tf.modeling.scopes import gradient_multipliers
from deeplab_tf.schedules import LearningRate
from deeplab_tf.train.checks import TrainingError, batch_sources, check_step
from deeplab_tf.train.model_setup import (dtype_policy, make_optimizer, set_batch_norm_decay,
                                          training_precision, update_quantization)
from deeplab_tf.train.preemption import SigtermFlag
from deeplab_tf.train.progress import StepTimer, TrainResult, log_progress, step_values
from deeplab_tf.train.strategy import (create_strategy, is_chief,
                                       per_replica_batch_size, task_name)
from deeplab_tf.train.summaries import TrainSummaries


class Trainer:
    """Trains a DeepLab model under a ``tf.distribute`` strategy (see the module docstring).

    Args:
        model_config: ModelConfig.
        train_config: TrainConfig.
        train_logdir: str. Checkpoints and summaries; an existing checkpoint is resumed.
        dataset_fn: callable(tf.distribute.InputContext) -> tf.data.Dataset of
            (images float32 [b, h, w, 3] in [0, 255], labels int [b, h, w, 1]) batched at
            ``input_context.get_per_replica_batch_size(train_batch_size)``, repeated. An
            optional third element (a string tensor [b], or a dict of them, e.g. shard and
            record) names each example's source in errors. If it takes a ``start_step``
            keyword, it gets the step a resumed run starts from (so that it can continue the
            data where that run stopped; otherwise the data restarts, as the original's).
        ignore_label: int or None. Label value excluded from the loss.
        palette: uint8 [N, 3] or None. Colours of the label image summaries.
        strategy: tf.distribute.Strategy or None (then ``train_config.strategy``).
        model_fn: callable(ModelConfig) -> keras.Model; ``build_model`` by default.
        data_description: str. Names the data in errors (e.g. its file pattern).

    Raises:
        ValueError: batch size not divisible by the replicas, bad label_weights length.
    """

    def __init__(self, model_config: ModelConfig, train_config: TrainConfig, *,
                 train_logdir: str, dataset_fn: Callable, ignore_label: Optional[int],
                 palette=None, strategy: Optional[tf.distribute.Strategy] = None,
                 model_fn: Callable = build_model, data_description: str = "the training data"):
        check_quantization(model_config, train_config)
        # The one place --mixed_precision=auto is resolved (said in mixed_precision_reason).
        chosen, self.mixed_precision_reason = training_precision(train_config)
        train_config = dataclasses.replace(train_config, mixed_precision=chosen)
        logging.info("mixed_precision: %s (%s)", chosen, self.mixed_precision_reason)
        self.model_config = model_config
        self.config = train_config
        self.train_logdir = train_logdir
        self.dataset_fn = dataset_fn
        self.ignore_label = ignore_label
        self.data_description = data_description
        self.strategy = strategy or create_strategy(train_config.strategy, train_config.tpu)
        self.num_replicas = self.strategy.num_replicas_in_sync
        per_replica_batch_size(train_config.train_batch_size, self.strategy)
        losses.check_label_weights(train_config.label_weights, model_config.num_classes)
        self.chief = is_chief(self.strategy)

        with dtype_policy(train_config.mixed_precision), self.strategy.scope():
            if train_config.seed is not None:
                keras.utils.set_random_seed(train_config.seed)
            self.model = model_fn(model_config)
            if train_config.batch_norm_decay is not None:
                set_batch_norm_decay(self.model, train_config.batch_norm_decay)
            self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step",
                                    aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)
            # NAS drop path anneals over the run, read from the step as the learning rate.
            bind_drop_path(self.model, self.step, train_config.training_number_of_steps)
            self.learning_rate = LearningRate.from_config(train_config)
            self.optimizer = make_optimizer(
                train_config, lambda: self.learning_rate(self.step))  # read at every update
            self.optimizer.build(self.model.trainable_variables)
        self.multipliers = gradient_multipliers(
            self.model, train_config.last_layer_gradient_multiplier,
            train_config.last_layers_contain_logits_only)
        self.checkpoint = TrainCheckpoint(
            train_logdir, model=self.model, optimizer=self.optimizer, step=self.step,
            max_to_keep=train_config.max_to_keep, chief=self.chief,
            task=task_name(self.strategy))
        self.summaries = TrainSummaries(train_logdir, palette, enabled=self.chief)
        if (train_config.jit_compile and self.num_replicas > 1
                and not isinstance(self.strategy, tf.distribute.TPUStrategy)):
            raise ValueError(
                "jit_compile supports one replica per worker (or a TPU, which compiles "
                f"anyway). Received: jit_compile=True with {self.num_replicas} replicas")
        self._trace_step_functions()
        self._sigterm = SigtermFlag()
        self.steps_run = 0  # steps this process ran (0: the start has not finished)

    def _trace_step_functions(self):
        """(Re)creates the step's tf.functions: they trace on their next call (after
        quantization is switched on, the training pass is another graph)."""
        # A nested tf.function cannot hold the replicas' synchronisation points (e.g. batch
        # norm statistics), so only the XLA-compiled variant is one, on one replica only.
        self._forward_backward = self._forward_backward_fn
        if self.config.jit_compile and not isinstance(self.strategy, tf.distribute.TPUStrategy):
            self._forward_backward = tf.function(self._forward_backward_fn, jit_compile=True)
        self._train_step = tf.function(self._train_step_fn)
        self._predict_step = tf.function(self._predict_step_fn)

    # ----------------------------------------------------------------- the step
    def _forward_backward_fn(self, images, labels, step):
        """Loss terms and gradients on one replica (XLA-compiled with ``jit_compile``)."""
        variables = self.model.trainable_variables
        with tf.GradientTape() as tape:
            cross_entropy = losses.sum_over_scales(
                logits_by_scale(self.model, images, training=True), labels,
                num_classes=self.model_config.num_classes,
                ignore_label=self.ignore_label, label_weights=self.config.label_weights,
                upsample_logits=self.config.upsample_logits,
                top_k_percent_pixels=self.config.top_k_percent_pixels,
                hard_example_mining_step=self.config.hard_example_mining_step, step=step)
            regularization = (tf.add_n([tf.cast(l, tf.float32) for l in self.model.losses])
                              if self.model.losses else tf.constant(0.0))
            # Each replica adds its share: the weight decay counts once in the global sum.
            regularization = regularization / float(self.num_replicas)
            scaled = self.optimizer.scale_loss(cross_entropy + regularization)
        return tape.gradient(scaled, variables), cross_entropy, regularization

    def _replica_step(self, images, labels, requests):
        variables = self.model.trainable_variables
        grads, cross_entropy, regularization = self._forward_backward(
            images, labels, self.step.read_value())
        updates = []
        for grad, multiplier, var in zip(grads, self.multipliers, variables):
            if grad is None:
                continue
            if multiplier != 1.0:
                grad = grad * multiplier
            updates.append((grad, var))
        self.optimizer.apply_gradients(updates)
        invalid, largest = losses.invalid_labels(labels, self.model_config.num_classes,
                                                 self.ignore_label)
        # A NaN input can give a finite loss (oneDNN's fused ReLU maps NaN to 0) and still
        # NaN gradients: the input is checked with the loss (naming this replica), and the
        # weights the update left (read after it, so the gradient graph, and so its
        # rounding, stays as it is).
        finite = tf.logical_and(tf.math.is_finite(cross_entropy + regularization),
                                tf.reduce_all(tf.math.is_finite(tf.cast(images, tf.float32))))
        weights_finite = tf.math.is_finite(tf.linalg.global_norm(
            [tf.cast(var, tf.float32) for _, var in updates]))
        return {"cross_entropy": cross_entropy, "regularization": regularization,
                "invalid_labels": tf.cast(invalid, tf.float32),
                "largest_invalid_label": largest,
                "non_finite": 1.0 - tf.cast(finite, tf.float32),
                "weights_non_finite": 1.0 - tf.cast(weights_finite, tf.float32),
                "stop": requests[0], "save": requests[1]}

    def _train_step_fn(self, batch, requests):
        images, labels = batch[0], batch[1]
        outputs = self.strategy.run(self._replica_step, args=(images, labels, requests))
        reduced = {}
        # Summed over every replica of every worker, so that all workers take the same
        # decisions (stop on SIGTERM of any of them, save when any one's timer is due, stop
        # on bad labels or a non-finite loss of any replica).
        for key in ("cross_entropy", "regularization", "invalid_labels", "non_finite",
                    "weights_non_finite", "stop", "save"):
            reduced[key] = self.strategy.reduce(tf.distribute.ReduceOp.SUM, outputs[key],
                                                axis=None)
        # ReduceOp has no MAX: the largest invalid value of this worker's replicas.
        local = self.strategy.experimental_local_results
        reduced["largest_invalid_label"] = tf.reduce_max(tf.stack(
            local(outputs["largest_invalid_label"])))
        # Which of this worker's replicas had a non-finite loss (to name its batch).
        reduced["local_non_finite"] = tf.stack(local(outputs["non_finite"]))
        self.step.assign_add(1)
        return reduced

    def _predict_step_fn(self, images):
        return self.strategy.run(lambda x: predict_labels(self.model, x), args=(images,))

    # ----------------------------------------------------------------- the loop
    # How the loop gets data, runs a step and saves (``parameter_server`` replaces them).
    def _iterator(self, dataset_fn):
        if isinstance(self.strategy, tf.distribute.ParameterServerStrategy):
            raise ValueError("A ParameterServerStrategy trains with "
                             "deeplab_tf.train.parameter_server.ParameterServerTrainer")
        return iter(self.strategy.distribute_datasets_from_function(dataset_fn))

    def _next_step(self, iterator, requests, step: int, start: int):
        """(values of training step ``step + 1`` as NumPy / floats, its batch)."""
        try:
            batch = next(iterator)
        except (StopIteration, tf.errors.OutOfRangeError):
            raise self._data_exhausted(step, start) from None
        return step_values(self._train_step(batch, requests)), batch

    def _data_exhausted(self, step: int, start: int) -> TrainingError:
        return TrainingError(f"Step {step + 1}: {self.data_description} yielded no "
                             f"{'more ' if step > start else ''}examples")

    def _save(self, step: int) -> str:
        return self.checkpoint.save(step)

    def _initialize(self) -> Optional[str]:
        restored = self.checkpoint.restore_latest()
        if restored:
            logging.info("Resumed from %s (step %d).", restored, int(self.step.numpy()))
            return restored
        if self.config.tf_initial_checkpoint:
            report = load_checkpoint(
                self.model, self.config.tf_initial_checkpoint,
                initialize_last_layer=self.config.initialize_last_layer,
                last_layers_contain_logits_only=self.config.last_layers_contain_logits_only)
            logging.info("%s", report.summary())
        return None

    def _check(self, step: int, values: dict, batch=None):
        sources = None if batch is None else functools.partial(
            batch_sources, self.strategy, batch, values["local_non_finite"],
            self.data_description)
        check_step(step, values, num_classes=self.model_config.num_classes,
                   ignore_label=self.ignore_label, num_replicas=self.num_replicas,
                   newest_checkpoint=self.checkpoint.latest, sources=sources)

    def _image_summaries(self, step, batch):
        predictions = self._predict_step(batch[0])
        if not self.chief:
            return
        first = lambda value: self.strategy.experimental_local_results(value)[0]  # noqa: E731
        self.summaries.images(step, first(batch[0]).numpy(), first(batch[1]).numpy(),
                              first(predictions).numpy())

    def run(self) -> TrainResult:
        """Trains up to ``training_number_of_steps`` (resuming ``train_logdir``). The chief
        holds ``train_logdir/.lock`` meanwhile (local folders): a second run there fails at
        once naming the running process; a dead process's lock is taken over, said in a line.
        """
        if not self.chief or "://" in self.train_logdir:
            return self._run()
        with directory_lock(self.train_logdir, "training"):
            return self._run()

    def _run(self) -> TrainResult:
        config = self.config
        total_steps = config.training_number_of_steps
        latest = self._initialize()
        start = int(self.step.numpy())
        result = TrainResult(step=start, start_step=start, checkpoint=latest)
        if start >= total_steps:
            logging.info("Already trained %d of %d steps; nothing to do.", start, total_steps)
            return result
        dataset_fn = self.dataset_fn
        if "start_step" in inspect.signature(dataset_fn).parameters:
            dataset_fn = functools.partial(dataset_fn, start_step=start)
        iterator = self._iterator(dataset_fn)
        last_save = time.monotonic()
        logging.info("Training steps %d..%d, global batch %d over %d replica(s).", start + 1,
                     total_steps, config.train_batch_size, self.num_replicas)
        step, timer = start, StepTimer(config.train_batch_size, total_steps)
        with self._sigterm.installed():
            while step < total_steps:
                step_started = time.perf_counter()
                save_due = (config.save_interval_secs > 0 and
                            time.monotonic() - last_save >= config.save_interval_secs)
                requests = tf.constant([1.0 if self._sigterm.is_set() else 0.0,
                                        1.0 if save_due else 0.0])
                if update_quantization(self.model, config, step + 1):
                    self._trace_step_functions()
                values, batch = self._next_step(iterator, requests, step, start)
                step += 1
                self.steps_run += 1
                self._check(step, values, batch)
                result.step, result.loss = step, values["cross_entropy"] + values["regularization"]
                if step > start + 1:  # the first step includes tracing: not timed
                    timer.add(time.perf_counter() - step_started)
                if step % config.log_steps == 0 or step == total_steps:
                    images_per_second, eta = timer.take(step)
                    result.images_per_second = images_per_second or result.images_per_second
                    result.history.append((step, result.loss))
                    log_progress(self.summaries, step, total_steps, values,
                                 float(self.learning_rate(step - 1)), images_per_second, eta)
                    if config.save_summaries_images and batch is not None:
                        self._image_summaries(step, batch)
                preempted = values["stop"] > 0
                if (step % config.save_interval_steps == 0 or step == total_steps or preempted
                        or values["save"] > 0):
                    result.checkpoint = self._save(step)
                    last_save = time.monotonic()
                    logging.info("Saved checkpoint %s", result.checkpoint)
                if preempted:
                    logging.warning("Stopped at step %d on SIGTERM (checkpoint saved).", step)
                    result.preempted = True
                    break
        self.summaries.flush()
        return result

