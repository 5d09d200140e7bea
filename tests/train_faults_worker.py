"""Subprocess entry point of the training fault tests (tests/test_train_faults.py).

    python tests/train_faults_worker.py LOGDIR STEPS [--slow_save=MARKER] [--weights=OUT.npz]

trains the tiny model to STEPS in LOGDIR (resuming it), saving every 2 steps, on data that
continues where a resumed run stopped (``start_step``), with deterministic ops; prints
``step N`` after every step. ``--slow_save``: each checkpoint write touches MARKER, then
takes 2 s. ``--weights``: writes the final weights to OUT.npz.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

CROP, BATCH = 33, 2


def dataset_fn(input_context, start_step=0):
    """Batch k of the run is the same whatever run resumed before it."""
    rng = np.random.default_rng(0)
    images = rng.uniform(0, 255, (6, CROP, CROP, 3)).astype("float32")
    labels = (images[..., :1] > 128).astype("int32")
    dataset = tf.data.Dataset.from_tensor_slices((images, labels)).repeat().batch(BATCH)
    return dataset.skip(start_step)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("logdir")
    parser.add_argument("steps", type=int)
    parser.add_argument("--slow_save")
    parser.add_argument("--weights")
    args = parser.parse_args()
    tf.config.experimental.enable_op_determinism()
    from helpers import tiny_config
    from deeplab_tf.config import TrainConfig
    from deeplab_tf.train import loop

    if args.slow_save:
        from tensorflow.python.checkpoint import functional_saver

        real_save = functional_saver.MultiDeviceSaver.save

        def slow_save(self, *a, **k):
            open(args.slow_save, "w").close()
            time.sleep(2.0)
            return real_save(self, *a, **k)

        functional_saver.MultiDeviceSaver.save = slow_save

    class Printing(loop.Trainer):
        def _check(self, step, values, batch=None):
            super()._check(step, values, batch)
            print(f"step {step}", flush=True)

    train_config = TrainConfig(train_batch_size=BATCH, training_number_of_steps=args.steps,
                               base_learning_rate=0.01, log_steps=1000, save_interval_steps=2,
                               save_interval_secs=0, seed=5, strategy="one_device")
    trainer = Printing(tiny_config(num_classes=2), train_config, train_logdir=args.logdir,
                       dataset_fn=dataset_fn, ignore_label=255)
    result = trainer.run()
    print(f"done step {result.step} preempted {result.preempted}", flush=True)
    if args.weights:
        np.savez(args.weights, *[v.numpy() for v in trainer.model.weights])




def nan_in_one_replica():
    """MirroredStrategy over 2 logical CPUs; replica 1's batch of step 2 holds a NaN."""
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    from helpers import tiny_config
    from deeplab_tf.config import TrainConfig
    from deeplab_tf.train.checks import TrainingError
    from deeplab_tf.train.loop import Trainer

    def nan_dataset_fn(input_context):
        rng = np.random.default_rng(0)
        images = rng.uniform(0, 255, (8, CROP, CROP, 3)).astype("float32")
        images[6, 3, 3, 0] = np.nan  # per-replica batches of 2: step 2, replica 1
        labels = (images[..., :1] > 128).astype("int32")
        sources = [f"train-00001-of-00002.tfrecord:record {i}" for i in range(8)]
        return tf.data.Dataset.from_tensor_slices((images, labels, sources)).batch(2)

    config = TrainConfig(train_batch_size=4, training_number_of_steps=3, base_learning_rate=0.01,
                         log_steps=1, save_interval_steps=1, save_interval_secs=0, seed=5,
                         strategy="mirrored")
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    import tempfile
    trainer = Trainer(tiny_config(num_classes=2), config, train_logdir=tempfile.mkdtemp(),
                      dataset_fn=nan_dataset_fn, ignore_label=255, strategy=strategy)
    try:
        trainer.run()
    except TrainingError as error:
        print(f"error: {error}", flush=True)
        print(f"steps done {int(trainer.step.numpy())}", flush=True)
        return
    print("no error", flush=True)


if __name__ == "__main__":
    nan_in_one_replica() if sys.argv[1:] == ["nan"] else main()
