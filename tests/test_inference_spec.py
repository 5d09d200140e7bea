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
    spec = InferenceSpec.from_configs(config, EvalConfig())
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
        model, InferenceSpec.from_configs(config, EvalConfig(eval_crop_size=None)), config)
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
