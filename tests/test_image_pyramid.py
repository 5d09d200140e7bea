"""The image pyramid (--image_pyramid, --merge_method) against NumPy references of the
original's ``multi_scale_logits`` and its training loss.

The reference runs the plain (single-scale) network, itself checked elsewhere, on images
resized in NumPy, resizes its logits in NumPy to the common grid and merges them in NumPy:
what is under test is the pyramid's wiring (scaled sizes, shared weights, the common grid,
the merge, the loss over every scale).
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

from helpers import (np_resize_bilinear_align_corners, random_original_values,
                     reference_variables, tiny_config)
from deeplab_tf.checkpoints.loading import load_checkpoint, save_model_checkpoint
from deeplab_tf.config import ModelConfig, TrainConfig
from deeplab_tf.inference import predict_probabilities, upsample_logits
from deeplab_tf.losses import SegmentationLoss
from deeplab_tf.model import build_model
from deeplab_tf.modeling.layers.original_layer import original_variable_map
from deeplab_tf.train.loop import Trainer

SCALES = (0.5, 1.0, 1.25)
H, W = 33, 41
IGNORE = 255
LOGITS_STRIDE = 4  # tiny_config: decoder at output stride 4


def _scaled(d, s):
    return int((d - 1) * s + 1)


def _assign(model, values):
    for name, variable in original_variable_map(model).items():
        variable.assign(values[name])


def _without_dropout(model):
    for layer in model._flatten_layers():
        if isinstance(layer, keras.layers.Dropout):
            layer.rate = 0.0
    return model


@pytest.fixture(scope="module")
def models():
    plain = _without_dropout(build_model(tiny_config()))
    values = random_original_values(plain, seed=3)
    _assign(plain, values)
    pyramids = {}
    for method in ("max", "avg"):
        pyramids[method] = _without_dropout(
            build_model(tiny_config(image_pyramid=SCALES, merge_method=method)))
        _assign(pyramids[method], values)
    images = np.random.default_rng(0).uniform(0, 255, (2, H, W, 3)).astype(np.float32)
    return plain, pyramids, values, images


@pytest.fixture(scope="module")
def reference(models):
    plain, _, _, images = models
    return _np_logits_by_scale(plain, images)


def _np_logits_by_scale(plain, images, training=False):
    """{"logits_<s>": float64 logits on the common grid} from the plain network."""
    factor = max(1.0, max(SCALES)) / LOGITS_STRIDE
    out = {}
    for s in SCALES:
        x = images
        if s != 1.0:
            x = np_resize_bilinear_align_corners(images.astype(np.float64), _scaled(H, s),
                                                 _scaled(W, s)).astype(np.float32)
        logits = plain(x, training=training).numpy().astype(np.float64)
        out[f"logits_{s:.2f}"] = np_resize_bilinear_align_corners(
            logits, _scaled(H, factor), _scaled(W, factor))
    return out


def _np_merge(by_scale, method):
    stacked = np.stack(list(by_scale.values()))
    return stacked.max(axis=0) if method == "max" else stacked.mean(axis=0)


@pytest.mark.parametrize("method", ["max", "avg"])
def test_merged_logits_match_numpy_reference(models, reference, method):
    _, pyramids, _, images = models
    got = pyramids[method].logits_by_scale(images)
    assert list(got) == ["logits_0.50", "logits_1.00", "logits_1.25", "merged_logits"]
    # The common grid: scale_dimension(33, 1.25 / 4) x scale_dimension(41, 1.25 / 4).
    assert got["merged_logits"].shape == (2, 11, 13, 3)
    for key, value in reference.items():
        np.testing.assert_allclose(got[key].numpy(), value, rtol=1e-4, atol=1e-4, err_msg=key)
    merged = _np_merge(reference, method)
    np.testing.assert_allclose(got["merged_logits"].numpy(), merged, rtol=1e-4, atol=1e-4)
    # The model's output (what eval, vis and the exports use) is the merged logits.
    np.testing.assert_allclose(pyramids[method](images).numpy(), merged, rtol=1e-4, atol=1e-4)
    # The scales disagree, so max and avg give different merges (the test can tell them apart).
    assert np.abs(_np_merge(reference, "max") - _np_merge(reference, "avg")).max() > 1e-2


def _np_cross_entropy(logits, labels):
    """Mean pixel softmax cross-entropy over the non-ignored labels, logits upsampled
    (align corners) to the labels' size as the original's training."""
    logits = np_resize_bilinear_align_corners(logits, H, W)
    shifted = logits - logits.max(axis=-1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))
    valid = labels != IGNORE
    picked = np.take_along_axis(log_probs, np.where(valid, labels, 0)[..., None], axis=-1)[..., 0]
    return -picked[valid].sum() / valid.sum()


def test_training_loss_is_the_sum_over_scales_and_merged_in_trainer_and_fit(models, tmp_path):
    plain, pyramids, values, images = models
    pyramid = pyramids["max"]
    saved = [m.get_weights() for m in (plain, pyramid)]  # training moves the BN statistics
    labels = np.random.default_rng(1).choice([0, 1, 2, IGNORE], size=(2, H, W, 1)).astype(np.int32)
    # Independently: each scale's training-mode logits (batch statistics per scale) ...
    by_scale = _np_logits_by_scale(plain, images, training=True)
    by_scale["merged_logits"] = _np_merge(by_scale, "max")
    # ... and the original's loss: one mean cross-entropy per entry, summed with weight 1.
    expected = sum(_np_cross_entropy(logits, labels[..., 0]) for logits in by_scale.values())
    assert abs(expected - _np_cross_entropy(by_scale["merged_logits"], labels[..., 0])) > 0.1

    trainer = Trainer(tiny_config(image_pyramid=SCALES),
                      TrainConfig(train_batch_size=2, strategy="one_device"),
                      train_logdir=str(tmp_path), dataset_fn=lambda context: None,
                      ignore_label=IGNORE)
    _assign(_without_dropout(trainer.model), values)
    _, cross_entropy, _ = trainer._forward_backward_fn(images, labels, tf.constant(0, tf.int64))
    np.testing.assert_allclose(float(cross_entropy), expected, rtol=1e-4)

    pyramid.compile(optimizer=keras.optimizers.SGD(learning_rate=0.0),
                    loss=SegmentationLoss(num_classes=3, ignore_label=IGNORE))
    logs = pyramid.train_step((tf.constant(images), tf.constant(labels)))
    weight_decay = float(tf.add_n(pyramid.losses))
    np.testing.assert_allclose(float(logs["loss"]) - weight_decay, expected, rtol=1e-4)
    for model, weights in zip((plain, pyramid), saved):
        model.set_weights(weights)


def test_multi_scale_inference_runs_the_single_scale_network(models):
    """As the original's predict_labels_multi_scale, eval scales other than (1.0,) ignore the
    pyramid; with (1.0,) the pyramid's merged logits are the prediction."""
    plain, pyramids, _, images = models
    multi = dict(scales=(0.5, 1.0))
    np.testing.assert_allclose(predict_probabilities(pyramids["max"], images, **multi).numpy(),
                               predict_probabilities(plain, images, **multi).numpy(), atol=1e-6)
    single = predict_probabilities(pyramids["max"], images).numpy()
    merged = tf.nn.softmax(upsample_logits(pyramids["max"](images), (H, W))).numpy()
    np.testing.assert_allclose(single, merged, atol=1e-6)
    assert np.abs(single - predict_probabilities(plain, images).numpy()).max() > 1e-3


def test_pyramid_has_the_plain_network_variables(models):
    plain, pyramids, _, _ = models
    ours = {name: tuple(v.shape) for name, v in original_variable_map(pyramids["max"]).items()}
    assert ours == {name: tuple(v.shape) for name, v in original_variable_map(plain).items()}
    assert len(ours) == len(pyramids["max"].weights)  # nothing unmapped, nothing twice
    # The original's pyramid checkpoint lists the plain network's variables (the same file;
    # the real-size check: test_xception65_pyramid_loads_the_original_variables, slow set).
    assert reference_variables("xception65_image_pyramid.tsv") == \
        reference_variables("xception65_os16_dec.tsv")


@pytest.mark.slow
def test_checkpoints_load_across_the_pyramid_switch(models, tmp_path):
    """This project's checkpoints (object-graph keys) load across --image_pyramid, as the
    original's (named by scope) do."""
    plain, pyramids, _, images = models
    fresh_plain = build_model(tiny_config())
    report = load_checkpoint(fresh_plain, save_model_checkpoint(pyramids["max"], str(tmp_path / "p")))
    assert not report.missing_in_checkpoint and not report.unused_in_checkpoint
    np.testing.assert_array_equal(fresh_plain(images).numpy(), plain(images).numpy())
    fresh_pyramid = build_model(tiny_config(image_pyramid=SCALES))
    report = load_checkpoint(fresh_pyramid, save_model_checkpoint(plain, str(tmp_path / "q")))
    assert not report.missing_in_checkpoint and not report.unused_in_checkpoint
    np.testing.assert_array_equal(fresh_pyramid(images).numpy(), pyramids["max"](images).numpy())


def test_image_pooling_crop_is_scaled_per_scale(models):
    """An explicit image_pooling_crop_size is scaled with each pyramid scale (65 -> 33 at 0.5),
    as the original's multi_scale_logits does, weights still shared."""
    _, _, _, images = models
    base = dict(decoder_output_stride=(), add_image_level_feature=True)
    pyramid = build_model(tiny_config(image_pyramid=(0.5, 1.0), image_pooling_crop_size=(65, 65),
                                      **base))
    half = build_model(tiny_config(image_pooling_crop_size=(33, 33), **base))
    values = random_original_values(pyramid, seed=5)
    _assign(pyramid, values)
    _assign(half, values)
    x = np.random.default_rng(2).uniform(0, 255, (1, 65, 65, 3)).astype(np.float32)
    small = np_resize_bilinear_align_corners(x.astype(np.float64), 33, 33).astype(np.float32)
    expected = np_resize_bilinear_align_corners(half(small).numpy().astype(np.float64), 5, 5)
    np.testing.assert_allclose(pyramid.logits_by_scale(x)["logits_0.50"].numpy(), expected,
                               rtol=1e-4, atol=1e-4)
    assert len(pyramid.weights) == len(half.weights)


def test_config_and_round_trip():
    config = ModelConfig(image_pyramid=[0.5, 1], merge_method="avg")
    assert config.image_pyramid == (0.5, 1.0) and config.uses_image_pyramid
    assert ModelConfig.from_dict(config.to_dict()) == config
    assert not ModelConfig(image_pyramid=(1.0,)).uses_image_pyramid
    assert not ModelConfig().uses_image_pyramid
    for fields, message in [(dict(image_pyramid=(0.5, -1.0)), "image_pyramid must be positive"),
                            (dict(image_pyramid=("a",)), "image_pyramid must be numbers"),
                            (dict(image_pyramid=(0.5, 0.501)), "differ at two decimals"),
                            (dict(merge_method="min"), "merge_method must be one of max, avg")]:
        with pytest.raises(ValueError, match=message):
            ModelConfig(**fields)


@pytest.mark.parametrize("binary", ["deeplab-train", "deeplab-eval", "deeplab-vis",
                                    "deeplab-export", "deeplab-model-stats"])
def test_flags_reach_the_model_config(binary):
    from absl import flags

    from deeplab_tf.cli.flags import model
    from deeplab_tf.cli.flags.parsing import flags_parser

    flags.FLAGS.unparse_flags()
    try:
        flags_parser(binary)(["prog", "--image_pyramid=0.5", "--image_pyramid=1.0",
                              "--merge_method=avg"])
        config = model.model_config(num_classes=3)
        assert (config.image_pyramid, config.merge_method) == ((0.5, 1.0), "avg")
        assert {"image_pyramid", "merge_method"} <= set(model.explicit())
    finally:
        flags.FLAGS.unparse_flags()


def test_train_flags_decay_steps_and_keep_aspect_ratio_notice(capsys):
    from absl import flags

    from deeplab_tf.cli.flags import legacy, train
    from deeplab_tf.cli.flags.parsing import flags_parser

    flags.FLAGS.unparse_flags()
    try:
        flags_parser("deeplab-train")(["prog", "--decay_steps=1500", "--end_learning_rate=1e-6",
                                       "--keep_aspect_ratio=false"])
        config = train.train_config()
        assert (config.decay_steps, config.end_learning_rate) == (1500.0, 1e-6)
        err = [line for line in capsys.readouterr().err.splitlines() if line]
        assert err == ["note: --keep_aspect_ratio=false: "
                       + legacy.BY_NAME["keep_aspect_ratio"].text]
    finally:
        flags.FLAGS.unparse_flags()


@pytest.mark.slow
def test_xception65_pyramid_through_every_binary_from_the_original_flags(tmp_path):
    """The reference configuration xception65_image_pyramid: the original's local_test.sh
    (xception_65 OS16 + decoder, the PASCAL zoo tarball in the original's variable names, at a
    65 px crop) with ``--image_pyramid=0.5 --image_pyramid=1.0`` added to deeplab-train,
    -eval, -vis and -export, plus deeplab-model-stats: every variable of
    xception65_image_pyramid.tsv loads (the strict inference rule), the run's config keeps the
    pyramid, and the exported graph predicts what the pyramid model predicts."""
    import json
    import os
    import subprocess

    import test_original_commands as commands

    pyramid_flags = "--decoder_output_stride=4 \\\n  --image_pyramid=0.5 \\\n  --image_pyramid=1.0 \\\n"
    script = commands.LOCAL_TEST_SH.replace("--decoder_output_stride=4 \\\n", pyramid_flags)
    assert script.count("--image_pyramid=0.5") == 4
    env, voc = commands._environment(str(tmp_path), 1)
    output = commands._bash(script.replace("513", "65"), env)
    assert "mIoU" in output
    with open(os.path.join(env["TRAIN_LOGDIR"], "config.json")) as f:
        assert json.load(f)["model"]["image_pyramid"] == [0.5, 1.0]

    config = ModelConfig(**commands.ZOO_MODEL, image_pyramid=(0.5, 1.0))
    model = build_model(config)
    ours = {name: tuple(v.shape) for name, v in original_variable_map(model).items()}
    assert ours == reference_variables("xception65_image_pyramid.tsv")
    assert model.count_params() == 41_258_213
    from deeplab_tf.checkpoints.strict import load_for_inference

    tarball_checkpoint = os.path.join(env["INIT_FOLDER"], "deeplabv3_pascal_train_aug", "model.ckpt")
    report = load_for_inference(model, tarball_checkpoint, config)
    assert len(report.loaded) == len(ours)

    from PIL import Image

    from deeplab_tf.config import ExportConfig
    from deeplab_tf.inference import InferenceSpec, predict, prepare_model

    image = np.asarray(Image.open(voc["image_paths"][voc["splits"]["val"][0]]).convert("RGB"))
    graph_path = os.path.join(env["EXPORT_DIR"], "frozen_inference_graph.pb")
    load_for_inference(model, os.path.join(env["TRAIN_LOGDIR"], "model.ckpt-1"), config)
    spec = InferenceSpec.from_export_config(config, ExportConfig(
        format="frozen_graph", crop_size=(65, 65), inference_scales=(1.0,)))
    ours = predict(prepare_model(model, spec, config), image[None], spec)["labels"]
    np.testing.assert_array_equal(commands._notebook_client(graph_path, image), ours.numpy())

    stats = subprocess.run(
        [os.path.join(commands.BIN, "deeplab-model-stats"), "--model_variant=xception_65",
         "--atrous_rates=6", "--atrous_rates=12", "--atrous_rates=18", "--output_stride=16",
         "--decoder_output_stride=4", "--image_pyramid=0.5", "--image_pyramid=1.0",
         "--num_classes=21", "--crop_size=65,65"], capture_output=True, text=True, env=env)
    assert stats.returncode == 0, stats.stderr[-2000:]
    assert "params: 41,258,213" in stats.stdout


@pytest.mark.slow
def test_every_export_predicts_from_the_merged_logits(tmp_path):
    """SavedModel, frozen graph, TFLite (float32, int8), OpenVINO and ONNX of a pyramid model
    (weights of a briefly trained scene model) give the one inference path's labels (the
    merged logits) under their own pre-processing, wherever the prediction is no near-tie."""
    import dataclasses

    import onnxruntime
    import openvino as ov

    from export_helpers import scene_config, scenes, train_scene_model
    from deeplab_tf.config import ExportConfig
    from deeplab_tf.export.frozen_graph import export_frozen_graph
    from deeplab_tf.export.litert import LiteRTModel
    from deeplab_tf.export.onnx import convert_onnx
    from deeplab_tf.export.openvino import F32_CONFIG, convert
    from deeplab_tf.export.saved_model import export_saved_model
    from deeplab_tf.export.tflite import convert_tflite, tflite_spec
    from deeplab_tf.inference import InferenceSpec, predict

    trained = train_scene_model(steps=60)  # random weights predict one class everywhere
    config = dataclasses.replace(scene_config(), image_pyramid=SCALES, merge_method="avg")
    model = build_model(config)
    _assign(model, {name: v.numpy() for name, v in original_variable_map(trained).items()})
    image = np.round(scenes(np.random.default_rng(4), 1, 37, 45)[0][0]).astype(np.uint8)

    def reference(spec):
        """(labels, where they are no near-tie) of the one inference path under ``spec``."""
        outputs = predict(model, image[None], dataclasses.replace(spec, fold_batch_norm=False))
        top2 = np.sort(outputs["probabilities"].numpy()[0], axis=-1)[..., -2:]
        return outputs["labels"].numpy()[0], top2[..., 1] - top2[..., 0] > 0.02

    got = {}  # export -> (its labels, the spec it pre-processes with)
    export_config = ExportConfig(format="saved_model")
    path = export_saved_model(model, config, export_config, str(tmp_path))
    signature = tf.saved_model.load(path).signatures["predict_images"]
    got["saved_model"] = (signature(images=tf.constant(image[None]))["semantic_predictions"][0],
                          InferenceSpec.from_export_config(config, export_config))
    spec = InferenceSpec.from_export_config(config, ExportConfig(format="frozen_graph"))
    graph_path = export_frozen_graph(model, config, spec, str(tmp_path / "frozen.pb"))
    graph_def = tf.compat.v1.GraphDef.FromString(open(graph_path, "rb").read())
    graph = tf.Graph()
    with graph.as_default():
        tf.compat.v1.import_graph_def(graph_def, name="")
    with tf.compat.v1.Session(graph=graph) as session:
        got["frozen_graph"] = (
            session.run("SemanticPredictions:0", {"ImageTensor:0": image[None]})[0], spec)
    compiled = ov.Core().compile_model(convert(model, config, spec), "CPU", F32_CONFIG)
    got["openvino"] = (compiled(image[None])[compiled.outputs[0]][0], spec)
    session = onnxruntime.InferenceSession(convert_onnx(model, config, spec),
                                           providers=["CPUExecutionProvider"])
    got["onnx"] = (session.run(None, {session.get_inputs()[0].name: image[None]})[0][0], spec)
    lite_config = ExportConfig(format="tflite", crop_size=(49, 49))
    lite_spec = tflite_spec(config, lite_config)
    got["tflite"] = (LiteRTModel(convert_tflite(model, lite_config)).predict_image(
        image, lite_spec), lite_spec)
    for name, (labels, export_spec) in got.items():
        want, clear = reference(export_spec)
        assert clear.mean() > 0.5 and len(np.unique(want[clear])) > 1, name
        np.testing.assert_array_equal(np.asarray(labels)[clear], want[clear], err_msg=name)
    int8_config = ExportConfig(format="tflite", crop_size=(49, 49), tflite_mode="int8")
    calibration = [np.random.default_rng(s).uniform(0, 255, (1, 49, 49, 3)).astype(np.float32)
                   for s in range(4)]
    int8 = LiteRTModel(convert_tflite(model, int8_config, calibration))
    assert int8.predict_image(image, lite_spec).shape == image.shape[:2]
