"""Subprocess entry points of the distributed training tests (they need a fresh TensorFlow).

    python tests/train_worker.py mirrored OUT.npz
        trains the same tiny model from the same weights for a step on one device and with
        MirroredStrategy over two logical CPU devices (same global batch, synchronised batch
        norm); saves both final weight lists.
    TF_CONFIG=... python tests/train_worker.py multi_worker OUT.npz LOGDIR
        one worker of a MultiWorkerMirroredStrategy run; saves its final weights.
    python tests/train_worker.py mirrored_qat OUT.npz
        quantization-aware training (--quantize_delay_step=0) for two steps on one device and
        over two mirrored replicas from the same weights; saves both losses and every range
        as each replica holds it.
"""

from __future__ import annotations

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

GLOBAL_BATCH = 4
CROP = 33


def dataset_fn(input_context):
    """The same 8 examples for every pipeline, batched per replica, repeated."""
    rng = np.random.default_rng(0)
    images = rng.uniform(0, 255, (8, CROP, CROP, 3)).astype("float32")
    labels = ((images[..., :1] > 128).astype("int32") + (images[..., 1:2] > 170).astype("int32"))
    labels[:, :4] = 255  # some ignored pixels
    labels[:2, :, :5] = 255  # an uneven count per replica
    batch = input_context.get_per_replica_batch_size(GLOBAL_BATCH)
    return tf.data.Dataset.from_tensor_slices((images, labels)).repeat().batch(batch)


def model_fn(config):
    from deeplab_tf.model import build_model

    model = build_model(config)
    model.get_layer("concat_projection_dropout").rate = 0.0  # deterministic for comparisons
    return model


def make_trainer(logdir, strategy, model_overrides=None, **train_overrides):
    from helpers import tiny_config

    from deeplab_tf.config import TrainConfig
    from deeplab_tf.train.loop import Trainer

    train_config = TrainConfig(**{**dict(
        train_batch_size=GLOBAL_BATCH, training_number_of_steps=1, base_learning_rate=0.01,
        momentum=0.0,
        log_steps=1, save_interval_steps=100, seed=3), **train_overrides})
    model_config = tiny_config(sync_batch_norm=True, weight_decay=1e-3,
                               **(model_overrides or {}))
    return Trainer(model_config, train_config, train_logdir=logdir, dataset_fn=dataset_fn,
                   ignore_label=255, strategy=strategy, model_fn=model_fn)


def weights(model):
    return [np.asarray(v.numpy()) for v in model.weights]


def mirrored(out_path):
    """One device and two mirrored replicas, from the same weights."""
    import tempfile

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    one = make_trainer(tempfile.mkdtemp(), tf.distribute.OneDeviceStrategy("/cpu:0"))
    two = make_trainer(tempfile.mkdtemp(), tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"]))
    assert two.num_replicas == 2, two.num_replicas
    try:  # the global batch must split evenly over the replicas
        make_trainer(tempfile.mkdtemp(), two.strategy, train_batch_size=3)
        raise AssertionError("train_batch_size=3 over 2 replicas was accepted")
    except ValueError as error:
        assert "divisible by the number of replicas (2)" in str(error), error
    initial = weights(one.model)
    two.model.set_weights(one.model.get_weights())
    losses = [trainer.run().loss for trainer in (one, two)]
    np.savez(out_path, loss=np.array(losses),
             **{f"init_{i}": w for i, w in enumerate(initial)},
             **{f"one_{i}": w for i, w in enumerate(weights(one.model))},
             **{f"two_{i}": w for i, w in enumerate(weights(two.model))})


def replica_values(variable):
    """A (possibly mirrored) Keras variable's value on each replica."""
    inner = getattr(variable, "_value", variable)
    return [np.asarray(v.numpy()) for v in getattr(inner, "values", (inner,))]


def mirrored_qat(out_path):
    """Quantization-aware training on one device and on two mirrored replicas."""
    import tempfile

    from deeplab_tf.modeling.layers.quantize import RangeQuantizer

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    qat = dict(model_overrides={"quantization": "per_channel"}, quantize_delay_step=0,
               training_number_of_steps=2)
    one = make_trainer(tempfile.mkdtemp(), tf.distribute.OneDeviceStrategy("/cpu:0"), **qat)
    two = make_trainer(tempfile.mkdtemp(), tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"]),
                       **qat)
    two.model.set_weights(one.model.get_weights())
    losses = [trainer.run().loss for trainer in (one, two)]
    ranges = {}
    for layer in two.model._flatten_layers():
        if isinstance(layer, RangeQuantizer):
            for name in ("min", "max"):
                values = replica_values(getattr(layer, name))
                ranges[f"{layer.scope}/{name}"] = np.stack(values)
    single = {f"{layer.scope}/{name}": np.asarray(getattr(layer, name).numpy())
              for layer in one.model._flatten_layers() if isinstance(layer, RangeQuantizer)
              for name in ("min", "max")}
    np.savez(out_path, loss=np.array(losses), **{f"two:{k}": v for k, v in ranges.items()},
             **{f"one:{k}": v for k, v in single.items()})


def multi_worker(out_path, logdir):
    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    trainer = make_trainer(logdir, strategy, training_number_of_steps=3, save_interval_steps=2)
    result = trainer.run()
    np.savez(out_path, loss=np.array([result.loss]), step=np.array([result.step]),
             **{f"w_{i}": w for i, w in enumerate(weights(trainer.model))})


if __name__ == "__main__":
    mode = sys.argv[1]
    if mode == "mirrored":
        mirrored(sys.argv[2])
    elif mode == "mirrored_qat":
        mirrored_qat(sys.argv[2])
    elif mode == "multi_worker":
        multi_worker(sys.argv[2], sys.argv[3])
    else:
        raise SystemExit(f"unknown mode {mode!r}")
