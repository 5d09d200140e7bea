"""MobileNetV3 (large/small ``_seg``) and EdgeTPU-MobileNet: the original's variables, output
strides, decoder taps, depth multipliers, and the blocks against NumPy.

* the three reference configurations (``tests/data/original_variables/mobilenetv3_large_seg``,
  ``mobilenetv3_small_seg``, ``mobilenet_edgetpu``): every variable name and shape, the
  parameter totals of the reference README, and a checkpoint in the original's names that
  ``load_for_inference`` takes with nothing missing or left over;
* strides and atrous rates per block, features and taps at output strides 8, 16 and 32, the
  residual additions (small_seg gains one below output stride 32);
* EdgeTPU-DeepLab-slim's channels (depth multiplier 0.75);
* hard-swish, squeeze-and-excitation, a hard-swish + SE expanded conv and a fused block
  against independent NumPy code.
"""

from __future__ import annotations

import functools

import keras
import numpy as np
import pytest

import helpers
from deeplab_tf import ModelConfig
from deeplab_tf.checkpoints.strict import load_for_inference
from deeplab_tf.model import build_model
from deeplab_tf.modeling.backbones import get_backbone, mean_pixel, mobilenet_blocks
from deeplab_tf.modeling.layers.activations import hard_swish, q_sigmoid
from deeplab_tf.modeling.layers.conv_bn import ConvBN
from deeplab_tf.modeling.layers.original_layer import original_variable_map
from deeplab_tf.modeling.layers.residual_add import ResidualAdd
from deeplab_tf.modeling.layers.normalization import Normalization

SIZE = 65
# The zoo's MobileNetV3 flags (model_zoo.md), as the reference README lists them.
V3_HEAD = dict(output_stride=32, num_classes=19, image_pooling_crop_size=(769, 769),
               image_pooling_stride=(4, 5), aspp_convs_filters=128,
               aspp_with_concat_projection=False, aspp_with_squeeze_and_excitation=True,
               decoder_use_sum_merge=True, decoder_filters=19, decoder_output_is_logits=True,
               image_se_uses_qsigmoid=True, decoder_output_stride=(8,))
REFERENCES = {
    "mobilenetv3_large_seg.tsv": (dict(V3_HEAD, model_variant="mobilenet_v3_large_seg"),
                                  1_525_230),
    "mobilenetv3_small_seg.tsv": (dict(V3_HEAD, model_variant="mobilenet_v3_small_seg"),
                                  477_454),
    "mobilenet_edgetpu.tsv": (dict(model_variant="mobilenet_edgetpu", output_stride=16,
                                   num_classes=19), 3_643_699),
}
SCOPES = {"mobilenet_v3_large_seg": "MobilenetV3", "mobilenet_v3_small_seg": "MobilenetV3",
          "mobilenet_edgetpu": "MobilenetEdgeTPU"}


def _shapes(model):
    return {name: tuple(v.shape) for name, v in original_variable_map(model).items()}


@functools.lru_cache(maxsize=None)
def _reference_model(filename):
    kwargs, _ = REFERENCES[filename]
    return build_model(ModelConfig(**kwargs))


@pytest.mark.parametrize("filename", sorted(REFERENCES))
def test_reference_variables_params_and_checkpoint(filename, tmp_path):
    want = helpers.reference_variables(filename)
    model = _reference_model(filename)
    got = _shapes(model)
    assert sorted(set(want) - set(got)) == [] and sorted(set(got) - set(want)) == []
    assert {k: (v, want[k]) for k, v in got.items() if want[k] != v} == {}
    assert model.count_params() == REFERENCES[filename][1]
    # A checkpoint in the original's names (plus what zoo checkpoints hold beside the model).
    values = helpers.random_original_values(model, seed=3)
    prefix = helpers.write_tf1_checkpoint(
        str(tmp_path / "model.ckpt"), dict(values, global_step=np.int64(7)))
    report = load_for_inference(model, prefix)
    assert sorted(report.loaded) == sorted(want)
    assert report.missing_in_checkpoint == [] and report.unused_in_checkpoint == []
    assert report.ignored == ["global_step"]
    for name, variable in original_variable_map(model).items():
        np.testing.assert_array_equal(variable.numpy(), values[name], err_msg=name)


def test_reference_models_outputs():
    """The V3 head's logits at decoder stride 8 with 19 channels, EdgeTPU's at 16; no
    logits layer where the decoder outputs the logits; every normalisation [-1, 1]."""
    # (The V3 head pools 25x25 windows of stride-32 features: inputs of at least 769x769.)
    for filename, stride, size in [("mobilenetv3_small_seg.tsv", 8, (769, 801)),
                                   ("mobilenet_edgetpu.tsv", 16, (97, 129))]:
        model = _reference_model(filename)
        assert model.output_shape == (None, None, None, 19)
        names = [layer.name for layer in model.layers]
        assert ("logits.semantic" in names) == (filename == "mobilenet_edgetpu.tsv")
        logits = model(np.zeros((1, *size, 3), np.float32), training=False)
        assert logits.shape == (1, (size[0] - 1) // stride + 1, (size[1] - 1) // stride + 1, 19)
    for variant in SCOPES:
        assert get_backbone(variant).normalization == "zero_mean_unit_range"
        assert get_backbone(variant).scope == SCOPES[variant]
        assert mean_pixel(variant) == (127.5, 127.5, 127.5)


# ---------------------------------------------------------------------------------------------
# Output stride: the stride and rate of every block, features, taps and residuals.

@functools.lru_cache(maxsize=None)
def _backbone(variant, output_stride, depth_multiplier=1.0, divisible_by=None):
    config = ModelConfig(model_variant=variant, output_stride=output_stride,
                         depth_multiplier=depth_multiplier, divisible_by=divisible_by)
    spec = get_backbone(variant)
    images = keras.Input((SIZE, SIZE, 3))
    features, endpoints = spec.builder(Normalization(spec.normalization)(images), config,
                                       variant)
    names = sorted(endpoints)
    return keras.Model(images, [features] + [endpoints[n] for n in names]), names


# Spec index -> (stride, rate) of the blocks that differ from (nominal stride, 1), from the
# original's mobilenet_base rule (strides accumulate up to output_stride, then stride 1 and a
# rate that grows by each skipped stride; the skipping layer keeps the old rate).
NOMINAL_STRIDES = {
    "mobilenet_v3_large_seg": {0: 2, 2: 2, 4: 2, 7: 2, 13: 2},
    "mobilenet_v3_small_seg": {0: 2, 1: 2, 2: 2, 4: 2, 9: 2},
    "mobilenet_edgetpu": {0: 2, 2: 2, 6: 2, 10: 2, 18: 2},
}
DILATED = {
    ("mobilenet_v3_large_seg", 16): {13: (1, 1), 14: (1, 2), 15: (1, 2)},
    ("mobilenet_v3_large_seg", 8): {7: (1, 1), **{i: (1, 2) for i in range(8, 13)},
                                    13: (1, 2), 14: (1, 4), 15: (1, 4)},
    ("mobilenet_v3_small_seg", 16): {9: (1, 1), 10: (1, 2), 11: (1, 2)},
    ("mobilenet_v3_small_seg", 8): {4: (1, 1), **{i: (1, 2) for i in range(5, 9)},
                                    9: (1, 2), 10: (1, 4), 11: (1, 4)},
    ("mobilenet_edgetpu", 16): {18: (1, 1), **{i: (1, 2) for i in range(19, 23)}},
    ("mobilenet_edgetpu", 8): {10: (1, 1), **{i: (1, 2) for i in range(11, 18)},
                               18: (1, 2), **{i: (1, 4) for i in range(19, 23)}},
}
# Spec indices of the blocks that add their input at output stride 32 (the block tables).
RESIDUALS = {
    "mobilenet_v3_large_seg": [1, 3, 5, 6, 8, 9, 10, 12, 14, 15],
    "mobilenet_v3_small_seg": [3, 5, 6, 8, 10, 11],
    "mobilenet_edgetpu": [3, 4, 5, 7, 8, 9, 11, 12, 13, 15, 16, 17, 19, 20, 21],
}
TAP_CHANNELS = {"mobilenet_v3_large_seg": {4: 72, 8: 120, 16: 672},
                "mobilenet_v3_small_seg": {4: 16, 8: 88, 16: 144}}
FEATURE_CHANNELS = {"mobilenet_v3_large_seg": 480, "mobilenet_v3_small_seg": 288,
                    "mobilenet_edgetpu": 1280}
# One output stride per variant in the default run (the one that moves most), the others in
# the slow set.
_DEFAULT = {("mobilenet_v3_large_seg", 8), ("mobilenet_v3_small_seg", 16),
            ("mobilenet_edgetpu", 8)}
STRIDE_CASES = [pytest.param(v, s, marks=[] if (v, s) in _DEFAULT else [pytest.mark.slow])
                for v in SCOPES for s in (8, 16, 32)]


def _block_scope(variant, index):
    """The scope of spec entry ``index`` (entry 0 and the last are Conv / Conv_1)."""
    return f"{SCOPES[variant]}/expanded_conv" + (f"_{index - 1}" if index > 1 else "")


@pytest.mark.parametrize("variant, output_stride", STRIDE_CASES)
def test_output_stride_rates_taps_and_residuals(variant, output_stride):
    # divisible_by does not apply to these families (the original discards it): the
    # variables are the reference's whatever it says.
    model, names = _backbone(variant, output_stride, divisible_by=1)
    reference = {"mobilenet_v3_large_seg": "mobilenetv3_large_seg.tsv",
                 "mobilenet_v3_small_seg": "mobilenetv3_small_seg.tsv",
                 "mobilenet_edgetpu": "mobilenet_edgetpu.tsv"}[variant]
    want = {k: v for k, v in helpers.reference_variables(reference).items()
            if k.startswith(SCOPES[variant] + "/")}
    assert _shapes(model) == want

    convs = {layer.scope: layer for layer in model._flatten_layers() if isinstance(layer, ConvBN)}
    assert all(not conv.explicit_padding for conv in convs.values())  # 'SAME' everywhere
    last = len([n for n in names if n.count("/") == 0]) - 1
    dilated = DILATED.get((variant, output_stride), {})
    for index in range(1, last):
        expected = dilated.get(index, (NOMINAL_STRIDES[variant].get(index, 1), 1))
        scope = _block_scope(variant, index)
        if f"{scope}/depthwise" in convs:
            conv = convs[f"{scope}/depthwise"]
        else:  # fused: the strided kxk expansion (never dilated at these output strides)
            conv = convs.get(f"{scope}/expand")
            if conv is None:
                continue
            assert conv.kernel_size == 3
        assert (conv.strides, conv.dilation_rate) == expected, (scope, expected)

    outputs = dict(zip(["features"] + names, model.outputs))
    size = (SIZE - 1) // output_stride + 1
    assert tuple(outputs["features"].shape) == (None, size, size, FEATURE_CHANNELS[variant])
    for tap_stride, tap in get_backbone(variant).decoder_taps.items():
        size = (SIZE - 1) // min(tap_stride, output_stride) + 1
        channels = TAP_CHANNELS[variant][tap_stride]
        assert tuple(outputs[tap].shape) == (None, size, size, channels), tap

    adds = sorted(layer.name for layer in model._flatten_layers()
                  if isinstance(layer, ResidualAdd))
    residuals = RESIDUALS[variant] + (
        [9] if variant == "mobilenet_v3_small_seg" and output_stride < 32 else [])
    assert adds == sorted(_block_scope(variant, i).replace("/", ".") + ".add"
                          for i in residuals)


def test_edgetpu_slim_channels():
    """EdgeTPU-DeepLab-slim: depth multiplier 0.75, rounded to multiples of 8 (at least 8)."""
    model, _ = _backbone("mobilenet_edgetpu", 16, depth_multiplier=0.75)
    got = _shapes(model)
    scope = "MobilenetEdgeTPU"
    assert got[f"{scope}/Conv/weights"] == (3, 3, 3, 24)
    assert f"{scope}/expanded_conv/expand/weights" not in got  # 24 -> 24: project only
    assert got[f"{scope}/expanded_conv/project/weights"] == (1, 1, 24, 16)
    # (expansion, output) of expanded_conv_1 .. expanded_conv_21.
    expected = ([(128, 24)] + [(96, 24)] * 3 + [(192, 40)] + [(160, 40)] * 3 + [(320, 72)]
                + [(288, 72)] * 3 + [(576, 72)] + [(288, 72)] * 3 + [(576, 120)]
                + [(480, 120)] * 3 + [(960, 144)])
    previous = 16
    for i, (expansion, output) in enumerate(expected, start=1):
        kernel = got[f"{scope}/expanded_conv_{i}/expand/weights"]
        assert kernel[2:] == (previous, expansion), i
        assert got[f"{scope}/expanded_conv_{i}/project/weights"] == (1, 1, expansion, output)
        previous = output
    assert got[f"{scope}/Conv_1/weights"] == (1, 1, 144, 960)
    assert model.count_params() == 1_689_928  # the slim backbone (derived from the tables)


@pytest.mark.slow
@pytest.mark.parametrize("variant, multiplier, first, last", [
    ("mobilenet_v3_large_seg", 0.5, 8, 240), ("mobilenet_v3_small_seg", 0.35, 8, 104),
    ("mobilenet_v3_small_seg", 0.75, 16, 216)])
def test_v3_depth_multipliers(variant, multiplier, first, last):
    model, names = _backbone(variant, 16, depth_multiplier=multiplier)
    got = _shapes(model)
    assert got["MobilenetV3/Conv/weights"] == (3, 3, 3, first)
    assert model.outputs[0].shape[-1] == last
    for name, shape in got.items():  # every width a multiple of 8
        assert shape[-1] % 8 == 0 or name.endswith("depthwise_weights"), name


# ---------------------------------------------------------------------------------------------
# Numbers against NumPy.

def test_hard_swish_and_q_sigmoid_match_numpy():
    x = np.linspace(-8.0, 8.0, 1601).astype(np.float32)  # every kink, steps of 0.01
    wide = x.astype(np.float64)
    np.testing.assert_allclose(hard_swish(x).numpy(), helpers.np_hard_swish(wide),
                               rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(q_sigmoid(x).numpy(), helpers.np_q_sigmoid(wide),
                               rtol=1e-6, atol=1e-7)
    assert q_sigmoid(np.float32(10.0)).numpy() == pytest.approx(1.00002, abs=1e-6)  # 0.16667 * 6


def _randomise(model, seed):
    """Random values spread over the activations' kinks; returns them (float64)."""
    return helpers.assign_original_values(model, helpers.random_original_values(
        model, seed, weight_gain=1.5, scale=1.5))


def _np_conv_bn(x, values, scope, activation, stride=1, rate=1, depthwise=False):
    """'SAME' conv (or depthwise) -> inference batch norm (epsilon 1e-3) or bias -> act."""
    kernel = values[f"{scope}/{'depthwise_weights' if depthwise else 'weights'}"]
    x = helpers.np_pad_same(x, kernel.shape[0], stride, rate)
    if depthwise:
        y = helpers.np_depthwise_conv2d(x, kernel, stride, rate)
    else:
        y = helpers.np_conv2d(x, kernel, stride, rate)
    if f"{scope}/biases" in values:
        y = y + values[f"{scope}/biases"]
    else:
        y = helpers.np_batch_norm(y, *(values[f"{scope}/BatchNorm/{k}"] for k in
                                       ("gamma", "beta", "moving_mean", "moving_variance")),
                                  1e-3)
    return {None: lambda v: v, "relu": lambda v: np.maximum(v, 0.0),
            "hard_swish": helpers.np_hard_swish, "q_sigmoid": helpers.np_q_sigmoid}[activation](y)


def np_squeeze_excite(x, values, scope):
    """x * q_sigmoid(conv_b(relu(conv_b(mean_HW(x)))))."""
    gate = x.mean(axis=(1, 2), keepdims=True)
    gate = _np_conv_bn(gate, values, f"{scope}/squeeze_excite/Conv", "relu")
    gate = _np_conv_bn(gate, values, f"{scope}/squeeze_excite/Conv_1", "q_sigmoid")
    return x * gate


def np_expanded_conv(x, values, scope, stride, rate, activation, fused=False):
    """(depthwise output or None, block output) of the original's expanded conv."""
    net, depthwise = x.astype(np.float64), None
    if f"{scope}/expand/weights" in values:
        net = _np_conv_bn(net, values, f"{scope}/expand", activation,
                          stride=stride if fused else 1)
    if not fused:
        net = depthwise = _np_conv_bn(net, values, f"{scope}/depthwise", activation, stride,
                                      rate, depthwise=True)
    if f"{scope}/squeeze_excite/Conv/weights" in values:
        net = np_squeeze_excite(net, values, scope)
    net = _np_conv_bn(net, values, f"{scope}/project", None)
    if stride == 1 and net.shape[-1] == x.shape[-1]:
        net = net + x
    return depthwise, net


@pytest.mark.parametrize("size, in_depth, out_depth, expansion, stride, rate, squeeze", [
    (9, 8, 8, 24, 1, 1, 8),  # hard-swish + SE, residual
    (10, 8, 12, 32, 2, 1, 8),  # strided 'SAME' on an even size, SE, 5x5
    (7, 8, 8, 8, 1, 2, 8),  # no expansion, atrous depthwise, SE on the input's channels
])
def test_hard_swish_se_expanded_conv_matches_numpy(size, in_depth, out_depth, expansion,
                                                   stride, rate, squeeze):
    rng = np.random.default_rng(size)
    inputs = keras.Input((size, size, in_depth))
    endpoints = {}
    common = dict(explicit_padding=False, **mobilenet_blocks.BATCH_NORM)
    outputs = mobilenet_blocks.expanded_conv(
        inputs, out_depth, expansion, stride, rate, "net/ec", "layer_5", endpoints, common,
        4e-5, kernel_size=5, activation="hard_swish", squeeze_channels=squeeze)
    model = keras.Model(inputs, [outputs, endpoints["layer_5/depthwise_output"]])
    values = _randomise(model, size)
    assert values["net/ec/squeeze_excite/Conv/biases"].shape == (squeeze,)
    assert not any("squeeze_excite" in name and "BatchNorm" in name for name in values)
    x = rng.normal(0.0, 2.0, (2, size, size, in_depth)).astype(np.float32)
    got, got_depthwise = (t.numpy() for t in model(x, training=False))
    depthwise, want = np_expanded_conv(x, values, "net/ec", stride, rate, "hard_swish")
    assert np.abs(depthwise).max() > 3.0  # past hard-swish's upper kink
    np.testing.assert_allclose(got_depthwise, depthwise, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5 * np.abs(want).max())


@pytest.mark.parametrize("size, stride, in_depth, out_depth", [(10, 2, 8, 16), (9, 1, 8, 8)])
def test_fused_block_matches_numpy(size, stride, in_depth, out_depth):
    rng = np.random.default_rng(size)
    inputs = keras.Input((size, size, in_depth))
    endpoints = {}
    common = dict(explicit_padding=False, **mobilenet_blocks.BATCH_NORM)
    outputs = mobilenet_blocks.expanded_conv(
        inputs, out_depth, 32, stride, 1, "net/fused", "layer_3", endpoints, common, 4e-5,
        kernel_size=3, activation="relu", fused=True)
    assert "layer_3/depthwise_output" not in endpoints
    model = keras.Model(inputs, outputs)
    values = _randomise(model, size)
    assert values["net/fused/expand/weights"].shape == (3, 3, in_depth, 32)
    x = rng.normal(0.0, 2.0, (2, size, size, in_depth)).astype(np.float32)
    _, want = np_expanded_conv(x, values, "net/fused", stride, 1, "relu", fused=True)
    np.testing.assert_allclose(model(x, training=False).numpy(), want, rtol=1e-5,
                               atol=1e-5 * np.abs(want).max())
