"""The training loop on one device: learning, checkpoints and resume, summaries, errors."""

import glob
import os
import time
import types

import numpy as np
import pytest
import tensorflow as tf

from helpers import tiny_config
from deeplab_tf.config import TrainConfig
from deeplab_tf.model import build_model
from deeplab_tf.train.checks import TrainingError
from deeplab_tf.train.loop import Trainer
from deeplab_tf.modeling.scopes import gradient_multipliers

CROP = 33
IGNORE = 255


def _examples(count=8, seed=0):
    """Images whose colour gives the class: red blocks 1, blue blocks 2, grey background 0."""
    rng = np.random.default_rng(seed)
    images = np.full((count, CROP, CROP, 3), 128.0, np.float32)
    labels = np.zeros((count, CROP, CROP, 1), np.int32)
    for i in range(count):
        for cls, colour in ((1, (220, 30, 30)), (2, (30, 30, 220))):
            y, x = rng.integers(0, CROP - 12, size=2)
            images[i, y:y + 12, x:x + 12] = colour
            labels[i, y:y + 12, x:x + 12] = cls
    images += rng.normal(0, 5, images.shape).astype(np.float32)
    labels[:, :, :2] = IGNORE
    return images, labels


def _dataset_fn(images, labels, batch=4):
    def dataset_fn(input_context):
        size = input_context.get_per_replica_batch_size(batch)
        return tf.data.Dataset.from_tensor_slices((images, labels)).repeat().batch(size)

    return dataset_fn


def _config(**fields):
    values = dict(train_batch_size=4, training_number_of_steps=8, base_learning_rate=0.05,
                  log_steps=2, save_interval_steps=4, seed=1,
                  strategy="one_device")
    values.update(fields)
    return TrainConfig(**values)


def _trainer(logdir, config=None, dataset_fn=None, model_config=None):
    dataset_fn = dataset_fn or _dataset_fn(*_examples())
    return Trainer(model_config or tiny_config(), config or _config(), train_logdir=str(logdir),
                   dataset_fn=dataset_fn, ignore_label=IGNORE)


def _event_tags(logdir):
    tags = set()
    for path in glob.glob(os.path.join(logdir, "events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(path):
            tags.update(value.tag for value in event.summary.value)
    return tags


def test_trains_saves_and_resumes(tmp_path):
    logdir = str(tmp_path / "run")
    trainer = _trainer(logdir, _config(save_summaries_images=True, optimizer="adam",
                                       adam_learning_rate=0.003))
    result = trainer.run()
    assert result.step == 8 and not result.preempted
    losses = [loss for _, loss in result.history]
    assert len(losses) == 4 and losses[-1] < losses[0], losses
    assert result.images_per_second > 0
    # The contract: the original's model.ckpt-<step> files and the `checkpoint` state file.
    assert tf.train.latest_checkpoint(logdir) == os.path.join(logdir, "model.ckpt-8")
    assert os.path.exists(os.path.join(logdir, "model.ckpt-4.index"))
    with open(os.path.join(logdir, "checkpoint")) as f:
        assert 'model_checkpoint_path: "model.ckpt-8"' in f.read()
    assert {"loss/total", "loss/cross_entropy", "loss/regularization", "learning_rate",
            "images_per_second", "samples/image", "samples/label",
            "samples/prediction"} <= _event_tags(logdir)
    # Loaders restore the model alone.
    model = build_model(tiny_config())
    tf.train.Checkpoint(model=model).restore(result.checkpoint).expect_partial()
    for mine, theirs in zip(model.weights, trainer.model.weights):
        np.testing.assert_array_equal(mine.numpy(), theirs.numpy())

    # A new trainer on the same logdir resumes model, optimizer and step.
    resumed = _trainer(logdir, _config(training_number_of_steps=10, optimizer="adam",
                                       adam_learning_rate=0.003))
    result = resumed.run()
    assert (result.start_step, result.step) == (8, 10)
    assert int(resumed.optimizer.iterations.numpy()) == 10
    assert tf.train.latest_checkpoint(logdir).endswith("/model.ckpt-10")
    # eval / export read the training checkpoint with the one loader.
    from deeplab_tf.checkpoints.loading import load_checkpoint
    model = build_model(tiny_config())
    load_checkpoint(model, os.path.join(logdir, "model.ckpt-10"))
    for mine, theirs in zip(model.weights, resumed.model.weights):
        np.testing.assert_array_equal(mine.numpy(), theirs.numpy())


def test_runs_saved_as_ckpt_n_still_resume(tmp_path):
    logdir = str(tmp_path / "run")
    old = _trainer(logdir, _config(training_number_of_steps=2))
    old.checkpoint.manager = tf.train.CheckpointManager(  # the earlier name
        old.checkpoint.checkpoint, logdir, max_to_keep=5, checkpoint_name="ckpt")
    old.run()
    assert tf.train.latest_checkpoint(logdir).endswith("/ckpt-2")
    resumed = _trainer(logdir, _config(training_number_of_steps=3))
    result = resumed.run()
    assert (result.start_step, result.step) == (2, 3)
    assert tf.train.latest_checkpoint(logdir).endswith("/model.ckpt-3")


def test_save_interval_secs_saves_by_time(tmp_path, monkeypatch):
    import deeplab_tf.train.loop as loop

    clock = iter(range(1000))  # each reading of the clock is 1 s later
    monkeypatch.setattr(loop, "time", types.SimpleNamespace(
        monotonic=lambda: float(next(clock)), perf_counter=time.perf_counter))
    logdir = str(tmp_path / "run")
    _trainer(logdir, _config(training_number_of_steps=5, save_interval_steps=1000,
                             save_interval_secs=2)).run()
    state = tf.train.get_checkpoint_state(logdir)
    # clock: 0 at the start, 1 before step 1, 2 before step 2 (save), 3 after it, ...
    assert [os.path.basename(p) for p in state.all_model_checkpoint_paths] == [
        "model.ckpt-2", "model.ckpt-4", "model.ckpt-5"]


def test_fine_tune_batch_norm_false_keeps_statistics_trains_gamma_beta(tmp_path):
    trainer = _trainer(tmp_path / "run", _config(training_number_of_steps=2),
                       model_config=tiny_config(fine_tune_batch_norm=False))
    names = {v.path: v for v in trainer.model.weights}
    before = {path: v.numpy().copy() for path, v in names.items()}
    trainable = {v.path for v in trainer.model.trainable_variables}
    trainer.run()
    gammas = [p for p in names if p.endswith("/gamma")]
    assert gammas and all(p in trainable for p in gammas)
    for path, variable in names.items():
        changed = not np.array_equal(variable.numpy(), before[path])
        if path.endswith(("/moving_mean", "/moving_variance")):
            assert not changed, path
    changed = [p for p in names if p.endswith(("/gamma", "/beta"))
               and not np.array_equal(names[p].numpy(), before[p])]
    assert len(changed) > len(gammas), changed  # most gammas and betas moved


def test_non_finite_loss_stops_without_overwriting_the_checkpoint(tmp_path):
    images, labels = _examples()
    poisoned = images.copy()
    poisoned[:] = np.nan

    def dataset_fn(input_context):
        good = tf.data.Dataset.from_tensor_slices((images, labels)).batch(4)  # steps 1-2
        bad = tf.data.Dataset.from_tensor_slices((poisoned, labels)).batch(4)
        return good.concatenate(bad.repeat())

    logdir = str(tmp_path / "run")
    trainer = _trainer(logdir, _config(save_interval_steps=2), dataset_fn=dataset_fn)
    # Step 3 itself, although oneDNN's fused convolution + ReLU (on by default on AVX-512
    # CPUs) maps NaN to 0 and so can keep step 3's loss finite: its input is checked too.
    with pytest.raises(TrainingError, match=r"Step 3: the loss, the input or the updated "
                                            r"weights are not finite .*on 1 of 1 replica"
                                            r".*model.ckpt-2"):
        trainer.run()
    assert tf.train.latest_checkpoint(logdir).endswith("/model.ckpt-2")
    assert not glob.glob(os.path.join(logdir, "model.ckpt-3*"))


def test_labels_out_of_range_are_an_error_naming_the_step(tmp_path):
    images, labels = _examples()
    labels[5, 3:6, 3:6] = 9  # reached at step 2 (examples 4-7)
    trainer = _trainer(tmp_path / "run", dataset_fn=_dataset_fn(images, labels))
    with pytest.raises(TrainingError, match=r"Step 2: 9 label values .*\[0, 3\).*largest is 9"):
        trainer.run()


def test_batch_must_divide_over_replicas(tmp_path):
    strategy = types.SimpleNamespace(num_replicas_in_sync=2)
    with pytest.raises(ValueError, match=r"divisible by the number of replicas \(2\).*=3"):
        Trainer(tiny_config(), _config(train_batch_size=3), train_logdir=str(tmp_path),
                dataset_fn=None, ignore_label=IGNORE, strategy=strategy)


def test_label_weights_need_one_per_class(tmp_path):
    with pytest.raises(ValueError, match="one weight per class"):
        Trainer(tiny_config(), _config(label_weights=(1.0, 2.0)), train_logdir=str(tmp_path),
                dataset_fn=None, ignore_label=IGNORE,
                strategy=tf.distribute.OneDeviceStrategy("/cpu:0"))


@pytest.mark.parametrize("logits_only", [False, True])
def test_gradient_multipliers_follow_the_original(logits_only):
    model = build_model(tiny_config())
    multipliers = dict(zip((v.path for v in model.trainable_variables),
                           gradient_multipliers(model, 10.0, logits_only)))
    assert multipliers["logits.semantic/conv/kernel"] == 10.0
    assert multipliers["logits.semantic/conv/bias"] == 20.0  # biases: twice
    head = 1.0 if logits_only else 10.0
    assert multipliers["aspp0/conv/kernel"] == head
    assert multipliers["decoder.decoder_conv0/pointwise/conv/kernel"] == head
    backbone = [m for path, m in multipliers.items() if path.startswith("MobilenetV2")]
    assert backbone and set(backbone) == {1.0}


# Relative tolerance of the first step's loss against float32: bfloat16 keeps 8 bits of
# mantissa (~0.4 % per rounding, accumulated over the network), float16 11 bits, XLA float32
# only reorders float32 sums.
FIRST_STEP_TOLERANCE = {("bfloat16", False): 3e-2, ("float16", False): 5e-3,
                        ("float32", True): 1e-4}


@pytest.mark.parametrize("mixed_precision, jit_compile", sorted(FIRST_STEP_TOLERANCE))
def test_mixed_precision_and_xla(tmp_path, mixed_precision, jit_compile):
    def first_step(name, **fields):
        trainer = _trainer(tmp_path / name, _config(training_number_of_steps=2, log_steps=1,
                                                    **fields))
        # No dropout: its random mask is drawn in the compute dtype, so it would differ.
        trainer.model.get_layer("concat_projection_dropout").rate = 0.0
        initial = [v.numpy() for v in trainer.model.weights]
        result = trainer.run()
        return trainer, initial, result

    _, reference_initial, reference = first_step("float32")
    trainer, initial, result = first_step(
        "other", mixed_precision=mixed_precision, jit_compile=jit_compile)
    assert result.step == 2 and np.isfinite(result.loss)
    for a, b in zip(initial, reference_initial):  # the same seed: the same starting point
        np.testing.assert_array_equal(a, b)
    # The loss of step 1 (before any update) is the same function of the same weights.
    want, got = reference.history[0][1], result.history[0][1]
    assert reference.history[0][0] == result.history[0][0] == 1
    tolerance = FIRST_STEP_TOLERANCE[(mixed_precision, jit_compile)]
    assert abs(got - want) <= tolerance * abs(want), (got, want, tolerance)
    assert all(v.dtype == "float32" for v in trainer.model.weights)
    if mixed_precision != "float32":
        assert trainer.model.get_layer("aspp0").compute_dtype == mixed_precision


def test_a_second_run_on_the_same_logdir_fails_at_once_and_a_stale_lock_is_taken(tmp_path, capsys):
    import json
    import socket
    import subprocess

    from deeplab_tf.fileio import LOCK_NAME, LockError

    logdir = tmp_path / "run"
    logdir.mkdir()
    holder = subprocess.Popen(["sleep", "60"])
    lock = {"pid": holder.pid, "host": socket.gethostname(), "command": "deeplab-train other",
            "started": "now", "what": "training"}
    (logdir / LOCK_NAME).write_text(json.dumps(lock))
    trainer = _trainer(logdir, _config(training_number_of_steps=1))
    try:
        with pytest.raises(LockError, match=str(holder.pid)):
            trainer.run()
        assert not glob.glob(str(logdir / "model.ckpt-*")), "nothing may be written"
    finally:
        holder.kill()
        holder.wait()
    result = trainer.run()  # the holder is dead: its lock is taken over, with a notice
    assert result.step == 1
    assert "lock" in capsys.readouterr().err.lower()
    assert not (logdir / LOCK_NAME).exists(), "the lock is released after the run"
