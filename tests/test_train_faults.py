"""Training under faults: failed checkpoint writes, SIGTERM in a write, NaN on one replica,
SIGKILL / restart cycles (issue 13, parts 5 and 6)."""

import errno
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf

from helpers import tiny_config
from deeplab_tf.checkpoints.loading import load_checkpoint
from deeplab_tf.config import TrainConfig
from deeplab_tf.model import build_model
from deeplab_tf.checkpoints.training import CheckpointWriteError
from deeplab_tf.train.loop import Trainer
from tensorflow.python.checkpoint import checkpoint_management, functional_saver

HERE = os.path.dirname(os.path.abspath(__file__))
WORKER = os.path.join(HERE, "train_faults_worker.py")
ENV = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")


def _dataset_fn(input_context):
    rng = np.random.default_rng(0)
    images = rng.uniform(0, 255, (4, 33, 33, 3)).astype("float32")
    labels = (images[..., :1] > 128).astype("int32")
    return tf.data.Dataset.from_tensor_slices((images, labels)).repeat().batch(2)


@pytest.mark.parametrize("where", ["data", "state"])
def test_failed_checkpoint_write_keeps_the_previous_one(tmp_path, monkeypatch, where):
    """ENOSPC in the middle of the data write, or in the state file's update."""
    logdir = str(tmp_path / "run")
    calls = []
    if where == "data":
        real = functional_saver.MultiDeviceSaver.save

        def failing(self, file_prefix, *args, **kwargs):
            calls.append(file_prefix)
            if len(calls) == 2:  # half of the second checkpoint's files, then a full disk
                real(self, file_prefix, *args, **kwargs)
                for name in os.listdir(logdir):
                    if name.startswith("model.ckpt-4") and ".data-" in name:
                        path = os.path.join(logdir, name)
                        os.truncate(path, os.path.getsize(path) // 2)
                raise OSError(errno.ENOSPC, "No space left on device", logdir)
            return real(self, file_prefix, *args, **kwargs)

        monkeypatch.setattr(functional_saver.MultiDeviceSaver, "save", failing)
    else:
        real = checkpoint_management.update_checkpoint_state_internal

        def failing(save_dir, model_checkpoint_path, *args, **kwargs):
            calls.append(model_checkpoint_path)
            if model_checkpoint_path.endswith("model.ckpt-4"):
                raise OSError(errno.ENOSPC, "No space left on device", save_dir)
            return real(save_dir, model_checkpoint_path, *args, **kwargs)

        monkeypatch.setattr(checkpoint_management, "update_checkpoint_state_internal", failing)
    config = TrainConfig(train_batch_size=2, training_number_of_steps=6, base_learning_rate=0.01,
                         log_steps=10, save_interval_steps=2, save_interval_secs=0, seed=1,
                         strategy="one_device")
    trainer = Trainer(tiny_config(num_classes=2), config, train_logdir=logdir,
                      dataset_fn=_dataset_fn, ignore_label=255)
    with pytest.raises(CheckpointWriteError) as info:
        trainer.run()
    message = str(info.value)
    assert os.path.join(logdir, "model.ckpt-4") in message and "No space left" in message
    assert "\n" not in message and message.endswith("model.ckpt-2")
    assert info.value.errno == errno.ENOSPC
    # The state file names the previous, complete checkpoint; no partial files are left.
    assert tf.train.latest_checkpoint(logdir) == os.path.join(logdir, "model.ckpt-2")
    assert not [n for n in os.listdir(logdir) if n.startswith("model.ckpt-4")]
    load_checkpoint(build_model(tiny_config(num_classes=2)), os.path.join(logdir, "model.ckpt-2"))


def _start(*args):
    return subprocess.Popen([sys.executable, WORKER, *args], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env=ENV)


def _read_until(process, predicate, timeout=300):
    lines, deadline = [], time.time() + timeout
    for line in process.stdout:
        lines.append(line)
        if predicate(line):
            return lines
        if time.time() > deadline:
            break
    process.kill()
    raise AssertionError("worker output:\n" + "".join(lines[-30:]))


def test_sigterm_during_a_checkpoint_write_leaves_a_restorable_checkpoint(tmp_path):
    logdir, marker = str(tmp_path / "run"), str(tmp_path / "writing")
    process = _start(logdir, "1000", f"--slow_save={marker}")
    try:
        _read_until(process, lambda line: line.startswith("step 1"))
        deadline = time.time() + 300
        while not os.path.exists(marker) and time.time() < deadline:
            time.sleep(0.05)
        process.send_signal(signal.SIGTERM)  # inside the write of model.ckpt-2
        output = process.communicate(timeout=300)[0]
    finally:
        process.kill()
    assert process.returncode == 0, output[-3000:]
    assert "preempted True" in output, output[-3000:]
    latest = tf.train.latest_checkpoint(logdir)
    assert latest is not None and int(latest.rsplit("-", 1)[1]) >= 2
    load_checkpoint(build_model(tiny_config(num_classes=2)), latest)


@pytest.mark.slow  # mirrored training in a subprocess (~2-3 min on 2 cores)
def test_nan_on_one_replica_stops_every_replica_at_that_step():
    result = subprocess.run([sys.executable, WORKER, "nan"], capture_output=True, text=True,
                            env=ENV, timeout=600)
    output = result.stdout
    assert "error: Step 2: the loss, the input or the updated weights are not finite" in output, output + result.stderr[-3000:]
    assert "on 1 of 2 replica(s); replica 1 of this worker" in output
    assert "train-00001-of-00002.tfrecord:record 6" in output
    assert "steps done 2" in output  # stopped at the step itself, on both replicas


@pytest.mark.slow
def test_sigkill_restart_cycles_end_with_the_uninterrupted_weights(tmp_path):
    steps = 14
    reference = str(tmp_path / "reference.npz")
    subprocess.run([sys.executable, WORKER, str(tmp_path / "straight"), str(steps),
                    f"--weights={reference}"], check=True, env=ENV, capture_output=True,
                   timeout=600)
    logdir = str(tmp_path / "killed")
    rng = np.random.default_rng(11)
    lost = []
    for cycle in range(5):
        process = _start(logdir, str(steps))
        try:
            lines = _read_until(process, lambda line: line.startswith("step "))
            time.sleep(rng.uniform(0.0, 1.5))  # a random moment: in a step or a save
            process.send_signal(signal.SIGKILL)
            lines += process.communicate(timeout=60)[0].splitlines()
        finally:
            process.kill()
        reached = max(int(l.split()[1]) for l in lines if l.startswith("step "))
        latest = tf.train.latest_checkpoint(logdir)
        saved = 0 if latest is None else int(latest.rsplit("-", 1)[1])
        assert reached - saved <= 2, (cycle, reached, saved)  # save_interval_steps=2
        lost.append(reached - saved)
    final = str(tmp_path / "final.npz")
    subprocess.run([sys.executable, WORKER, logdir, str(steps), f"--weights={final}"],
                   check=True, env=ENV, capture_output=True, timeout=600)
    want, got = np.load(reference), np.load(final)
    assert len(want.files) == len(got.files)
    for name in want.files:
        np.testing.assert_array_equal(got[name], want[name], err_msg=name)
    print(f"5 SIGKILL cycles, steps lost per cycle: {lost}")
