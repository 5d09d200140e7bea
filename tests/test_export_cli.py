"""deeplab-export end to end: both formats from a deeplab-train run and from an original TF1
checkpoint, and its errors (checkpoint/config mismatch, unwritable destination).

The SavedModel of the original checkpoint (and, in the slow set, its TFLite model) is
exported by the console script in a subprocess; the other runs call the same entry point in
this process (cli_in_process: no TensorFlow import per run)."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

import helpers
import train_data
from cli_in_process import run_in_process
from deeplab_tf.cli import export as export_binary
from deeplab_tf.cli import train as train_binary
from deeplab_tf.config import EvalConfig, ModelConfig
from deeplab_tf.evaluation import evaluator
from deeplab_tf.inference import predict_labels
from deeplab_tf.export.litert import LiteRTModel
from deeplab_tf.modeling.layers.original_layer import original_variable_map
from deeplab_tf.model import build_model
from export_helpers import scenes, write_scene_tfrecords
from test_inference import calibrated_model

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODEL_FLAGS = ["--model_variant=mobilenet_v2", "--depth_multiplier=0.25",
               "--decoder_output_stride=4", "--output_stride=16"]


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    """A deeplab-train run (a few steps; its entry point in this process, cli_in_process) and
    the same weights as an original TF1 checkpoint."""
    root = tmp_path_factory.mktemp("export_cli")
    data = train_data.write_shapes_dataset(root / "data", splits={"train": 4}, size=(40, 40))
    run_dir = str(root / "train")
    result = run_in_process(train_binary.run, [
        "deeplab-train", f"--train_logdir={run_dir}", "--dataset=", f"--dataset_dir={data}",
        "--train_crop_size=33,33", "--train_batch_size=2", "--training_number_of_steps=2",
        "--seed=1", *MODEL_FLAGS])
    assert result.returncode == 0
    with open(os.path.join(run_dir, "config.json")) as f:
        config = ModelConfig.from_dict(json.load(f)["model"])
    model = build_model(config)  # restored the way the checkpoint contract says
    tf.train.Checkpoint(model=model).restore(tf.train.latest_checkpoint(run_dir)).expect_partial()
    values = {name: var.numpy() for name, var in original_variable_map(model).items()}
    values["global_step"] = np.array(1000, np.int64)
    values["MobilenetV2/Conv/weights/Momentum"] = np.zeros((3, 3, 3, 8), np.float32)
    tf1 = helpers.write_tf1_checkpoint(str(root / "tf1" / "model.ckpt"), values)
    calibration = str(root / "calibration")
    write_scene_tfrecords(calibration, "train", *scenes(np.random.default_rng(0), 4, 33))
    return {"root": root, "model": model, "run_dir": run_dir, "tf1": tf1,
            "calibration": calibration, "num_classes": config.num_classes}


def test_load_for_inference_reads_checkpoints_with_an_optimizer(tmp_path):
    """A Checkpoint(model, optimizer, step) names trainable variables by the optimizer's path
    (optimizer/_trainable_variables/<i>): they are found through the object graph."""
    import keras

    from deeplab_tf.checkpoints.strict import load_for_inference

    config = helpers.tiny_config(num_classes=3)
    model = calibrated_model(config, seed=5)
    optimizer = keras.optimizers.SGD(0.1, momentum=0.9)
    optimizer.build(model.trainable_variables)
    checkpoint = tf.train.Checkpoint(model=model, optimizer=optimizer,
                                     step=tf.Variable(3, dtype=tf.int64))
    path = checkpoint.save(str(tmp_path / "ckpt"))
    keys = tf.train.load_checkpoint(path).get_variable_to_shape_map()
    assert any(key.startswith("optimizer/_trainable_variables/") for key in keys)
    other = build_model(config)
    report = load_for_inference(other, path, config)
    assert len(report.loaded) == len(original_variable_map(model))
    for name, var in original_variable_map(other).items():
        np.testing.assert_array_equal(var.numpy(), original_variable_map(model)[name].numpy())


def _run(*args):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=REPO)
    return subprocess.run([sys.executable, "-m", "deeplab_tf.cli.export", *args],
                          capture_output=True, text=True, cwd=REPO, env=env, timeout=300)


@pytest.fixture
def run_here(capfd):
    """deeplab-export's entry point in this process (cli_in_process: no TensorFlow import per
    run); test_saved_model_from_original_checkpoint runs the console script itself."""
    return lambda *args: run_in_process(export_binary.run, ["deeplab-export", *args], capfd)


def _images():
    rng = np.random.default_rng(11)
    return [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for h, w in [(33, 45), (41, 37)]]


def _recipe(checkpoints):
    """A recipe flagfile: model flags plus deeplab-eval's multi-scale + flip settings."""
    path = checkpoints["root"] / "recipe.flags"
    path.write_text("\n".join(MODEL_FLAGS + ["--eval_scales=0.75", "--eval_scales=1.25",
                                             "--add_flipped_images=true"]) + "\n")
    return f"--flagfile={path}"


def _check_saved_model(path, model, **eval_kwargs):
    loaded = tf.saved_model.load(path)
    eval_kwargs.setdefault("inference_precision", "float32")  # the export's default
    predict = evaluator.make_predict_fn(model, EvalConfig(**eval_kwargs), model.config)
    for image in _images():
        got = loaded.signatures["predict_images"](images=tf.constant(image[None]))
        np.testing.assert_array_equal(got["semantic_predictions"].numpy(),
                                      predict(image[None].astype(np.float32)).numpy())


def test_saved_model_from_training_run(checkpoints, run_here):
    export_dir = checkpoints["root"] / "exports_run"
    result = run_here(f"--checkpoint={checkpoints['run_dir']}", f"--export_dir={export_dir}")
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"Model: {checkpoints['run_dir']}" in result.stdout and "config.json." in result.stdout
    assert "from project checkpoint" in result.stdout and "ckpt-2" in result.stdout
    path = str(export_dir / "deeplab" / "1")
    assert f"Exported SavedModel version 1 to {path}" in result.stdout
    _check_saved_model(path, checkpoints["model"])
    with open(os.path.join(path, "assets.extra", "deeplab_export.json")) as f:
        record = json.load(f)
    assert record["checkpoint"].endswith("ckpt-2")
    # float32 by default whatever this CPU computes natively (deeplab-eval's default is auto).
    assert record["precision"] == "float32", record


def test_saved_model_from_original_checkpoint(checkpoints):
    export_dir = checkpoints["root"] / "exports_tf1"
    os.makedirs(export_dir / "deeplab" / "3")  # an existing version: the export becomes 4
    # The recipe's evaluation settings become the export's: it predicts what deeplab-eval
    # evaluates with that recipe.
    result = _run(f"--checkpoint={checkpoints['tf1']}", f"--export_dir={export_dir}",
                  _recipe(checkpoints))
    assert result.returncode == 0, result.stderr[-3000:]
    assert "from original checkpoint" in result.stdout
    assert "scales [0.75, 1.25], flipped" in result.stdout
    assert os.listdir(export_dir / "deeplab" / "3") == []
    _check_saved_model(str(export_dir / "deeplab" / "4"), checkpoints["model"],
                       eval_scales=(0.75, 1.25), add_flipped_images=True)


def test_tflite_from_original_checkpoint(checkpoints):
    export_dir = checkpoints["root"] / "tflite_tf1"
    result = _run(f"--checkpoint={checkpoints['tf1']}", f"--export_dir={export_dir}",
                  "--format=tflite", "--crop_size=33", "--crop_size=45", _recipe(checkpoints))
    assert result.returncode == 0, result.stderr[-3000:]
    assert "TFLite models are single-scale" in result.stderr
    path = export_dir / "deeplab_float32.tflite"
    assert f"Wrote {path} (" in result.stdout and "MB" in result.stdout
    runner = LiteRTModel(str(path))
    image = _images()[0][None].astype(np.float32)
    expected = predict_labels(checkpoints["model"], image).numpy()
    agreement = (runner.predict(image) == expected).mean()
    assert agreement > 0.99
    # Exporting again needs --overwrite.
    again = _run(f"--checkpoint={checkpoints['tf1']}", f"--export_dir={export_dir}",
                 "--format=tflite", "--crop_size=33", "--crop_size=45", *MODEL_FLAGS)
    assert again.returncode == 1 and "already exists (pass --overwrite" in again.stderr


def test_int8_tflite_from_training_run(checkpoints, run_here):
    export_dir = checkpoints["root"] / "tflite_run"
    result = run_here(f"--checkpoint={checkpoints['run_dir']}", f"--export_dir={export_dir}",
                      "--format=tflite", "--tflite_mode=int8", "--crop_size=33",
                      f"--calibration_dataset_dir={checkpoints['calibration']}",
                      "--calibration_steps=4", "--model_name=tiny")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "input images uint8 [1, 33, 33, 3]" in result.stdout
    runner = LiteRTModel(str(export_dir / "tiny_int8.tflite"))
    assert runner.input_dtype == np.uint8 and runner.input_details["quantization"] == (1.0, 0)


def test_checkpoint_config_mismatch_names_variables_and_shapes(checkpoints, run_here):
    export_dir = checkpoints["root"] / "mismatch"
    # No decoder in the flags, but the checkpoint has one.
    result = run_here(f"--checkpoint={checkpoints['tf1']}", f"--export_dir={export_dir}",
                     "--model_variant=mobilenet_v2", "--depth_multiplier=0.25")
    assert result.returncode == 1
    assert "does not match the model" in result.stderr
    assert "checkpoint variables are not in the model: decoder/" in result.stderr
    assert "decoder/decoder_conv0_depthwise/depthwise_weights [3, 3, 304, 1]" in result.stderr
    assert "Traceback" not in result.stderr
    # Another class count: both shapes are named.
    classes = checkpoints["num_classes"]
    result = run_here(f"--checkpoint={checkpoints['run_dir']}", f"--export_dir={export_dir}",
                     f"--num_classes={classes + 2}", *MODEL_FLAGS)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "logits/semantic/weights" in result.stderr
    assert f"[1, 1, 256, {classes}]" in result.stderr
    assert f"[1, 1, 256, {classes + 2}]" in result.stderr
    assert not os.path.exists(export_dir / "deeplab" / "1")


def test_unwritable_destination_fails_before_any_work(tmp_path, run_here):
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    # The checkpoint does not exist either: the destination is checked first.
    result = run_here(f"--checkpoint={tmp_path / 'missing'}", f"--export_dir={blocker / 'exports'}")
    assert result.returncode == 1
    assert "is not writable" in result.stderr and "Traceback" not in result.stderr
    result = run_here(f"--checkpoint={tmp_path / 'missing'}", f"--export_dir={tmp_path / 'out'}",
                     "--format=tflite", "--tflite_mode=int8")
    assert result.returncode == 1 and "needs --calibration_dataset_dir" in result.stderr
    result = run_here(f"--checkpoint={tmp_path / 'missing'}", f"--export_dir={tmp_path / 'out'}",
                     "--format=tflite", "--inference_scales=0.5")
    assert result.returncode == 1 and "SavedModel exports only" in result.stderr
