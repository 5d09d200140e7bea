"""InferenceSpec / prepare_model / predict: the one inference path, against NumPy references."""

import io

import numpy as np
import pytest
import tensorflow as tf

from deeplab_tf.checkpoints.loading import load_checkpoint, save_model_checkpoint
from deeplab_tf.config import EvalConfig, ExportConfig, ModelConfig
from deeplab_tf.evaluation.evaluator import Progress, make_predict_fn
from deeplab_tf.inference import InferenceSpec, predict, prepare_model
from deeplab_tf.model import build_model
from export_helpers import scenes
from helpers import np_resize_bilinear_align_corners, tiny_config
from test_inference import calibrated_model

PAD = (127.5, 127.5, 127.5)


@pytest.fixture(scope="module")
def setup():
    config = tiny_config(num_classes=3)
    return config, calibrated_model(config, seed=5)


def test_spec_from_configs_takes_the_variants_mean_pixel():
    resnet = ModelConfig(model_variant="resnet_v1_50", num_classes=3)
    spec = InferenceSpec.from_configs(resnet, EvalConfig(eval_scales=(0.5, 1.0),
                                                         eval_crop_size=(65, 65)))
    # The mean-subtracting ResNet pads with the ImageNet mean (never 127.5).
    np.testing.assert_allclose(spec.pad_value, (123.15, 115.90, 103.06), atol=0.01)
    assert spec.scales == (0.5, 1.0) and spec.crop_size == (65, 65) and spec.fold_batch_norm
    assert InferenceSpec.from_configs(tiny_config(), EvalConfig()).pad_value == PAD
    export = ExportConfig(format="frozen_graph", crop_size=(97, 97), eval_crop_size=(33, 33),
                          min_resize_value=50, max_resize_value=80)
    spec = InferenceSpec.from_export_config(tiny_config(), export)
    assert spec.crop_size == (97, 97) and spec.resizes and spec.min_resize_value == 50
    assert InferenceSpec.from_export_config(tiny_config(), ExportConfig(
        eval_crop_size=(33, 33))).crop_size == (33, 33)
    with pytest.raises(ValueError, match="pad_value"):
        InferenceSpec(output_stride=16, pad_value=(1.0, 2.0))


def test_precision_is_resolved_from_the_configs():
    """--inference_precision: ``auto`` resolved by runtime.hardware (once, in the spec), an
    explicit value kept; formats other than SavedModel hold the float32 graph; bad values
    are one-line ConfigErrors naming the field."""
    from deeplab_tf.errors import ConfigError
    from deeplab_tf.runtime.hardware import resolve_inference_precision

    spec = InferenceSpec.from_configs(tiny_config(), EvalConfig(inference_precision="bfloat16"))
    assert spec.precision == "bfloat16" and "as asked" in spec.precision_reason
    auto = InferenceSpec.from_configs(tiny_config(), EvalConfig())
    assert (auto.precision, auto.precision_reason) == resolve_inference_precision("auto")
    assert InferenceSpec.from_export_config(tiny_config(), ExportConfig(
        inference_precision="bfloat16")).precision == "bfloat16"
    for fmt in ("frozen_graph", "tflite", "openvino", "onnx"):
        spec = InferenceSpec.from_export_config(tiny_config(), ExportConfig(
            format=fmt, export_path="/x/frozen.pb", crop_size=(33, 33)))
        assert spec.precision == "float32" and fmt in spec.precision_reason
    with pytest.raises(ConfigError, match="bfloat16 applies to SavedModel exports only.*"
                                          "format='tflite'"):
        ExportConfig(format="tflite", inference_precision="bfloat16")
    with pytest.raises(ConfigError, match="inference_precision must be one of auto, float32, "
                                          "bfloat16. Received: inference_precision='half'"):
        EvalConfig(inference_precision="half")
    with pytest.raises(ConfigError, match="precision='auto'"):
        InferenceSpec(output_stride=16, pad_value=PAD, precision="auto")
    assert EvalConfig.from_dict(EvalConfig(inference_precision="float32").to_dict()) == \
        EvalConfig(inference_precision="float32")


@pytest.mark.parametrize("fold", [True, False])
def test_bfloat16_copy_computes_in_bfloat16_with_float32_logits(fold):
    """precision='bfloat16': prepare_model's copy runs its convolutions in bfloat16 (folded
    weights stored in bfloat16), its logits float32 and close to the float32 model's (random
    weights with realistic batch-norm statistics; a trained model's labels agree on >= 99.5 %:
    tests/test_export_tflite.py)."""
    from deeplab_tf.bench.model import randomize_weights

    config = tiny_config(num_classes=3)
    model = randomize_weights(build_model(config), seed=4)
    spec = InferenceSpec(output_stride=16, pad_value=PAD, precision="bfloat16",
                         fold_batch_norm=fold)
    half = prepare_model(model, spec, config)
    assert half is not model and half.name.endswith("_bfloat16")
    convs = [layer for layer in half._flatten_layers() if hasattr(layer, "_folded")]
    assert all(layer.compute_dtype == "bfloat16" for layer in convs[:-1])
    assert convs[-1].compute_dtype == "float32"  # the logits layer
    if fold:
        assert convs[0]._folded[0].dtype == tf.bfloat16
        assert convs[-1]._folded[0].dtype == tf.float32
    images = np.random.default_rng(2).uniform(0, 255, (1, 33, 49, 3)).astype(np.float32)
    got = half(images, training=False)
    expected = model(images, training=False).numpy()
    assert got.dtype == tf.float32
    difference = np.abs(got.numpy() - expected).max() / np.abs(expected).max()
    correlation = np.corrcoef(got.numpy().ravel(), expected.ravel())[0, 1]
    # bfloat16's rounding (8 significant bits through some 50 layers): visible, but small.
    assert 1e-5 < difference < 0.25 and correlation > 0.97, (difference, correlation)


def _np_nearest_align_corners(labels, height, width):
    in_h, in_w = labels.shape[1:3]
    ys = np.floor(np.arange(height) * ((in_h - 1) / max(height - 1, 1)) + 0.5).astype(int)
    xs = np.floor(np.arange(width) * ((in_w - 1) / max(width - 1, 1)) + 0.5).astype(int)
    return labels[:, ys][:, :, xs]


def test_predict_resize_to_range_then_back(setup):
    config, model = setup
    image = np.random.default_rng(1).uniform(0, 255, (1, 40, 30, 3)).astype(np.float32)
    spec = InferenceSpec(output_stride=16, pad_value=PAD, min_resize_value=33,
                         max_resize_value=60, fold_batch_norm=False)
    out = predict(model, image, spec)
    assert out["labels"].shape == (1, 40, 30) and out["probabilities"].shape == (1, 40, 30, 3)
    # Smaller side 30 -> 33: 40 x 30 becomes ceil(44.0) x 33 (align-corners bilinear).
    resized = np_resize_bilinear_align_corners(image.astype(np.float64), 44, 33)
    plain = InferenceSpec(output_stride=16, pad_value=PAD, fold_batch_norm=False)
    inner = predict(model, resized.astype(np.float32), plain)
    expected = _np_nearest_align_corners(inner["labels"].numpy(), 40, 30)
    top2 = np.sort(inner["probabilities"].numpy(), axis=-1)[..., -2:]
    margin = _np_nearest_align_corners(top2[..., 1] - top2[..., 0], 40, 30)
    clear = margin > 1e-3  # float32 vs float64 resizes may flip near-ties only
    assert clear.mean() > 0.9 and len(np.unique(expected)) > 1
    np.testing.assert_array_equal(out["labels"].numpy()[clear], expected[clear])
    # An image already in range is not resized at all (bit-identical to no resize).
    same = np.random.default_rng(2).uniform(0, 255, (1, 33, 45, 3)).astype(np.float32)
    np.testing.assert_array_equal(predict(model, same, spec)["labels"].numpy(),
                                  predict(model, same, plain)["labels"].numpy())


def test_folded_formulation_agrees_on_scenes(setup):
    """Batch norm folded (the default) vs the unfolded model, on golden-style scenes."""
    config, model = setup
    images, _ = scenes(np.random.default_rng(7), 6, 45, 61)
    spec = InferenceSpec.from_configs(config, EvalConfig(inference_precision="float32"))
    assert spec.fold_batch_norm
    fast = prepare_model(model, spec, config)
    traced = tf.function(lambda x: fast(x, training=False)).get_concrete_function(
        tf.TensorSpec([1, 33, 33, 3], tf.float32))
    assert fast is not model and not traced.variables  # every weight is a constant now
    unfolded = predict(model, images, InferenceSpec.from_configs(
        config, EvalConfig(fold_batch_norm=False)))
    folded = predict(fast, images, spec)
    agreement = float((folded["labels"].numpy() == unfolded["labels"].numpy()).mean())
    print(f"folded vs unfolded argmax agreement: {agreement:.6f} "
          f"({images.shape[0]} scenes of 45x61)")
    np.testing.assert_allclose(folded["probabilities"].numpy(),
                               unfolded["probabilities"].numpy(), atol=2e-5)
    assert agreement == 1.0


def test_predict_fn_refolds_after_new_weights_are_loaded(setup, tmp_path):
    config, _ = setup
    first, second = calibrated_model(config, seed=11), calibrated_model(config, seed=12)
    save_model_checkpoint(first, str(tmp_path / "a"), step=1)
    save_model_checkpoint(second, str(tmp_path / "b"), step=2)
    model = build_model(config)
    predict_fn = make_predict_fn(
        model, InferenceSpec.from_configs(config, EvalConfig(eval_crop_size=None,
                                                             inference_precision="float32")),
        config)
    images = np.random.default_rng(3).uniform(0, 255, (1, 33, 33, 3)).astype(np.float32)
    plain = InferenceSpec(output_stride=16, pad_value=PAD, fold_batch_norm=False)
    for source, directory in ((first, "a"), (second, "b")):
        load_checkpoint(model, str(tmp_path / directory))
        expected = predict(source, images, plain)["labels"].numpy()
        np.testing.assert_array_equal(predict_fn(images).numpy(), expected)
    assert not np.array_equal(predict(first, images, plain)["labels"].numpy(), expected)


def test_progress_lines_off_a_terminal_and_a_bar_on_one():
    plain = io.StringIO()
    progress = Progress(total=None, every=2, stream=plain)
    for _ in range(5):
        progress.update()
    progress.close()
    lines = plain.getvalue().splitlines()
    assert [line.split(" images")[0] for line in lines] == \
        ["Evaluated 2", "Evaluated 4", "Evaluated 5"]

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    terminal = Terminal()
    progress = Progress(total=4, stream=terminal)
    for _ in range(4):
        progress.update()
    progress.close()
    text = terminal.getvalue()
    assert text.count("\r") == 4 and "[" + "#" * 30 + "] Evaluated 4/4" in text


def test_prepare_model_needs_the_config_to_fold():
    model = build_model(tiny_config())
    spec = InferenceSpec(output_stride=16, pad_value=PAD)
    if getattr(model, "config", None) is None:
        with pytest.raises(ValueError, match="model_config"):
            prepare_model(model, spec)
    unfolded = InferenceSpec(output_stride=16, pad_value=PAD, fold_batch_norm=False)
    assert prepare_model(model, unfolded) is model
