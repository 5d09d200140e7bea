"""deeplab-export --format=openvino / onnx and deeplab-eval --inference_backend=openvino, run as
console scripts on a tiny checkpoint and a miniature TFRecord val split.

The checkpoint is a tiny model trained on generated scenes (tests/export_helpers.py), so
that agreement measures the runtime, not the near-ties of an untrained network. Each export
is loaded by its own runtime (OpenVINO, ONNX Runtime) and checked against the issue's
contract: input 0 uint8 [1, H, W, 3] (H, W dynamic unless --crop_size fixes them), output 0
int32 labels [1, H, W] at the input size (output 1 float32 probabilities with
--export_probabilities); its labels must equal the Keras model's argmax on >= 99.9 % of the
pixels (printed with ``pytest -s``), compiled at float32 precision (``F32_CONFIG``: on a CPU
with native bfloat16, OpenVINO's default precision is bfloat16; that agreement is printed too). deeplab-eval with the OpenVINO backend must give the tf
backend's mIoU (within 1e-4). ``--eval_crop_size=65,65`` everywhere keeps the padding small.
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from export_helpers import (scene_config, scenes, train_scene_model,
                            write_scene_tfrecords)

# Trains a scene model, then runs five console scripts that each convert it: minutes.
pytestmark = pytest.mark.slow

BIN = os.path.dirname(sys.executable)
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CROP = ["--eval_crop_size=65,65"]
SIZES = [(33, 33), (37, 53), (65, 49)]
PAD_TO = 65


def _run(binary, *args):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    return subprocess.run([os.path.join(BIN, binary), *args], capture_output=True, text=True,
                          cwd=REPO, env=env, timeout=600)


def _model_flags(config):
    return [f"--model_variant={config.model_variant}",
            f"--depth_multiplier={config.depth_multiplier}",
            f"--output_stride={config.output_stride}", f"--num_classes={config.num_classes}",
            "--decoder_output_stride=" + ",".join(str(s) for s in config.decoder_output_stride),
            f"--decoder_use_separable_conv={str(config.decoder_use_separable_conv).lower()}"]


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    import tensorflow as tf

    from deeplab_tf import inference
    from deeplab_tf.data import manifest
    from deeplab_tf.data.preprocess import padded_size
    from deeplab_tf.modeling.backbones import mean_pixel

    root = tmp_path_factory.mktemp("runtimes_cli")
    config = scene_config()
    model = train_scene_model(steps=150)
    checkpoint = tf.train.Checkpoint(model=model).write(str(root / "ckpt" / "model"))
    rng = np.random.default_rng(5)
    cases = []
    for height, width in SIZES:
        images, truth = scenes(rng, 1, height, width)
        image = np.round(images[0]).astype(np.uint8)
        # The Keras model as trained (batch norm not folded) on the image padded with the
        # mean pixel as deeplab-eval pads it (--eval_crop_size), the padding cropped off.
        padded = inference.pad_images(image[None].astype(np.float32),
                                      max(PAD_TO, padded_size(height, 16)),
                                      max(PAD_TO, padded_size(width, 16)),
                                      mean_pixel(config.model_variant))
        labels = inference.predict_labels(model, padded).numpy()[0, :height, :width]
        cases.append((image, truth[0], labels))
    data_dir = str(root / "data")
    write_scene_tfrecords(data_dir, "val", [c[0] for c in cases], [c[1] for c in cases],
                          num_shards=1)
    manifest.write_manifest(data_dir, {
        "format_version": 1, "dataset": "scenes", "num_classes": 3, "ignore_label": 255,
        "class_names": ["background", "red", "blue"],
        "splits": {"val": {"num_examples": len(cases)}}})
    accuracy = np.mean([(labels == truth).mean() for _, truth, labels in cases])
    assert accuracy > 0.8, accuracy  # the model segments the scenes
    return {"root": root, "config": config, "checkpoint": checkpoint, "cases": cases,
            "data_dir": data_dir}


def _export(workspace, name, *args):
    export_dir = workspace["root"] / name
    result = _run("deeplab-export", f"--checkpoint_path={workspace['checkpoint']}",
                  f"--export_dir={export_dir}", *args, *CROP,
                  *_model_flags(workspace["config"]))
    assert result.returncode == 0, result.stderr[-3000:]
    return export_dir, result


def _checked_labels(image, labels, probabilities):
    """The labels [H, W] of one image's outputs, after checking both: int32 labels at the
    image's size, float32 probabilities over the 3 classes summing to 1, argmax == labels."""
    assert labels.dtype == np.int32 and labels.shape == (1,) + image.shape[:2]
    assert probabilities.dtype == np.float32
    assert probabilities.shape == (1,) + image.shape[:2] + (3,)
    np.testing.assert_allclose(probabilities.sum(-1), 1.0, atol=1e-4)
    np.testing.assert_array_equal(probabilities.argmax(-1), labels)
    return labels[0]


def _agreements(predict, cases):
    """Per-image fraction of pixels where ``predict(image)`` equals the Keras labels."""
    return [float((predict(image) == labels).mean()) for image, _, labels in cases]


def test_openvino_export_dynamic_shape_with_probabilities(workspace):
    import openvino as ov

    from deeplab_tf.export.openvino import F32_CONFIG

    export_dir, result = _export(workspace, "ov", "--format=openvino", "--export_probabilities")
    assert sorted(os.listdir(export_dir)) == ["deeplab.bin", "deeplab.xml"]
    assert f"Wrote openvino model {export_dir / 'deeplab.xml'}" in result.stdout
    core = ov.Core()
    compiled = core.compile_model(str(export_dir / "deeplab.xml"), "CPU", F32_CONFIG)
    (port,) = compiled.inputs
    shape = port.get_partial_shape()
    assert port.get_element_type() == ov.Type.u8 and shape.rank.get_length() == 4
    assert [shape[0].get_length(), shape[3].get_length()] == [1, 3]
    assert shape[1].is_dynamic and shape[2].is_dynamic
    assert len(compiled.outputs) == 2

    def predict(image):
        outputs = compiled(image[None])
        labels, probabilities = outputs[compiled.outputs[0]], outputs[compiled.outputs[1]]
        return _checked_labels(image, labels, probabilities)

    agreements = _agreements(predict, workspace["cases"])
    default = core.compile_model(str(export_dir / "deeplab.xml"), "CPU")  # the CPU's default
    precision = default.get_property("INFERENCE_PRECISION_HINT")
    default_agreements = _agreements(lambda image: default(image[None])[default.outputs[0]][0],
                                     workspace["cases"])
    print(f"deeplab-export --format=openvino: argmax agreement with Keras "
          f"{100 * min(agreements):.3f} % (worst of {len(agreements)} sizes; compiled with "
          f"{F32_CONFIG}); with this CPU's default precision {precision}: "
          f"{100 * min(default_agreements):.3f} %")
    assert min(agreements) >= 0.999


def test_openvino_export_fixed_crop_size(workspace):
    import openvino as ov

    from deeplab_tf.export.openvino import F32_CONFIG

    image, _, labels = workspace["cases"][1]
    height, width = image.shape[:2]
    export_dir, _ = _export(workspace, "ov_fixed", "--format=openvino",
                            f"--crop_size={height},{width}", "--model_name=fixed")
    assert sorted(os.listdir(export_dir)) == ["fixed.bin", "fixed.xml"]
    compiled = ov.Core().compile_model(str(export_dir / "fixed.xml"), "CPU", F32_CONFIG)
    assert list(compiled.inputs[0].get_shape()) == [1, height, width, 3]
    assert compiled.inputs[0].get_element_type() == ov.Type.u8
    (output,) = compiled.outputs
    assert list(output.get_shape()) == [1, height, width]
    got = compiled(image[None])[output]
    assert got.dtype == np.int32
    agreement = float((got[0] == labels).mean())
    print(f"deeplab-export --format=openvino --crop_size={height},{width}: argmax agreement "
          f"with Keras {100 * agreement:.3f} %")
    assert agreement >= 0.999


def test_onnx_export(workspace):
    onnxruntime = pytest.importorskip("onnxruntime")
    export_dir = workspace["root"] / "onnx"
    result = _run("deeplab-export", f"--checkpoint_path={workspace['checkpoint']}",
                  f"--export_dir={export_dir}", "--format=onnx", "--export_probabilities",
                  *CROP, *_model_flags(workspace["config"]))
    if result.returncode != 0 and "tf2onnx" in result.stderr:
        pytest.skip(f"tf2onnx does not work with this TensorFlow: "
                    f"{result.stderr.strip().splitlines()[-1]}")
    assert result.returncode == 0, result.stderr[-3000:]
    assert os.listdir(export_dir) == ["deeplab.onnx"]
    session = onnxruntime.InferenceSession(str(export_dir / "deeplab.onnx"),
                                           providers=["CPUExecutionProvider"])
    (source,) = session.get_inputs()
    assert source.type == "tensor(uint8)" and source.shape[0] == 1 and source.shape[3] == 3
    assert all(not isinstance(d, int) for d in source.shape[1:3])  # dynamic height, width
    output, scores = session.get_outputs()  # --export_probabilities: labels, probabilities
    assert output.type == "tensor(int32)" and scores.type == "tensor(float)"

    def predict(image):
        labels, probabilities = session.run(None, {source.name: image[None]})
        return _checked_labels(image, labels, probabilities)

    agreements = _agreements(predict, workspace["cases"])
    print(f"deeplab-export --format=onnx: argmax agreement with Keras "
          f"{100 * min(agreements):.3f} % (worst of {len(agreements)} sizes)")
    assert min(agreements) >= 0.999


def test_eval_openvino_backend_gives_the_tf_backends_miou(workspace):
    results = {}
    for backend in ("tf", "openvino"):
        logdir = workspace["root"] / f"eval_{backend}"
        result = _run("deeplab-eval", f"--checkpoint_path={workspace['checkpoint']}",
                      f"--eval_logdir={logdir}", "--dataset=",
                      f"--dataset_dir={workspace['data_dir']}", "--eval_split=val",
                      "--max_number_of_evaluations=1", f"--inference_backend={backend}",
                      *CROP, *_model_flags(workspace["config"]))
        assert result.returncode == 0, result.stderr[-3000:]
        with open(logdir / "results.json") as f:
            results[backend] = json.load(f)
    tf_run, ov_run = results["tf"], results["openvino"]
    assert tf_run["num_images"] == ov_run["num_images"] == len(SIZES)
    # The tf backend's confusion matrix is the Keras labels' (computed here with NumPy).
    expected = np.zeros((3, 3), np.int64)
    for _, truth, labels in workspace["cases"]:
        np.add.at(expected, (truth.ravel(), labels.ravel()), 1)
    assert np.abs(np.asarray(tf_run["confusion_matrix"]) - expected).sum() <= 0.001 * expected.sum()
    differing = np.abs(np.asarray(ov_run["confusion_matrix"]) -
                       np.asarray(tf_run["confusion_matrix"])).sum() / 2
    print(f"deeplab-eval mIoU: tf {tf_run['miou']:.6f}, openvino {ov_run['miou']:.6f} "
          f"({differing:.0f} of {expected.sum()} pixels classified differently)")
    assert ov_run["miou"] == pytest.approx(tf_run["miou"], abs=1e-4)
    assert tf_run["miou"] > 0.5
