"""Tests for the ResNet-v1 (beta) and MobileNetV2 backbones.

* variable names and shapes against the original's lists (the reference TSVs);
* output stride / atrous rate bookkeeping and decoder taps at 65x65;
* MobileNetV2 depth multiplier rounding;
* residual structure (Add layers, shortcut convolutions, subsampling pools);
* one bottleneck unit and one expanded conv against independent NumPy implementations.
"""

from __future__ import annotations

import functools
import math

import keras
import numpy as np
import pytest

import helpers
from deeplab_tf import ModelConfig
from deeplab_tf.modeling.backbones import get_backbone, mobilenet_v2, resnet_v1
from deeplab_tf.modeling.layers.conv_bn import ConvBN
from deeplab_tf.modeling.layers.original_layer import original_variable_map
from deeplab_tf.modeling.layers.residual_add import ResidualAdd
from deeplab_tf.modeling.layers.normalization import Normalization

SIZE = 65


def _shapes(model):
    return {name: tuple(v.shape) for name, v in original_variable_map(model).items()}


@functools.lru_cache(maxsize=None)
def _backbone(variant, size=SIZE, **config_kwargs):
    """(model, config, endpoint names): images -> [features] + every endpoint."""
    config = ModelConfig(model_variant=variant, **config_kwargs)
    spec = get_backbone(variant)
    images = keras.Input((size, size, 3))
    features, endpoints = spec.builder(Normalization(spec.normalization)(images), config,
                                       variant)
    names = sorted(endpoints)
    model = keras.Model(images, [features] + [endpoints[n] for n in names])
    return model, config, names


def _resnet(output_stride):
    """The ResNet most tests share (one build per output stride)."""
    return _backbone("resnet_v1_50_beta", output_stride=output_stride, multi_grid=(1, 2, 4))


def _layers(model, cls):
    return [layer for layer in model._flatten_layers(include_self=False) if isinstance(layer, cls)]


def _conv_layers(model):
    return {layer.scope: layer for layer in _layers(model, ConvBN)}


# ---------------------------------------------------------------------------------------------
# Names and shapes against the original's variable lists.

_REFERENCE_CONFIGS = {
    "resnet101beta_os16_dec.tsv": dict(
        model_variant="resnet_v1_101_beta", output_stride=16, atrous_rates=(6, 12, 18),
        decoder_output_stride=(4,), multi_grid=(1, 2, 4), num_classes=21),
    "mobilenetv2_os8.tsv": dict(model_variant="mobilenet_v2", output_stride=8, num_classes=21),
}
# From the reference README: all variables, batch norm moving statistics included.
_REFERENCE_PARAMS = {"resnet101beta_os16_dec.tsv": 45_935_365, "mobilenetv2_os8.tsv": 2_146_645}


@pytest.mark.parametrize("filename", sorted(_REFERENCE_CONFIGS))
def test_backbone_variables_match_original(filename):
    want = helpers.reference_variables(filename)
    config = _REFERENCE_CONFIGS[filename]
    variant = config["model_variant"]
    scope = get_backbone(variant).scope
    kwargs = {k: v for k, v in config.items() if k in ("output_stride", "multi_grid")}
    model, _, names = _backbone(variant, **kwargs)
    got = _shapes(model)
    want = {k: v for k, v in want.items() if k.startswith(scope + "/")}
    assert sorted(set(want) - set(got)) == []
    assert sorted(set(got) - set(want)) == []
    assert {k: v for k, v in got.items() if want[k] != v} == {}
    for tap in get_backbone(variant).decoder_taps.values():
        assert tap in names


@pytest.mark.parametrize("filename", sorted(_REFERENCE_CONFIGS))
def test_full_model_variables_match_original(filename):
    model_lib = pytest.importorskip("deeplab_tf.model")
    want = helpers.reference_variables(filename)
    model = model_lib.build_model(ModelConfig(**_REFERENCE_CONFIGS[filename]))
    assert _shapes(model) == want
    assert model.count_params() == _REFERENCE_PARAMS[filename]


def test_resnet_50_variable_names():
    model, _, _ = _backbone("resnet_v1_50", output_stride=16)
    got = _shapes(model)
    assert got["resnet_v1_50/conv1/weights"] == (7, 7, 3, 64)
    assert "resnet_v1_50/conv1_1/weights" not in got
    assert got["resnet_v1_50/block1/unit_1/bottleneck_v1/shortcut/weights"] == (1, 1, 64, 256)
    assert got["resnet_v1_50/block3/unit_6/bottleneck_v1/conv3/weights"] == (1, 1, 256, 1024)
    assert "resnet_v1_50/block3/unit_7/bottleneck_v1/conv1/weights" not in got
    shortcuts = sorted(k for k in got if k.endswith("shortcut/weights"))
    assert shortcuts == [f"resnet_v1_50/block{b}/unit_1/bottleneck_v1/shortcut/weights"
                         for b in (1, 2, 3, 4)]
    # 1 root conv + 16 units x 3 convs + 4 shortcuts, 5 variables each.
    assert len(got) == (1 + 16 * 3 + 4) * 5


def test_unknown_variants_raise():
    images = keras.Input((SIZE, SIZE, 3))
    with pytest.raises(ValueError, match="variant="):
        resnet_v1.build(images, ModelConfig(model_variant="resnet_v1_50"), "resnet_v1_152")
    with pytest.raises(ValueError, match="variant="):
        mobilenet_v2.build(images, ModelConfig(model_variant="mobilenet_v2"), "mobilenet_v3")


# ---------------------------------------------------------------------------------------------
# Output stride, atrous rates and decoder taps.

def _size_at(stride):
    return (SIZE - 1) // stride + 1  # the original's scale_dimension(65, 1 / stride)


_STRIDE_CASES = [("resnet_v1_50_beta", 8), ("resnet_v1_50_beta", 16), ("resnet_v1_50_beta", 32),
                 ("resnet_v1_50", 16), ("mobilenet_v2", 8), ("mobilenet_v2", 16),
                 ("mobilenet_v2", 32)]


@pytest.mark.parametrize("variant, output_stride", _STRIDE_CASES)
def test_output_stride_and_taps(variant, output_stride):
    if variant == "resnet_v1_50_beta":
        model, _, names = _resnet(output_stride)
    else:
        model, _, names = _backbone(variant, output_stride=output_stride)
    shapes = dict(zip(["features"] + names, (tuple(t.shape) for t in model.outputs)))
    channels = 320 if variant == "mobilenet_v2" else 2048
    assert shapes["features"] == (None, _size_at(output_stride), _size_at(output_stride),
                                  channels)
    for tap_stride, tap in get_backbone(variant).decoder_taps.items():
        size = _size_at(min(tap_stride, output_stride))
        assert shapes[tap][1:3] == (size, size), tap


def test_forward_pass_dilated_units_match_numpy():
    """The whole backbones run with random weights; the units past the output stride (stride
    1, atrous) and the last strided unit give the NumPy reference's numbers from the model's
    own input to that unit, with the stride and rate the original would use."""
    rng = np.random.default_rng(0)
    images = rng.uniform(0, 255, (1, SIZE, SIZE, 3)).astype("float32")
    # ResNet-50 beta at output stride 8, multi_grid (1, 2, 4): block3 rate 2, block4 4/8/16.
    model, _, names = _resnet(8)
    values = _randomise(model, rng, deep=True)
    out = dict(zip(["features"] + names, (t.numpy() for t in model(images, training=False))))
    for source, unit, stride, rate in [
            ("block1", "block2/unit_1", 1, 1), ("block2/unit_4/bottleneck_v1", "block3/unit_1", 1, 2),
            ("block3", "block4/unit_1", 1, 4), ("block4/unit_2/bottleneck_v1", "block4/unit_3", 1, 16)]:
        _, want = _np_bottleneck(out[source], values, f"resnet_v1_50/{unit}/bottleneck_v1",
                                 stride, rate, identity=unit.endswith(("_2", "_3")))
        got = out[f"{unit}/bottleneck_v1"]
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * np.abs(want).max())
    np.testing.assert_array_equal(out["features"], out["block4"])
    assert np.isfinite(out["features"]).all() and 1e-3 < np.abs(out["features"]).max() < 1e4
    # block1's last unit strides by 2 (output stride 4 -> 8): a subsampled identity shortcut.
    _, want = _np_bottleneck(out["block1/unit_2/bottleneck_v1"], values,
                             "resnet_v1_50/block1/unit_3/bottleneck_v1", 2, 1, identity=True)
    np.testing.assert_allclose(out["block1/unit_3/bottleneck_v1"], want, rtol=1e-4,
                               atol=1e-4 * np.abs(want).max())

    # MobileNetV2 x0.25 at output stride 8: layer_8 (stride 2 skipped) rate 1, then rate 2,
    # layer_15's stride skipped: rate 2, layer_16.. rate 4.
    model, _, names = _backbone("mobilenet_v2", output_stride=8, depth_multiplier=0.25)
    values = _randomise(model, rng, deep=True)
    out = dict(zip(["features"] + names, (t.numpy() for t in model(images, training=False))))
    for layer, stride, rate in [(5, 2, 1), (8, 1, 1), (9, 1, 2), (15, 1, 2), (16, 1, 4), (18, 1, 4)]:
        scope = f"MobilenetV2/expanded_conv_{layer - 2}"
        depthwise, want = _np_expanded_conv(out[f"layer_{layer - 1}"], values, scope, stride, rate)
        tolerance = dict(rtol=1e-4, atol=1e-4 * max(np.abs(want).max(), 1.0))
        np.testing.assert_allclose(out[f"layer_{layer}/depthwise_output"], depthwise, **tolerance)
        np.testing.assert_allclose(out[f"layer_{layer}"], want, **tolerance)
    np.testing.assert_array_equal(out["features"], out["layer_18"])
    assert np.isfinite(out["features"]).all() and 1e-3 < np.abs(out["features"]).max() < 1e4


@pytest.mark.parametrize("output_stride, block3_rate, block4_rates", [
    (8, 2, (4, 8, 16)), (16, 1, (2, 4, 8)), (32, 1, (1, 2, 4))])
def test_resnet_atrous_rates(output_stride, block3_rate, block4_rates):
    model, _, _ = _resnet(output_stride)
    convs = _conv_layers(model)
    unit = "resnet_v1_50/block{}/unit_{}/bottleneck_v1/conv2"
    assert [convs[unit.format(3, u)].dilation_rate for u in range(1, 7)] == [block3_rate] * 6
    assert tuple(convs[unit.format(4, u)].dilation_rate for u in (1, 2, 3)) == block4_rates
    assert [convs[unit.format(b, 3 if b == 1 else 4)].strides for b in (1, 2)] == [
        2, 2 if output_stride > 8 else 1]
    assert convs[unit.format(3, 6)].strides == (2 if output_stride == 32 else 1)
    # The root: conv2d_same's fixed padding for the strided convolutions.
    assert convs["resnet_v1_50/conv1_1"].explicit_padding


@pytest.mark.parametrize("output_stride, rates", [
    (8, [1] * 7 + [2] * 7 + [4] * 3), (16, [1] * 14 + [2] * 3), (32, [1] * 17)])
def test_mobilenet_atrous_rates(output_stride, rates):
    model, _, _ = _backbone("mobilenet_v2", output_stride=output_stride)
    convs = _conv_layers(model)
    depthwise = [convs[f"MobilenetV2/expanded_conv{f'_{i}' if i else ''}/depthwise"]
                 for i in range(17)]
    assert [c.dilation_rate for c in depthwise] == rates
    assert all(not c.explicit_padding for c in convs.values())
    strided = [i + 2 for i, c in enumerate(depthwise) if c.strides == 2]  # layer numbers
    assert strided == [3, 5, 8, 15][:{8: 2, 16: 3, 32: 4}[output_stride]]


# ---------------------------------------------------------------------------------------------
# Depth multiplier, residual structure, regularisation and batch norm settings.

def test_mobilenet_depth_multiplier_half():
    model, _, _ = _backbone("mobilenet_v2", output_stride=16, depth_multiplier=0.5)
    got = _shapes(model)
    assert got["MobilenetV2/Conv/weights"] == (3, 3, 3, 16)
    assert "MobilenetV2/expanded_conv/expand/weights" not in got
    assert got["MobilenetV2/expanded_conv/depthwise/depthwise_weights"] == (3, 3, 16, 1)
    # (expansion, output) of expanded_conv .. expanded_conv_16; divisible_by 1 for the
    # outputs, 8 for the expansions.
    expected = [(16, 8), (48, 12), (72, 12), (72, 16), (96, 16), (96, 16), (96, 32),
                (192, 32), (192, 32), (192, 32), (192, 48), (288, 48), (288, 48), (288, 80),
                (480, 80), (480, 80), (480, 160)]
    previous = 16
    for i, (expansion, output) in enumerate(expected):
        scope = f"MobilenetV2/expanded_conv{f'_{i}' if i else ''}"
        if i:
            assert got[f"{scope}/expand/weights"] == (1, 1, previous, expansion)
        assert got[f"{scope}/depthwise/depthwise_weights"] == (3, 3, expansion, 1)
        assert got[f"{scope}/project/weights"] == (1, 1, expansion, output)
        previous = output
    assert model.outputs[0].shape[-1] == 160
    # An explicit divisible_by overrides the default of 1 for multipliers other than 1.0.
    model8, _, _ = _backbone("mobilenet_v2", size=None, depth_multiplier=0.5, divisible_by=8)
    assert _shapes(model8)["MobilenetV2/expanded_conv_1/project/weights"] == (1, 1, 48, 16)


def test_make_divisible():
    assert mobilenet_v2.make_divisible(12, 8) == 16
    assert mobilenet_v2.make_divisible(20, 8) == 24  # rounds half up
    assert mobilenet_v2.make_divisible(11.2, 8) == 16  # 8 would lose more than 10%
    assert mobilenet_v2.make_divisible(3, 8, 8) == 8
    assert mobilenet_v2.make_divisible(3.5, 1, 1) == 4


@pytest.mark.parametrize("output_stride, subsample_pools", [(8, 1), (16, 2), (32, 3)])
def test_resnet_residual_structure(output_stride, subsample_pools):
    model, _, _ = _resnet(output_stride)
    assert len(_layers(model, ResidualAdd)) == 3 + 4 + 6 + 3
    assert len(_layers(model, keras.layers.ReLU)) == 16
    pools = _layers(model, keras.layers.MaxPooling2D)
    assert len(pools) == 1 + subsample_pools  # pool1 + identity shortcuts of strided units
    assert sorted(p.name for p in pools)[-1] == "resnet_v1_50.pool1"
    shortcuts = [s for s in _conv_layers(model) if s.endswith("shortcut")]
    assert len(shortcuts) == 4


def test_mobilenet_residual_structure():
    model, _, _ = _backbone("mobilenet_v2", output_stride=8)
    adds = sorted(layer.name for layer in _layers(model, ResidualAdd))
    layers = [4, 6, 7, 9, 10, 11, 13, 14, 16, 17]  # stride 1, equal input/output depths
    assert adds == sorted(f"MobilenetV2.expanded_conv_{n - 2}.add" for n in layers)


def test_regularisation_initialisers_and_batch_norm():
    resnet, config, _ = _resnet(16)
    for scope, conv in _conv_layers(resnet).items():
        assert conv.weight_decay == config.weight_decay, scope
        assert (conv.bn_momentum, conv.bn_epsilon) == (0.95, 1e-5), scope
        fan_in = conv.kernel_size ** 2 * conv.conv.kernel.shape[2]
        assert conv.kernel_stddev == pytest.approx(math.sqrt(1.3 * 2.0 / fan_in)), scope
    mobilenet, config, _ = _backbone("mobilenet_v2", output_stride=16)
    for scope, conv in _conv_layers(mobilenet).items():
        want = 0.0 if conv.depthwise else config.weight_decay
        assert conv.weight_decay == want, scope
        assert (conv.bn_momentum, conv.bn_epsilon, conv.kernel_stddev) == (0.997, 1e-3, 0.09)
        assert conv.activation == (None if scope.endswith("project") else "relu6"), scope


def test_serialisation_round_trip():
    model, _, _ = _backbone("mobilenet_v2", output_stride=16, depth_multiplier=0.5)
    clone = keras.Model.from_config(model.get_config())
    clone.set_weights(model.get_weights())
    images = np.random.default_rng(1).uniform(0, 255, (1, SIZE, SIZE, 3)).astype("float32")
    for a, b in zip(model(images, training=False), clone(images, training=False)):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-6, atol=1e-6)


# ---------------------------------------------------------------------------------------------
# Numbers against NumPy.

def _randomise(model, rng, deep=False):
    """Random kernels and batch norm statistics; returns {original name: numpy value}.

    ``deep``: kernels scaled by 1/sqrt(fan in) and small betas, so that activations stay of
    order one through a whole backbone.
    """
    values = {}
    for name, variable in original_variable_map(model).items():
        shape = tuple(variable.shape)
        if deep and name.endswith("weights"):
            fan_in = np.prod(shape[:-1]) if "depthwise" not in name else np.prod(shape[:2])
            value = rng.normal(0.0, 1.0 / np.sqrt(fan_in), shape)
        elif deep and name.endswith(("beta", "moving_mean")):
            value = rng.normal(0.0, 0.2, shape)
        elif name.endswith(("gamma", "moving_variance")):
            value = rng.uniform(0.5, 1.5, shape)
        elif name.endswith("beta"):
            value = rng.normal(0.0, 2.0, shape)  # some activations beyond ReLU6's 6
        else:
            value = rng.normal(0.0, 0.5, shape)
        variable.assign(value.astype("float32"))
        values[name] = variable.numpy().astype("float64")
    return values


def _np_conv_bn(x, values, scope, epsilon, activation, stride=1, rate=1, padding=None,
                depthwise=False):
    """Conv (padding None, "fixed" or "same") -> inference batch norm -> activation."""
    kernel_size = values[f"{scope}/{'depthwise_weights' if depthwise else 'weights'}"].shape[0]
    x = x.astype("float64")
    if padding == "fixed":
        x = helpers.np_pad_fixed(x, kernel_size, rate)
    elif padding == "same":
        x = helpers.np_pad_same(x, kernel_size, stride, rate)
    if depthwise:
        y = helpers.np_depthwise_conv2d(x, values[f"{scope}/depthwise_weights"], stride, rate)
    else:
        y = helpers.np_conv2d(x, values[f"{scope}/weights"], stride, rate)
    y = helpers.np_batch_norm(y, *(values[f"{scope}/BatchNorm/{k}"] for k in
                                   ("gamma", "beta", "moving_mean", "moving_variance")),
                              epsilon)
    if activation == "relu":
        return np.maximum(y, 0.0)
    if activation == "relu6":
        return np.clip(y, 0.0, 6.0)
    return y


def _np_bottleneck(x, values, prefix, stride, rate, identity):
    """NumPy bottleneck_v1: (conv3 output, unit output)."""
    conv_bn = functools.partial(_np_conv_bn, values=values, epsilon=1e-5)
    if identity:
        shortcut = x[:, ::stride, ::stride, :].astype("float64")
    else:
        shortcut = conv_bn(x, scope=f"{prefix}/shortcut", activation=None, stride=stride)
    residual = conv_bn(x, scope=f"{prefix}/conv1", activation="relu")
    residual = conv_bn(residual, scope=f"{prefix}/conv2", activation="relu", stride=stride,
                       rate=rate, padding="fixed" if stride > 1 else "same")
    residual = conv_bn(residual, scope=f"{prefix}/conv3", activation=None)
    return residual, np.maximum(shortcut + residual, 0.0)


def _np_expanded_conv(x, values, scope, stride, rate):
    """NumPy expanded_conv: (depthwise output, block output)."""
    conv_bn = functools.partial(_np_conv_bn, values=values, epsilon=1e-3)
    net = x.astype("float64")
    if f"{scope}/expand/weights" in values:
        net = conv_bn(net, scope=f"{scope}/expand", activation="relu6")
    depthwise = conv_bn(net, scope=f"{scope}/depthwise", activation="relu6", stride=stride,
                        rate=rate, padding="same", depthwise=True)
    net = conv_bn(depthwise, scope=f"{scope}/project", activation=None)
    if stride == 1 and net.shape[-1] == x.shape[-1]:
        net = net + x
    return depthwise, net


@pytest.mark.parametrize("size, in_depth, depth, stride, rate", [
    (10, 4, 8, 2, 1),  # projection shortcut; even size: fixed padding differs from 'SAME'
    (9, 8, 8, 2, 1),  # identity shortcut subsampled by a 1x1 max pool
    (7, 8, 8, 1, 2),  # identity shortcut, atrous conv2
])
def test_bottleneck_matches_numpy(size, in_depth, depth, stride, rate):
    rng = np.random.default_rng(size)
    inputs = keras.Input((size, size, in_depth))
    endpoints = {}
    scope = "block1/unit_1/bottleneck_v1"
    outputs = resnet_v1.bottleneck(inputs, depth, 3, stride, rate, scope, "net", endpoints,
                                   dict(resnet_v1.BATCH_NORM))
    model = keras.Model(inputs, [outputs, endpoints[f"{scope}/conv3"]])
    values = _randomise(model, rng)
    x = rng.normal(0.0, 2.0, (2, size, size, in_depth)).astype("float32")
    got, got_conv3 = (t.numpy() for t in model(x, training=False))

    residual, want = _np_bottleneck(x, values, f"net/{scope}", stride, rate,
                                    identity=in_depth == depth)
    np.testing.assert_allclose(got_conv3, residual, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("size, in_depth, out_depth, expansion, stride, rate", [
    (9, 4, 4, 24, 1, 1),  # expand, residual
    (10, 4, 6, 24, 2, 1),  # strided 'SAME' on an even size (pads 0 before, 1 after)
    (9, 4, 4, 24, 2, 1),  # strided with equal depths: no residual
    (7, 4, 4, 4, 1, 2),  # no expansion (factor 1), atrous depthwise, residual
])
def test_expanded_conv_matches_numpy(size, in_depth, out_depth, expansion, stride, rate):
    rng = np.random.default_rng(size)
    inputs = keras.Input((size, size, in_depth))
    endpoints = {}
    common = dict(explicit_padding=False, **mobilenet_v2.BATCH_NORM)
    outputs = mobilenet_v2.expanded_conv(inputs, out_depth, expansion, stride, rate, "net/ec",
                                         "layer_3", endpoints, common, weight_decay=4e-5)
    model = keras.Model(inputs, [outputs, endpoints["layer_3/depthwise_output"]])
    values = _randomise(model, rng)
    x = rng.normal(0.0, 2.0, (2, size, size, in_depth)).astype("float32")
    got, got_depthwise = (t.numpy() for t in model(x, training=False))

    if expansion <= in_depth:
        assert "net/ec/expand/weights" not in values
    depthwise, want = _np_expanded_conv(x, values, "net/ec", stride, rate)
    np.testing.assert_allclose(got_depthwise, depthwise, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_dilated_units_schedule():
    from deeplab_tf.modeling.backbones.strides import dilated_units

    # ResNet-50 units after the stride-4 root: block strides on each block's last unit.
    resnet = [1, 1, 2] + [1, 1, 1, 2] + [1] * 5 + [2] + [1, 1, 1]
    at8 = dilated_units(resnet, 8, input_stride=4)
    assert [s for s, _ in at8] == [1, 1, 2] + [1] * 13
    assert [r for _, r in at8] == [1] * 7 + [2] * 6 + [4] * 3
    at16 = dilated_units(resnet, 16, input_stride=4)
    assert [s for s, _ in at16] == [1, 1, 2, 1, 1, 1, 2] + [1] * 9
    assert [r for _, r in at16] == [1] * 13 + [2] * 3
    assert dilated_units(resnet, 32, input_stride=4) == [(s, 1) for s in resnet]
    for bad in (12, 64):
        with pytest.raises(ValueError, match=f"output_stride={bad}"):
            dilated_units(resnet, bad, input_stride=4)
    # MobileNetV2 does not check: an unreachable stride just strides all the way.
    assert dilated_units([2, 2], 64, check=False) == [(2, 1), (2, 1)]
