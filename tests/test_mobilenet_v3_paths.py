"""Every path for the MobileNetV3 family at tiny sizes, through the binaries' entry points
(cli_in_process) and the Keras API.

One tiny model, ``mobilenet_v3_small_seg`` x0.35 with the zoo's head (q-sigmoid image gate over
a strided pooling window, no concat projection, sum-merge decoder at stride 8 whose output is
the logits; 5 classes, 65x65 crops), as a checkpoint in the original's names, once per
module. deeplab-train's custom loop trains from it; deeplab-eval (single scale; multi-scale +
flip), deeplab-vis and deeplab-export (SavedModel, frozen graph, TFLite float and int8,
OpenVINO, ONNX) run on it, their predictions compared with the project's inference of the
Keras model holding the same values; Keras ``fit`` trains the family. The default run keeps
multi-scale + flip evaluation; the rest is in the slow set.
"""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import tensorflow as tf

import helpers
import train_data
from cli_in_process import run_in_process
from deeplab_tf.cli import eval as eval_binary
from deeplab_tf.cli import export as export_binary
from deeplab_tf.cli import train as train_binary
from deeplab_tf.cli import vis as vis_binary
from deeplab_tf.config import EvalConfig, ModelConfig
from deeplab_tf.data import schema
from deeplab_tf.evaluation import evaluator
from deeplab_tf.model import build_model
from deeplab_tf.modeling.layers.original_layer import original_variable_map

CLASSES = train_data.NUM_CLASSES
TINY = ["--model_variant=mobilenet_v3_small_seg", "--depth_multiplier=0.35",
        "--output_stride=32", "--image_pooling_crop_size=65,65", "--image_pooling_stride=1,2",
        "--aspp_convs_filters=16", "--aspp_with_concat_projection=false",
        "--aspp_with_squeeze_and_excitation=true", "--image_se_uses_qsigmoid=true",
        "--decoder_output_stride=8", "--decoder_use_sum_merge=true",
        "--decoder_output_is_logits=true", f"--decoder_filters={CLASSES}"]
CONFIG = ModelConfig(model_variant="mobilenet_v3_small_seg", depth_multiplier=0.35,
                     output_stride=32, image_pooling_crop_size=(65, 65),
                     image_pooling_stride=(1, 2), aspp_convs_filters=16,
                     aspp_with_concat_projection=False, aspp_with_squeeze_and_excitation=True,
                     image_se_uses_qsigmoid=True, decoder_output_stride=(8,),
                     decoder_use_sum_merge=True, decoder_output_is_logits=True,
                     decoder_filters=CLASSES, num_classes=CLASSES)
CROP = ["--eval_crop_size=65,65"]


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """A converted dataset and a checkpoint in the original's names (random values, as a zoo
    tarball's), loaded into the model the other tests compare with."""
    root = tmp_path_factory.mktemp("mobilenet_v3_paths")
    data = train_data.write_shapes_dataset(root / "data", splits={"train": 4, "val": 2},
                                           size=(40, 48))
    model = build_model(CONFIG)
    values = helpers.random_original_values(model, seed=4, weight_gain=1.5)
    checkpoint = helpers.write_tf1_checkpoint(str(root / "zoo" / "model.ckpt"),
                                              dict(values, global_step=np.int64(9)))
    helpers.assign_original_values(model, values)
    examples = []
    for record in tf.data.TFRecordDataset(schema.list_shards(data, "val")):
        fields = schema.parse_example(record)
        image = schema.decode_image(fields["image/encoded"])
        label = schema.decode_label(fields["image/segmentation/class/encoded"], image, 255)
        examples.append((image.numpy(), label.numpy()[..., 0]))
    return {"root": root, "data": data, "checkpoint": checkpoint, "model": model,
            "values": values, "examples": examples}


@pytest.mark.slow
def test_custom_loop_trains_from_the_original_names(workspace, capfd):
    run_dir = workspace["root"] / "train"
    result = run_in_process(train_binary.run, [
        "deeplab-train", f"--train_logdir={run_dir}", "--dataset=",
        f"--dataset_dir={workspace['data']}", f"--tf_initial_checkpoint={workspace['checkpoint']}",
        "--train_crop_size=65,65", "--train_batch_size=2", "--training_number_of_steps=2",
        "--seed=1", *TINY], capfd)
    assert result.returncode == 0, result.stderr[-3000:]
    with open(run_dir / "config.json") as f:
        assert ModelConfig.from_dict(json.load(f)["model"]) == CONFIG
    model = build_model(CONFIG)
    tf.train.Checkpoint(model=model).restore(tf.train.latest_checkpoint(run_dir)).expect_partial()
    trained = {name: var.numpy() for name, var in original_variable_map(model).items()}
    assert sorted(trained) == sorted(workspace["values"])
    moved = [name for name, value in trained.items()
             if not np.array_equal(value, workspace["values"][name])]
    assert "decoder/decoder_conv0/biases" in moved and "image_pooling/biases" in moved
    assert any(name.startswith("MobilenetV3/expanded_conv_3/squeeze_excite/") for name in moved)
    # Two small steps from the checkpoint's values (not from a fresh initialisation).
    assert all(np.allclose(value, workspace["values"][name], rtol=0.05, atol=0.05)
               for name, value in trained.items() if "moving_" not in name)


def _labels(workspace, **eval_kwargs):
    """What deeplab-eval / -vis should predict for the val images (the model through the
    project's inference, batch norm folded as the binaries do)."""
    predict = evaluator.make_predict_fn(workspace["model"],
                                        EvalConfig(eval_crop_size=(65, 65), **eval_kwargs),
                                        CONFIG)
    return [predict(image[None].astype(np.float32)).numpy()[0]
            for image, _ in workspace["examples"]]


def _confusion(workspace, predictions):
    matrix = np.zeros((CLASSES, CLASSES), np.int64)
    for (_, label), prediction in zip(workspace["examples"], predictions):
        keep = label != 255
        np.add.at(matrix, (label[keep].astype(int), prediction[keep]), 1)
    return matrix


@pytest.mark.parametrize("scales, flip", [
    pytest.param((1.0,), False, marks=pytest.mark.slow), ((1.0, 1.5), True)])
def test_eval_matches_the_models_predictions(workspace, scales, flip, capfd):
    logdir = workspace["root"] / f"eval_{len(scales)}"
    args = [f"--eval_scales={s}" for s in scales] + (["--add_flipped_images"] if flip else [])
    result = run_in_process(eval_binary.run, [
        "deeplab-eval", f"--checkpoint_path={workspace['checkpoint']}", f"--eval_logdir={logdir}",
        "--dataset=", f"--dataset_dir={workspace['data']}", "--eval_split=val",
        "--max_number_of_evaluations=1", *CROP, *args, *TINY], capfd)
    assert result.returncode == 0, result.stderr[-3000:]
    with open(logdir / "results.json") as f:
        results = json.load(f)
    want = _confusion(workspace, _labels(workspace, eval_scales=scales, add_flipped_images=flip))
    np.testing.assert_array_equal(results["confusion_matrix"], want)


@pytest.mark.slow
def test_vis_writes_the_models_predictions(workspace, capfd):
    from PIL import Image

    logdir = workspace["root"] / "vis"
    result = run_in_process(vis_binary.run, [
        "deeplab-vis", f"--checkpoint_path={workspace['checkpoint']}", f"--vis_logdir={logdir}",
        "--dataset=", f"--dataset_dir={workspace['data']}", "--vis_split=val",
        "--max_number_of_iterations=1", "--also_save_raw_predictions", "--vis_crop_size=65,65",
        *TINY], capfd)
    assert result.returncode == 0, result.stderr[-3000:]
    raw = sorted(os.listdir(logdir / "raw_segmentation_results"))
    assert len(raw) == len(workspace["examples"])
    for name, want in zip(raw, _labels(workspace)):
        np.testing.assert_array_equal(np.asarray(Image.open(logdir / "raw_segmentation_results"
                                                            / name)), want)


@pytest.mark.slow
def test_keras_fit_trains_the_family(workspace):
    import keras

    from deeplab_tf.losses import SegmentationLoss
    from deeplab_tf.model import DeepLab

    model = DeepLab(CONFIG)
    model.compile(optimizer=keras.optimizers.SGD(0.01, momentum=0.9),
                  loss=SegmentationLoss(num_classes=CLASSES, ignore_label=255),
                  last_layer_gradient_multiplier=2.0)
    images = np.stack([np.pad(image, ((0, 25), (0, 17), (0, 0)), constant_values=128)
                       for image, _ in workspace["examples"]]).astype(np.float32)
    labels = np.stack([np.pad(label, ((0, 25), (0, 17)), constant_values=255)
                       for _, label in workspace["examples"]])[..., None].astype(np.int32)
    before = [w.numpy().copy() for w in model.trainable_weights]
    history = model.fit(images, labels, batch_size=2, epochs=2, verbose=0)
    assert np.isfinite(history.history["loss"]).all()
    assert any(not np.allclose(a, b.numpy()) for a, b in zip(before, model.trainable_weights))
    # The .keras round trip keeps the head switches (the gate, the sum, no logits layer).
    path = str(workspace["root"] / "v3.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert loaded.config == CONFIG
    np.testing.assert_allclose(loaded(images, training=False).numpy(),
                               model(images, training=False).numpy(), rtol=1e-5, atol=1e-5)


def _export(workspace, name, *args, capfd=None):
    export_dir = workspace["root"] / name
    result = run_in_process(export_binary.run, [
        "deeplab-export", f"--checkpoint_path={workspace['checkpoint']}",
        f"--export_dir={export_dir}",
        *args, *TINY, f"--num_classes={CLASSES}"], capfd)
    assert result.returncode == 0, result.stderr[-3000:]
    return export_dir


def _agreement(workspace, predict):
    """Worst per-image fraction of pixels where ``predict(uint8 image)`` equals the labels of
    the Keras model (which vary: more than one class in every image)."""
    wants = _labels(workspace)
    assert all(len(np.unique(want)) > 1 for want in wants)
    return min(float((predict(image) == want).mean())
               for (image, _), want in zip(workspace["examples"], wants))


@pytest.mark.slow
def test_saved_model_export(workspace, capfd):
    export_dir = _export(workspace, "saved_model", "--format=saved_model", *CROP, capfd=capfd)
    (version,) = os.listdir(export_dir / "deeplab")
    loaded = tf.saved_model.load(str(export_dir / "deeplab" / version))
    signature = loaded.signatures["predict_images"]
    agreement = _agreement(workspace, lambda image: signature(
        images=tf.constant(image[None]))["semantic_predictions"].numpy()[0])
    assert agreement == 1.0


@pytest.mark.slow
def test_frozen_graph_export(workspace, capfd):
    path = workspace["root"] / "frozen" / "frozen_inference_graph.pb"
    _export(workspace, "frozen", f"--export_path={path}", "--crop_size=65,65", capfd=capfd)
    graph = tf.Graph()
    with graph.as_default():
        tf.compat.v1.import_graph_def(tf.compat.v1.GraphDef.FromString(path.read_bytes()),
                                      name="")
    with tf.compat.v1.Session(graph=graph) as session:  # (the graph is the default inside)
        got = [session.run("SemanticPredictions:0", {"ImageTensor:0": image[None]})[0]
               for image, _ in workspace["examples"]]
    outputs = iter(got)
    assert _agreement(workspace, lambda image: next(outputs)) == 1.0


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["float32", "int8"])
def test_tflite_export(workspace, mode, capfd):
    from deeplab_tf.export.litert import LiteRTModel

    args = ["--format=tflite", f"--tflite_mode={mode}", "--crop_size=65,65",
            "--model_name=tiny"]
    if mode == "int8":
        args += [f"--calibration_dataset_dir={workspace['data']}", "--calibration_split=train",
                 "--calibration_steps=4"]
    export_dir = _export(workspace, f"tflite_{mode}", *args, capfd=capfd)
    (name,) = [n for n in os.listdir(export_dir) if n.endswith(".tflite")]
    runner = LiteRTModel(str(export_dir / name))
    agreement = _agreement(workspace, runner.predict_image)
    print(f"TFLite {mode}: argmax agreement with Keras {100 * agreement:.2f} %")
    assert agreement >= (0.99 if mode == "float32" else 0.5)


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["openvino", "onnx"])
def test_openvino_and_onnx_exports(workspace, backend, capfd):
    """Dynamic-shape graphs that pad with the mean pixel to --eval_crop_size, as eval does."""
    export_dir = _export(workspace, backend, f"--format={backend}", *CROP, capfd=capfd)
    if backend == "openvino":
        import openvino as ov

        from deeplab_tf.export.openvino import F32_CONFIG

        compiled = ov.Core().compile_model(str(export_dir / "deeplab.xml"), "CPU", F32_CONFIG)

        def predict(image):
            return compiled(image[None])[compiled.outputs[0]][0]
    else:
        onnxruntime = pytest.importorskip("onnxruntime")
        session = onnxruntime.InferenceSession(str(export_dir / "deeplab.onnx"),
                                               providers=["CPUExecutionProvider"])

        def predict(image):
            return session.run(None, {session.get_inputs()[0].name: image[None]})[0][0]
    agreement = _agreement(workspace, predict)
    print(f"{backend}: argmax agreement with Keras {100 * agreement:.2f} %")
    assert agreement >= 0.99
