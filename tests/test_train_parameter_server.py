"""Parameter-server training (the original's --num_ps_tasks) with an in-process cluster: a
chief (this process's Trainer), two workers and one parameter server."""

import glob
import os
import socket

import numpy as np
import pytest
import tensorflow as tf

from helpers import tiny_config
from deeplab_tf.config import TrainConfig
from deeplab_tf.train.parameter_server import ParameterServerTrainer, serve_cluster_task

CROP = 33
IGNORE = 255


def _port():
    with socket.socket() as sock:
        sock.bind(("localhost", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def strategy():
    cluster = tf.train.ClusterSpec({"worker": [f"localhost:{_port()}" for _ in range(2)],
                                    "ps": [f"localhost:{_port()}"]})
    # In one process the servers share its inter-op threads: with fewer than workers + 1
    # (a 2-core machine), two workers' steps wait on each other for ever.
    config = tf.compat.v1.ConfigProto(inter_op_parallelism_threads=4)
    for job, count in (("worker", 2), ("ps", 1)):
        for index in range(count):
            tf.distribute.Server(cluster, job_name=job, task_index=index, protocol="grpc",
                                 config=config)
    resolver = tf.distribute.cluster_resolver.SimpleClusterResolver(cluster, rpc_layer="grpc")
    return tf.distribute.ParameterServerStrategy(resolver)


def _dataset_fn(input_context):
    rng = np.random.default_rng(input_context.input_pipeline_id)
    images = rng.uniform(0, 255, (8, CROP, CROP, 3)).astype(np.float32)
    labels = (images[..., :1] > 127).astype(np.int32)  # class 1 where the red is bright
    batch = input_context.get_per_replica_batch_size(4)
    return tf.data.Dataset.from_tensor_slices((images, labels)).repeat().batch(batch)


def _trainer(strategy, logdir, steps):
    config = TrainConfig(train_batch_size=4, training_number_of_steps=steps,
                         base_learning_rate=0.05, save_interval_steps=3, log_steps=1, seed=1,
                         strategy="parameter_server")
    return ParameterServerTrainer(tiny_config(num_classes=2), config, train_logdir=str(logdir),
                                  dataset_fn=_dataset_fn, ignore_label=IGNORE, strategy=strategy)


@pytest.mark.slow
def test_trains_on_parameter_servers_saves_and_resumes(strategy, tmp_path):
    trainer = _trainer(strategy, tmp_path, steps=5)
    assert all("/job:ps/" in v.value.device for v in trainer.model.weights)
    result = trainer.run()
    assert (result.start_step, result.step) == (0, 5)
    assert [step for step, _ in result.history] == [1, 2, 3, 4, 5]
    assert all(np.isfinite(loss) for _, loss in result.history)
    # Steps never run past a save_interval_steps boundary: model.ckpt-3 holds 3 updates.
    names = sorted(os.path.basename(p) for p in glob.glob(str(tmp_path / "model.ckpt-*.index")))
    assert names == ["model.ckpt-3.index", "model.ckpt-5.index"]
    # The step counts every update (an atomic add; Keras' own optimizer.iterations is not, so
    # concurrent workers may lose its increments, as they may race on the weights: the
    # original's asynchronous updates alike).
    assert int(trainer.step.numpy()) == 5
    step_3 = tf.train.load_checkpoint(str(tmp_path / "model.ckpt-3"))
    assert step_3.get_tensor("step/.ATTRIBUTES/VARIABLE_VALUE") == 3

    resumed = _trainer(strategy, tmp_path, steps=7).run()
    assert (resumed.start_step, resumed.step) == (5, 7)


def test_cluster_tasks_serve_and_the_chief_trains(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    assert serve_cluster_task() is False  # no cluster: train here
    monkeypatch.setenv("TF_CONFIG", '{"cluster": {"chief": ["localhost:1"], "worker": '
                       '["localhost:2"], "ps": ["localhost:3"]}, "task": {"type": "chief", '
                       '"index": 0}}')
    assert serve_cluster_task() is False  # the chief trains


def test_num_ps_tasks_flag_errors(monkeypatch, capsys):
    from absl import flags

    from deeplab_tf.cli import train as train_binary
    from deeplab_tf.cli._common import UserError
    from deeplab_tf.cli.flags import train as train_flags
    from deeplab_tf.cli.flags.parsing import flags_parser

    monkeypatch.delenv("TF_CONFIG", raising=False)
    flags.FLAGS.unparse_flags()
    try:
        flags_parser("deeplab-train")(["prog", "--num_ps_tasks=2"])
        assert train_flags.strategy() == "parameter_server"
        with pytest.raises(UserError, match="--num_ps_tasks=2 but TF_CONFIG's cluster has 0"):
            train_binary._serves_parameter_server_training()
        flags.FLAGS.unparse_flags()
        flags_parser("deeplab-train")(["prog", "--num_ps_tasks=2", "--strategy=mirrored"])
        with pytest.raises(ValueError, match="cannot be combined with --strategy=mirrored"):
            train_flags.strategy()
    finally:
        flags.FLAGS.unparse_flags()


@pytest.mark.slow
def test_deeplab_train_num_ps_tasks_over_processes(tmp_path):
    """The original's --num_ps_tasks through deeplab-train: the same command on a chief, two
    workers and a parameter server (TF_CONFIG); the workers and the ps serve, the chief
    trains and writes checkpoints that load for inference."""
    import json
    import subprocess
    import sys

    from miniature import make_voc
    from deeplab_tf.checkpoints.strict import load_for_inference
    from deeplab_tf.config import ModelConfig
    from deeplab_tf.model import build_model

    binaries = os.path.dirname(sys.executable)
    voc = make_voc(str(tmp_path / "raw"), num_train=3, num_val=2, size=(40, 50), seed=3)
    subprocess.run([os.path.join(binaries, "deeplab-build-voc2012"), f"--voc_root={voc['root']}",
                    f"--output_dir={tmp_path / 'tfrecord'}"], check=True, capture_output=True)
    cluster = {"chief": [f"localhost:{_port()}"], "ps": [f"localhost:{_port()}"],
               "worker": [f"localhost:{_port()}", f"localhost:{_port()}"]}
    args = [os.path.join(binaries, "deeplab-train"), f"--train_logdir={tmp_path / 'run'}",
            f"--dataset_dir={tmp_path / 'tfrecord'}", "--train_split=train",
            "--model_variant=mobilenet_v2", "--depth_multiplier=0.25", "--train_crop_size=33,33",
            "--train_batch_size=2", "--training_number_of_steps=4", "--num_ps_tasks=1",
            "--save_interval_steps=2"]

    def env(kind, index):
        task = {"cluster": cluster, "task": {"type": kind, "index": index}}
        return dict(os.environ, TF_CONFIG=json.dumps(task), TF_CPP_MIN_LOG_LEVEL="2")

    servers = [subprocess.Popen(args, env=env(kind, index), stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)
               for kind, index in (("worker", 0), ("worker", 1), ("ps", 0))]
    try:
        chief = subprocess.run(args, env=env("chief", 0), capture_output=True, text=True,
                               timeout=600)
    finally:
        outputs = []
        for server in servers:
            server.kill()
            outputs.append(server.communicate()[0])
    assert chief.returncode == 0, chief.stderr[-3000:]
    assert "Training reached step 4/4" in chief.stdout
    assert all("serving the chief's parameter-server training" in out for out in outputs)
    checkpoint = str(tmp_path / "run" / "model.ckpt-4")
    assert os.path.exists(checkpoint + ".index")
    assert os.path.exists(str(tmp_path / "run" / "model.ckpt-2.index"))
    config = ModelConfig(model_variant="mobilenet_v2", depth_multiplier=0.25, num_classes=21)
    report = load_for_inference(build_model(config), checkpoint, config)
    assert report.loaded and not report.missing_in_checkpoint


def test_options_that_need_synchronous_replicas_are_refused(strategy, tmp_path):
    from deeplab_tf.errors import ConfigError

    for model_config, config in [(tiny_config(sync_batch_norm=True), TrainConfig()),
                                 (tiny_config(), TrainConfig(jit_compile=True))]:
        with pytest.raises(ConfigError, match="not available with parameter servers"):
            ParameterServerTrainer(model_config, config, train_logdir=str(tmp_path),
                                   dataset_fn=_dataset_fn, ignore_label=IGNORE,
                                   strategy=strategy)
    with pytest.raises(TypeError, match="needs a ParameterServerStrategy"):
        ParameterServerTrainer(tiny_config(), TrainConfig(), train_logdir=str(tmp_path),
                               dataset_fn=_dataset_fn, ignore_label=IGNORE,
                               strategy=tf.distribute.OneDeviceStrategy("/cpu:0"))
