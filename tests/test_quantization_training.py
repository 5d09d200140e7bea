"""Quantization-aware training end to end (issue 23): a tiny model trained by deeplab-train
with --quantize_delay_step=0, exported by deeplab-export to an int8 TFLite model without
calibration data, whose LiteRT labels agree with the quantized evaluation graph; its Edge
TPU-ready export (operations against Coral's documented set); before the delay a training
step equals the float network's; the trainer and Keras ``fit`` switch at the delay; eval
builds the quantized graph from the checkpoint; edgetpu_compiler's report is read.

The binaries run in this process (cli_in_process); one module-scoped training serves all.
"""

import glob
import json
import os
import shutil
import stat

import keras
import numpy as np
import pytest
import tensorflow as tf

from cli_in_process import run_in_process
from deeplab_tf import inference
from deeplab_tf.checkpoints.strict import load_for_inference
from deeplab_tf.cli import eval as eval_binary
from deeplab_tf.cli import export as export_binary
from deeplab_tf.cli import train as train_binary
from deeplab_tf.config import EvalConfig, ExportConfig, ModelConfig, TrainConfig
from deeplab_tf.data import manifest
from deeplab_tf.export import edgetpu
from deeplab_tf.export.litert import LiteRTModel
from deeplab_tf.export.tflite import export_tflite
from deeplab_tf.model import DeepLab, build_model
from deeplab_tf.modeling.layers.conv_bn import ConvBN
from deeplab_tf.modeling.layers.original_layer import original_variable_map
from deeplab_tf.modeling.layers.normalization import Normalization
from deeplab_tf.modeling.layers.quantize import (RangeQuantizer, quantization_scope,
                                                 set_quantization_active)
from deeplab_tf.train.model_setup import update_quantization
from export_helpers import scenes, write_scene_tfrecords
from helpers import tiny_config

CROP = 33  # 2 * 16 + 1
MODEL_FLAGS = ["--model_variant=mobilenet_v2", "--depth_multiplier=0.25",
               "--decoder_output_stride=4", "--output_stride=16"]
# Coral's "TensorFlow models on the Edge TPU" operations (the older table and the newer
# one's additions), as TFLite builtin operator names: written out here, not imported.
EDGETPU_DOCUMENTED = {
    "LOGISTIC", "RELU", "RELU6", "RELU_N1_TO_1", "TANH", "ADD", "MAXIMUM", "MINIMUM", "MUL",
    "SUB", "CONV_2D", "DEPTHWISE_CONV_2D", "L2_NORMALIZATION", "RESHAPE", "SLICE",
    "SPACE_TO_DEPTH", "SPLIT", "AVERAGE_POOL_2D", "MAX_POOL_2D", "CONCATENATION",
    "FULLY_CONNECTED", "MEAN", "PAD", "RESIZE_BILINEAR", "RESIZE_NEAREST_NEIGHBOR", "SOFTMAX",
    "SQUEEZE", "STRIDED_SLICE", "EXPAND_DIMS", "PACK", "PRELU", "QUANTIZE", "REDUCE_MAX",
    "REDUCE_MIN", "UNIDIRECTIONAL_SEQUENCE_LSTM"}


def _flatbuffer(content):
    """(operator names, tensor type names, main graph) read with TF's flatbuffer schema."""
    from tensorflow.lite.python import schema_py_generated as schema_fb
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model_from_bytearray(bytearray(content))
    op_names = {v: k for k, v in vars(schema_fb.BuiltinOperator).items() if k.isupper()}
    type_names = {v: k for k, v in vars(schema_fb.TensorType).items() if k.isupper()}
    codes = [max(c.builtinCode, c.deprecatedBuiltinCode) for c in model.operatorCodes]
    graph = model.subgraphs[0]
    ops = {op_names[codes[op.opcodeIndex]] for op in graph.operators}
    return ops, {type_names[t.type] for t in graph.tensors}, graph


@pytest.fixture(scope="module")
def qat(tmp_path_factory):
    """deeplab-train --quantize_delay_step=0 on flat-colour scenes (a tiny model, 30 steps),
    and the quantized evaluation graph of its checkpoint."""
    root = tmp_path_factory.mktemp("qat")
    data = str(root / "data")
    rng = np.random.default_rng(0)
    write_scene_tfrecords(data, "train", *scenes(rng, 32, CROP))
    images, labels = scenes(rng, 6, CROP)
    write_scene_tfrecords(data, "val", images, labels, num_shards=1)
    manifest.write_manifest(data, {
        "dataset": "scenes", "num_classes": 3, "ignore_label": 255,
        "class_names": ["background", "red", "blue"],
        "splits": {"train": {"num_examples": 32, "num_shards": 2},
                   "val": {"num_examples": 6, "num_shards": 1}}})
    logdir = str(root / "train")
    result = run_in_process(train_binary.run, [
        "deeplab-train", f"--train_logdir={logdir}", "--dataset=", f"--dataset_dir={data}",
        f"--train_crop_size={CROP},{CROP}", "--train_batch_size=8", "--min_scale_factor=1",
        "--max_scale_factor=1", "--training_number_of_steps=30", "--optimizer=adam",
        "--adam_learning_rate=0.008", "--batch_norm_decay=0.8", "--save_interval_steps=30",
        "--log_steps=30", "--seed=0", "--quantize_delay_step=0", *MODEL_FLAGS])
    assert result.returncode == 0
    with open(os.path.join(logdir, "config.json")) as f:
        run = json.load(f)
    config = ModelConfig.from_dict(run["model"])
    assert config.quantization == "per_channel" and run["train"]["quantize_delay_step"] == 0
    model = build_model(config)
    load_for_inference(model, tf.train.latest_checkpoint(logdir), config)
    spec = inference.InferenceSpec.from_configs(config, EvalConfig(eval_crop_size=None))
    graph_labels = inference.predict(model, images, spec)[inference.LABELS].numpy()
    return {"root": root, "data": data, "logdir": logdir, "config": config, "model": model,
            "images": images, "labels": labels, "graph_labels": graph_labels}


def test_int8_export_without_calibration_agrees_with_the_quantized_graph(qat, capfd):
    accuracy = float((qat["graph_labels"] == qat["labels"]).mean())
    assert accuracy > 0.7 and len(np.unique(qat["graph_labels"])) == 3, accuracy  # trained
    export_dir = str(qat["root"] / "export")
    result = run_in_process(export_binary.run, [  # no --calibration_dataset_dir
        "deeplab-export", f"--checkpoint_path={qat['logdir']}", f"--export_dir={export_dir}",
        "--format=tflite", "--tflite_mode=int8", f"--crop_size={CROP},{CROP}"], capfd)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "Quantized evaluation graph (per_channel weight ranges)." in result.stdout
    path = os.path.join(export_dir, "deeplab_int8.tflite")
    with open(os.path.join(export_dir, "deeplab_int8.json")) as f:
        info = json.load(f)
    assert info["quantization"] == "per_channel"
    assert info["input"]["dtype"] == "uint8" and info["output"]["dtype"] == "int32"
    runner = LiteRTModel(path)
    assert runner.input_details["quantization"] == (1.0, 0)  # raw pixels
    _, types, _ = _flatbuffer(open(path, "rb").read())
    assert types <= {"UINT8", "INT8", "INT32"}, types  # full integer
    tflite_labels = np.stack([runner.predict_image(image) for image in qat["images"]])
    agreement = float((tflite_labels == qat["graph_labels"]).mean())
    print(f"LiteRT int8 vs quantized evaluation graph: {agreement:.4%} of pixels "
          f"(graph's pixel accuracy {accuracy:.2%})")
    assert agreement >= 0.99


@pytest.mark.slow
def test_edgetpu_ready_export_passes_the_op_set_check(qat, tmp_path):
    config = ExportConfig(format="tflite", crop_size=(CROP, CROP), tflite_mode="edgetpu",
                          tflite_output="logits", tflite_output_size="output_stride")
    result = export_tflite(qat["model"], qat["config"], config, str(tmp_path))
    content = open(result["path"], "rb").read()
    ops, types, graph = _flatbuffer(content)
    assert ops <= EDGETPU_DOCUMENTED, ops - EDGETPU_DOCUMENTED
    assert types <= {"UINT8", "INT8", "INT32"}, types
    for tensor in graph.tensors:  # sizes fixed at compile time
        assert tensor.shapeSignature is None or min(tensor.shapeSignature) > 0
    assert edgetpu.edgetpu_problems(content) == []
    runner = LiteRTModel(result["path"])
    assert runner.input_dtype == np.uint8 and runner.output_details["dtype"] == np.uint8
    stride = (CROP - 1) // 4 + 1  # the decoder's output stride: no final upsample
    assert tuple(runner.output_details["shape"]) == (1, stride, stride, 3)
    assert result["edgetpu_compiler"] is None  # not installable here (see the README)
    # Scores at the output stride: the host upsamples them, labels as the full model's.
    labels = np.stack([runner.predict_image(image) for image in qat["images"]])
    agreement = float((labels == qat["graph_labels"]).mean())
    print(f"Edge TPU model (scores at stride 4, upsampled on the host) vs quantized "
          f"evaluation graph: {agreement:.4%} of pixels; operations {sorted(ops)}")
    assert agreement >= 0.97


def _sgd_step(model):
    optimizer = keras.optimizers.SGD(0.05, momentum=0.9)

    @tf.function
    def step(images, labels):
        with tf.GradientTape() as tape:
            logits = model(images, training=True)
            loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels, logits))
            loss += tf.add_n(model.losses)
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        return loss

    return step


@pytest.mark.slow
def test_training_before_the_delay_is_the_float_training():
    """The network's training pass with quantization switched off (what the trainer runs
    before --quantize_delay_step) gives the float network's steps exactly; switched on, the
    next step differs."""
    models = {}
    for quantization in (None, "per_channel"):
        keras.utils.set_random_seed(7)  # same initial weights and dropout seeds
        models[quantization] = build_model(tiny_config(quantization=quantization))
    quantized, plain = models["per_channel"], models[None]
    set_quantization_active(quantized, False)
    rng = np.random.default_rng(0)
    images = rng.uniform(0, 255, (2, CROP, CROP, 3)).astype(np.float32)
    labels = rng.integers(0, 3, (2, 9, 9))
    steps = {name: _sgd_step(model) for name, model in (("q", quantized), ("f", plain))}
    for _ in range(2):
        assert float(steps["q"](images, labels)) == float(steps["f"](images, labels))
    ours, theirs = original_variable_map(quantized), original_variable_map(plain)
    for name, variable in theirs.items():
        np.testing.assert_array_equal(ours[name].numpy(), variable.numpy(), err_msg=name)
    assert ours["logits/semantic/act_quant/max"].numpy() != 6.0  # ranges tracked meanwhile
    set_quantization_active(quantized, True)
    steps["q"] = _sgd_step(quantized)
    assert float(steps["q"](images, labels)) != float(steps["f"](images, labels))


def test_trainer_switches_quantization_at_the_delay():
    with quantization_scope("per_tensor"):  # blocks of a quantization-aware network
        model = keras.Sequential([keras.Input((9, 9, 3)), Normalization(name="normalization"),
                                  ConvBN(4, 3, scope="c")])
    config = TrainConfig(quantize_delay_step=3)
    states = []
    for step in (1, 2, 3, 4):
        retrace = update_quantization(model, config, step)
        states.append((retrace, model.get_layer("normalization").quantization_active,
                       model.get_layer("c").act_quant.quantization_active))
    assert states == [(True, False, False), (False, False, False), (True, True, True),
                      (False, True, True)]
    assert not update_quantization(model, TrainConfig(), 1)  # float training: untouched
    with pytest.raises(ValueError, match="quantize_delay_step=0 trains the quantization-aware"):
        from deeplab_tf.config import check_quantization

        check_quantization(tiny_config(), TrainConfig(quantize_delay_step=0))
    with pytest.raises(ValueError, match="mixed_precision must be float32"):
        TrainConfig(quantize_delay_step=0, mixed_precision="bfloat16")


def test_edgetpu_compiler_report_is_read(tmp_path, monkeypatch):
    """Where edgetpu_compiler is on the PATH it runs and its op mapping is reported (a
    stand-in script prints the compiler's summary lines here)."""
    fake = tmp_path / "bin" / "edgetpu_compiler"
    fake.parent.mkdir()
    fake.write_text("#!/bin/sh\necho 'Edge TPU Compiler version 16.0.384591198'\n"
                    "echo 'Number of operations that will run on Edge TPU: 76'\n"
                    "echo 'Number of operations that will run on CPU: 2'\n")
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{fake.parent}{os.pathsep}{os.environ['PATH']}")
    model_path = tmp_path / "m.tflite"
    model_path.write_bytes(b"x")
    report = edgetpu.compile_edgetpu(str(model_path))
    assert report["returncode"] == 0 and report["tpu_operations"] == 76
    assert report["cpu_operations"] == 2 and report["compiler_version"] == "16.0.384591198"
    assert report["compiled_path"] == str(tmp_path / "m_edgetpu.tflite")


@pytest.mark.slow
def test_trainer_steps_before_the_delay_equal_the_float_steps(tmp_path):
    from deeplab_tf.train.loop import Trainer

    rng = np.random.default_rng(0)
    images = rng.uniform(0, 255, (8, CROP, CROP, 3)).astype(np.float32)
    labels = (images[..., :1] > 128).astype(np.int32)

    def dataset_fn(context):
        return tf.data.Dataset.from_tensor_slices((images, labels)).repeat().batch(4)

    def train(name, model_config, **fields):
        config = TrainConfig(train_batch_size=4, training_number_of_steps=3, log_steps=1,
                             base_learning_rate=0.05, save_interval_steps=1, seed=1,
                             strategy="one_device", **fields)
        trainer = Trainer(model_config, config, train_logdir=str(tmp_path / name),
                          dataset_fn=dataset_fn, ignore_label=255)
        return trainer, dict(trainer.run().history)

    _, float_losses = train("float", tiny_config())
    trainer, qat_losses = train("qat", tiny_config(quantization="per_channel"),
                                quantize_delay_step=3)
    assert qat_losses[1] == float_losses[1] and qat_losses[2] == float_losses[2]
    assert qat_losses[3] != float_losses[3]  # step 3 runs quantized
    q, f = build_model(tiny_config(quantization="per_channel")), build_model(tiny_config())
    tf.train.Checkpoint(model=q).restore(str(tmp_path / "qat" / "model.ckpt-2")).expect_partial()
    tf.train.Checkpoint(model=f).restore(str(tmp_path / "float" / "model.ckpt-2")).expect_partial()
    ours = original_variable_map(q)
    for name, variable in original_variable_map(f).items():
        np.testing.assert_array_equal(ours[name].numpy(), variable.numpy(), err_msg=name)
    quantizers = [layer for layer in trainer.model._flatten_layers()
                  if isinstance(layer, RangeQuantizer)]
    assert quantizers and all(layer.quantization_active for layer in quantizers)


@pytest.mark.slow
def test_eval_builds_the_quantized_graph_from_the_checkpoint(qat, capfd, tmp_path):
    """The checkpoint alone (copied without the run's config.json), the model flags (float)
    and no --quantize_delay_step: its ranges make deeplab-eval evaluate the quantized graph."""
    prefix = tf.train.latest_checkpoint(qat["logdir"])
    for path in glob.glob(prefix + ".*"):
        shutil.copy(path, tmp_path)
    result = run_in_process(eval_binary.run, [
        "deeplab-eval", f"--checkpoint_path={tmp_path / os.path.basename(prefix)}", "--dataset=",
        f"--dataset_dir={qat['data']}", "--eval_split=val", f"--eval_logdir={qat['root']}/e",
        "--max_number_of_evaluations=1", "--eval_crop_size=33,33", *MODEL_FLAGS], capfd)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "Model: from the model flags." in result.stdout
    assert "Quantized evaluation graph (per_channel weight ranges)." in result.stdout


@pytest.mark.slow
def test_keras_fit_switches_quantization_at_the_delay():
    from deeplab_tf.losses import SegmentationLoss

    keras.utils.set_random_seed(0)
    model = DeepLab(tiny_config(quantization="per_tensor"))
    model.compile(keras.optimizers.SGD(0.01), loss=SegmentationLoss(num_classes=3),
                  quantize_delay_step=2)
    rng = np.random.default_rng(0)
    images = rng.uniform(0, 255, (6, CROP, CROP, 3)).astype(np.float32)
    labels = (images[..., 0] > 128).astype(np.int32)
    seen = []

    class Record(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            seen.append(model.get_layer("logits.semantic").act_quant.quantization_active)

    model.fit(images, labels, batch_size=2, epochs=1, verbose=0, callbacks=[Record()])
    assert seen == [False, True, True]
