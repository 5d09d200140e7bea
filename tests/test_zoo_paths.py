"""Every path for the Dense Prediction Cell and a NAS family, at tiny sizes.

Per family, one run of the binaries on a miniature dataset (module-scoped; their entry
points in this process, cli_in_process): deeplab-train (the custom loop; NAS with drop path
and ``--prediction_with_upsampled_logits=false``), deeplab-eval, deeplab-vis and
deeplab-export to a SavedModel, the frozen graph, TFLite float32 and int8, OpenVINO and ONNX;
each export's labels are compared with the Keras model restored from the run's checkpoint
through the one inference path. Keras ``fit`` trains the same configurations.

Families: ``dpc`` (MobileNetV2 x0.25 with the original's Cityscapes cell read from a JSON
file, output stride 8 so its rates double, decoder) and ``nas`` (nas_hnasnet with 4 base
filters, ASPP, decoder). Minutes: the slow set.
"""

import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

import train_data
from cli_in_process import run_in_process
from deeplab_tf import DeepLab, build_model, inference
from deeplab_tf.cli import eval as eval_binary
from deeplab_tf.cli import export as export_binary
from deeplab_tf.cli import train as train_binary
from deeplab_tf.cli import vis as vis_binary
from deeplab_tf.config import ExportConfig, ModelConfig
from deeplab_tf.config.dense_prediction_cell import CITYSCAPES_CELL, parse_cell
from deeplab_tf.losses import SegmentationLoss
from deeplab_tf.modeling.layers.drop_path import DropPath
from deeplab_tf.modeling.layers.original_layer import original_variable_map

pytestmark = pytest.mark.slow

CROP = 41
FAMILIES = {
    "dpc": ["--model_variant=mobilenet_v2", "--depth_multiplier=0.25", "--output_stride=8",
            "--decoder_output_stride=4"],
    "nas": ["--model_variant=nas_hnasnet", "--nas_stem_output_num_conv_filters=4",
            "--output_stride=8", "--atrous_rates=2", "--decoder_output_stride=4",
            "--prediction_with_upsampled_logits=false"],
}
TRAIN_ONLY = {"dpc": [], "nas": ["--drop_path_keep_prob=0.8"]}


def _images():
    rng = np.random.default_rng(7)
    return [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for h, w in [(33, 40), (41, 41)]]


@pytest.fixture(scope="module", params=sorted(FAMILIES))
def run(request, tmp_path_factory):
    family = request.param
    root = tmp_path_factory.mktemp(f"zoo_{family}")
    flags_ = list(FAMILIES[family])
    if family == "dpc":
        cell = root / "cell.json"
        cell.write_text(json.dumps(list(CITYSCAPES_CELL)))
        flags_.append(f"--dense_prediction_cell_json={cell}")
    data = train_data.write_shapes_dataset(root / "data", splits={"train": 4, "val": 2},
                                           size=(CROP, CROP))
    run_dir = str(root / "train")
    result = run_in_process(train_binary.run, [
        "deeplab-train", f"--train_logdir={run_dir}", "--dataset=", f"--dataset_dir={data}",
        "--train_crop_size=33,33", "--train_batch_size=2", "--training_number_of_steps=2",
        "--seed=1", *flags_, *TRAIN_ONLY[family]])
    assert result.returncode == 0
    with open(os.path.join(run_dir, "config.json")) as f:
        config = ModelConfig.from_dict(json.load(f)["model"])
    model = build_model(config)
    tf.train.Checkpoint(model=model).restore(tf.train.latest_checkpoint(run_dir)).expect_partial()
    return {"family": family, "root": root, "data": data, "run_dir": run_dir, "config": config,
            "model": model, "flags": flags_}


def test_the_run_trained_the_family(run):
    config = run["config"]
    names = original_variable_map(run["model"])
    if run["family"] == "dpc":
        assert config.dense_prediction_cell == parse_cell(CITYSCAPES_CELL)
        assert "meta_architecture/branch4_pointwise/weights" in names
    else:
        assert "hnasnet/cell_11/comb_iter_4/right/atrous_5x5/weights" in names
        assert config.drop_path_keep_prob == 0.8 and not config.prediction_with_upsampled_logits
        assert any(isinstance(layer, DropPath) for layer in run["model"]._flatten_layers())


def _spec(run, **fields):
    export_config = ExportConfig(eval_crop_size=(CROP, CROP), **fields)
    return inference.InferenceSpec.from_export_config(run["config"], export_config)


def _expected(run, image, spec=None):
    spec = spec or _spec(run)
    fast = inference.prepare_model(run["model"], spec, run["config"])
    return inference.predict(fast, image[None], spec)["labels"].numpy()[0]


def _export(run, capfd, name, *args):
    export_dir = run["root"] / name
    result = run_in_process(export_binary.run, [
        "deeplab-export", f"--checkpoint_path={run['run_dir']}", f"--export_dir={export_dir}",
        f"--eval_crop_size={CROP},{CROP}", *args], capfd)
    assert result.returncode == 0, result.stderr[-3000:]
    return export_dir


def test_eval_and_vis(run, capfd):
    result = run_in_process(eval_binary.run, [
        "deeplab-eval", f"--checkpoint_dir={run['run_dir']}", "--dataset=",
        f"--dataset_dir={run['data']}", "--eval_split=val", f"--eval_logdir={run['root'] / 'eval'}",
        "--max_number_of_evaluations=1", f"--eval_crop_size={CROP},{CROP}"], capfd)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "miou" in result.stdout.lower()
    vis_dir = run["root"] / "vis"
    result = run_in_process(vis_binary.run, [
        "deeplab-vis", f"--checkpoint_dir={run['run_dir']}", "--dataset=",
        f"--dataset_dir={run['data']}", "--vis_split=val", f"--vis_logdir={vis_dir}",
        "--max_number_of_iterations=1", f"--vis_crop_size={CROP},{CROP}"], capfd)
    assert result.returncode == 0, result.stderr[-3000:]
    pngs = [f for _, _, files in os.walk(vis_dir) for f in files if f.endswith(".png")]
    assert len(pngs) >= 2


def test_saved_model_equals_the_inference_path(run, capfd):
    export_dir = _export(run, capfd, "saved_model", "--format=saved_model")
    (version,) = os.listdir(export_dir / "deeplab")
    loaded = tf.saved_model.load(str(export_dir / "deeplab" / version))
    for image in _images():
        got = loaded.signatures["predict_images"](images=tf.constant(image[None]))
        np.testing.assert_array_equal(got["semantic_predictions"].numpy()[0],
                                      _expected(run, image))


def test_frozen_graph_equals_the_inference_path(run, capfd):
    path = run["root"] / "frozen" / "frozen_inference_graph.pb"
    result = run_in_process(export_binary.run, [
        "deeplab-export", f"--checkpoint_path={run['run_dir']}", f"--export_path={path}",
        f"--crop_size={CROP},{CROP}", f"--num_classes={run['config'].num_classes}",
        *run["flags"]], capfd)  # the original export_model.py's form: the model flags
    assert result.returncode == 0, result.stderr[-3000:]
    graph = tf.Graph()
    with graph.as_default():
        tf.compat.v1.import_graph_def(tf.compat.v1.GraphDef.FromString(path.read_bytes()),
                                      name="")
    spec = inference.InferenceSpec.from_export_config(
        run["config"], ExportConfig(format="frozen_graph", crop_size=(CROP, CROP)))
    expected = [_expected(run, image, spec) for image in _images()]
    with tf.compat.v1.Session(graph=graph) as session:
        for image, want in zip(_images(), expected):
            labels = session.run("SemanticPredictions:0", {"ImageTensor:0": [image]})[0]
            np.testing.assert_array_equal(labels, want)


@pytest.mark.parametrize("mode", ["float32", "int8"])
def test_tflite(run, capfd, mode):
    from deeplab_tf.export.litert import LiteRTModel

    export_dir = _export(run, capfd, f"tflite_{mode}", "--format=tflite",
                         f"--tflite_mode={mode}", f"--crop_size={CROP},{CROP}",
                         f"--calibration_dataset_dir={run['data']}", "--calibration_split=train",
                         "--calibration_steps=2")
    (name,) = [f for f in os.listdir(export_dir) if f.endswith(".tflite")]
    runner = LiteRTModel(str(export_dir / name))  # its spec: the .json beside it
    for image in _images():
        labels = runner.predict_image(image)
        assert labels.shape == image.shape[:2]
        assert labels.min() >= 0 and labels.max() < run["config"].num_classes
        if mode == "float32":
            agreement = float((labels == _expected(run, image)).mean())
            assert agreement >= 0.99, agreement


def test_openvino_and_onnx(run, capfd):
    import openvino as ov

    from deeplab_tf.export.openvino import F32_CONFIG

    export_dir = _export(run, capfd, "openvino", "--format=openvino")
    compiled = ov.Core().compile_model(str(export_dir / "deeplab.xml"), "CPU", F32_CONFIG)
    runtimes = {"openvino": lambda image: compiled(image[None])[compiled.outputs[0]][0]}
    onnxruntime = pytest.importorskip("onnxruntime")
    export_dir = _export(run, capfd, "onnx", "--format=onnx")
    session = onnxruntime.InferenceSession(str(export_dir / "deeplab.onnx"),
                                           providers=["CPUExecutionProvider"])
    source = session.get_inputs()[0].name
    runtimes["onnx"] = lambda image: session.run(None, {source: image[None]})[0][0]
    for runtime, predict in runtimes.items():
        for image in _images():
            agreement = float((predict(image) == _expected(run, image)).mean())
            assert agreement >= 0.99, (runtime, agreement)


def test_keras_fit(run):
    """The family's ModelConfig trained with compile / fit (drop path bound to the
    optimizer's iterations)."""
    config = run["config"]
    model = DeepLab(config)
    model.compile(keras.optimizers.SGD(0.01),
                  loss=SegmentationLoss(config.num_classes, ignore_label=255),
                  drop_path_total_steps=10)
    rng = np.random.default_rng(0)
    images = rng.uniform(0, 255, (2, 33, 33, 3)).astype("float32")
    labels = rng.integers(0, config.num_classes, (2, 33, 33, 1)).astype("int32")
    before = [w.numpy().copy() for w in model.trainable_weights]
    history = model.fit(images, labels, batch_size=2, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    assert any(not np.array_equal(a, w.numpy()) for a, w in zip(before, model.trainable_weights))
