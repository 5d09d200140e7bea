"""The original's switches of the heads and backbones: use_bounded_activation (an Xception
unit against NumPy), aspp_with_batch_norm=false (DeepLab-v2's summed logits against NumPy),
prediction_with_upsampled_logits=false (the one inference path against NumPy), the
resnet_v1_18 variants, ConvBN's new options, and their configuration errors."""

import keras
import numpy as np
import pytest

import helpers
from deeplab_tf import ModelConfig, build_model, inference
from deeplab_tf.config import EvalConfig
from deeplab_tf.errors import ConfigError
from deeplab_tf.modeling.backbones import BACKBONES, mean_pixel, xception
from deeplab_tf.modeling.heads.logits import logits
from deeplab_tf.modeling.layers.conv_bn import ConvBN
from deeplab_tf.modeling.layers.normalization import Normalization
from deeplab_tf.modeling.layers.original_layer import iter_original_layers, original_variable_map


def _randomise(model, rng, scale=0.3):
    values = {}
    for name, var in original_variable_map(model).items():
        value = (rng.uniform(0.5, 1.5, var.shape) if name.endswith(("variance", "gamma"))
                 else rng.normal(0.0, scale, var.shape)).astype("float32")
        var.assign(value)
        values[name] = value.astype(np.float64)
    return values


def _np_bn(x, w, scope):
    return helpers.np_batch_norm(x, *(w[f"{scope}/BatchNorm/{k}"] for k in
                                      ("gamma", "beta", "moving_mean", "moving_variance")), 1e-3)


def _np_bounded_unit(x, w, scope, depths, stride, skip):
    """The original's bounded xception_module: ReLU6 on each separable conv's input, both
    batch norms clipped to [-6, 6], the strided depthwise 'SAME'; clipped terms, ReLU6."""
    clip = lambda t: np.clip(t, -6, 6)  # noqa: E731
    residual = x
    for i in range(3):
        s = stride if i == 2 else 1
        sep = f"{scope}/separable_conv{i + 1}"
        y = helpers.np_pad_same(np.clip(residual, 0, 6), 3, s, 1)
        y = clip(_np_bn(helpers.np_depthwise_conv2d(y, w[f"{sep}_depthwise/depthwise_weights"], s),
                        w, f"{sep}_depthwise"))
        residual = clip(_np_bn(helpers.np_conv2d(y, w[f"{sep}_pointwise/weights"]), w,
                               f"{sep}_pointwise"))
    shortcut = x
    if skip == "conv":
        shortcut = _np_bn(helpers.np_conv2d(x, w[f"{scope}/shortcut/weights"], stride), w,
                          f"{scope}/shortcut")
    return np.clip(clip(residual) + clip(shortcut), 0, 6)


@pytest.mark.parametrize("skip,stride,depths", [("conv", 2, (4, 5, 6)), ("sum", 1, (6, 6, 6))])
def test_bounded_xception_unit_matches_numpy(skip, stride, depths):
    """Even input (10x12): a strided 'SAME' depthwise pads (0, 1), the fixed padding (1, 1).
    Tolerance 1e-4 (float32 against float64)."""
    config = ModelConfig(model_variant="xception_41", use_bounded_activation=True)
    common = dict(weight_decay=0.0, sync_batch_norm=False, batch_norm_trainable=True,
                  **xception.BATCH_NORM)
    inputs = keras.Input((10, 12, 6))
    endpoints = {}
    outputs = xception._xception_module(inputs, depths, skip, False, stride, [1, 1, 1],
                                        "block/unit_1/xception_module", "xception_41",
                                        endpoints, common, config.use_bounded_activation)
    model = keras.Model(inputs, outputs)
    rng = np.random.default_rng(0)
    w = _randomise(model, rng, scale=1.0)
    x = rng.normal(0, 4, size=(2, 10, 12, 6)).astype("float32")
    if skip == "sum":  # in the network, the previous unit's ReLU6 output
        x = np.clip(x, 0, 6)
    got = model(x, training=False).numpy()
    want = _np_bounded_unit(x.astype(np.float64), w, "xception_41/block/unit_1/xception_module",
                            depths, stride, skip)
    assert np.mean(np.abs(want) >= 6.0 - 1e-9) > 0.01  # the clipping is exercised
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


def test_bounded_activation_adds_no_variables_and_relu6_heads():
    """The heads' activations (the backbone's: the NumPy tests above and, end to end,
    test_original_numpy_reference's bounded case)."""
    plain = build_model(helpers.tiny_config(atrous_rates=(2,)))
    bounded = build_model(helpers.tiny_config(atrous_rates=(2,), use_bounded_activation=True))
    assert ({n: v.shape for n, v in original_variable_map(plain).items()}
            == {n: v.shape for n, v in original_variable_map(bounded).items()})
    activations = {layer.scope: layer.activation for layer in iter_original_layers(bounded)
                   if isinstance(layer, ConvBN)}
    assert activations["image_pooling"] == "relu"  # kept, as the original
    for scope in ("aspp0", "aspp1_depthwise", "aspp1_pointwise", "concat_projection",
                  "decoder/feature_projection0", "decoder/decoder_conv0_pointwise"):
        assert activations[scope] == "relu6", scope
    assert activations["logits/semantic"] is None
    # MobileNetV2 ignores the option, as the original's.
    assert activations["MobilenetV2/Conv"] == "relu6"
    assert activations["MobilenetV2/expanded_conv/project"] is None


@pytest.mark.parametrize("rates,kernel", [((1, 2, 3), 3), ((2,), 1), ((), 1)])
def test_deeplab_v2_logits_match_numpy(rates, kernel):
    """aspp_with_batch_norm=false: one biased convolution per rate, summed (no batch norm)."""
    config = ModelConfig(model_variant="xception_41", num_classes=3, atrous_rates=rates,
                         aspp_with_batch_norm=False, logits_kernel_size=kernel)
    features = keras.Input((None, None, 5))
    model = keras.Model(features, logits(features, config))
    rng = np.random.default_rng(1)
    w = _randomise(model, rng)
    suffixes = [""] + [f"_{i}" for i in range(1, len(rates))]
    assert sorted(w) == sorted(f"logits/semantic{s}/{k}" for s in suffixes
                               for k in ("weights", "biases"))
    x = rng.normal(size=(2, 9, 11, 5)).astype("float32")
    want = sum(helpers.np_conv2d(helpers.np_pad_same(x, kernel, 1, rate),
                                 w[f"logits/semantic{s}/weights"], 1, rate)
               + w[f"logits/semantic{s}/biases"] for s, rate in zip(suffixes, rates or (1,)))
    np.testing.assert_allclose(model(x).numpy(), want, rtol=1e-5, atol=1e-5)


def test_without_aspp_the_backbone_feeds_the_logits():
    config = helpers.tiny_config(aspp_with_batch_norm=False, atrous_rates=(6, 12),
                                 decoder_output_stride=())
    names = set(original_variable_map(build_model(config)))
    assert not any(n.startswith(("aspp", "image_pooling", "concat_projection")) for n in names)
    assert {"logits/semantic/weights", "logits/semantic_1/biases"} <= names


@pytest.mark.parametrize("upsampled", [True, False])
def test_prediction_with_upsampled_logits_in_the_inference_path(upsampled):
    """Single pass: argmax of the upsampled logits, or (false) argmax at logits resolution
    resized nearest-neighbour with align corners; probabilities softmax-then-bilinear."""
    config = helpers.tiny_config(decoder_output_stride=(), output_stride=8,
                                 prediction_with_upsampled_logits=upsampled)
    model = build_model(config)
    rng = np.random.default_rng(2)
    _randomise(model, rng)
    images = rng.uniform(0, 255, (2, 33, 41, 3)).astype("float32")  # 8k + 1: no padding
    spec = inference.InferenceSpec.from_configs(config, EvalConfig(eval_crop_size=None))
    assert spec.prediction_with_upsampled_logits == upsampled
    got = inference.predict(model, images, spec)
    raw = model(images, training=False).numpy().astype(np.float64)
    softmax = np.exp(raw - raw.max(-1, keepdims=True))
    softmax /= softmax.sum(-1, keepdims=True)
    if upsampled:
        up = helpers.np_resize_bilinear_align_corners(raw, 33, 41)
        labels = up.argmax(-1)
    else:
        labels = helpers.np_resize_nearest_align_corners(raw.argmax(-1), 33, 41)
        probabilities = helpers.np_resize_bilinear_align_corners(softmax, 33, 41)
        np.testing.assert_allclose(got["probabilities"].numpy(), probabilities, atol=1e-5)
    np.testing.assert_array_equal(got["labels"].numpy(), labels)


@pytest.mark.parametrize("in_size,out_size", [((5, 7), (33, 41)), ((9, 9), (65, 17)),
                                              ((17, 4), (17, 1)), ((1, 3), (4, 9))])
def test_resize_nearest_is_tensorflows_align_corners_nearest(in_size, out_size):
    import tensorflow as tf

    from deeplab_tf.modeling.layers.resize import resize_nearest

    labels = np.random.default_rng(4).integers(0, 50, (2, *in_size)).astype(np.int32)
    got = resize_nearest(tf.constant(labels), out_size).numpy()
    np.testing.assert_array_equal(got, helpers.np_resize_nearest_align_corners(labels, *out_size))
    ops = tf.raw_ops.ResizeNearestNeighbor(images=labels[..., None], size=out_size,
                                           align_corners=True, half_pixel_centers=False)
    np.testing.assert_array_equal(got, ops.numpy()[..., 0])


def test_resnet_v1_18_variants():
    """Backbone parameters (BN statistics included) and the original's names; its padding
    value is 127.5 although its input is mean-subtracted (the original's mean_pixel)."""
    for variant, params in (("resnet_v1_18", 11_186_112), ("resnet_v1_18_beta", 11_167_920)):
        spec = BACKBONES[variant]
        config = ModelConfig(model_variant=variant, output_stride=16, multi_grid=(1, 2))
        images = keras.Input((65, 65, 3))
        features, endpoints = spec.builder(Normalization(spec.normalization)(images), config,
                                           variant)
        model = keras.Model(images, [features] + [endpoints[spec.decoder_taps[s]] for s in (4, 8)])
        assert model.count_params() == params
        names = original_variable_map(model)
        assert features.shape[1:] == (5, 5, 512)
        assert [t.shape[1] for t in model.outputs[1:]] == [17, 9]
        beta = variant.endswith("beta")
        assert ("resnet_v1_18/conv1_1/weights" in names) == beta
        assert ("resnet_v1_18/block1/unit_1/lite_bottleneck_v1/shortcut/weights" in names) == beta
        assert tuple(names["resnet_v1_18/block4/unit_2/lite_bottleneck_v1/conv2/weights"].shape) \
            == (3, 3, 512, 512)
    assert mean_pixel("resnet_v1_18") == (127.5, 127.5, 127.5)
    assert BACKBONES["resnet_v1_18"].normalization == "subtract_imagenet_mean"
    assert mean_pixel("resnet_v1_50") == Normalization.MEAN_RGB


@pytest.mark.parametrize("kwargs,message", [
    (dict(logits_kernel_size=3, atrous_rates=(6,)),
     "logits_kernel_size other than 1 needs aspp_with_batch_norm=false and atrous_rates"),
    (dict(logits_kernel_size=3, aspp_with_batch_norm=False),
     "logits_kernel_size other than 1 needs"),
    (dict(logits_kernel_size=0), "logits_kernel_size must be >= 1"),
    (dict(model_variant="resnet_v1_18", multi_grid=(1, 2, 4)),
     r"multi_grid must have 2 values for resnet_v1_18. Received: multi_grid=\[1, 2, 4\]"),
])
def test_config_errors(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        ModelConfig(**kwargs)


def test_conv_bn_new_options_round_trip():
    layer = ConvBN(4, (3, 5), dilation_rate=(1, 2), activation="clip6", scope="net/conv0",
                   bn_scope="net/conv0_bn",
                   kernel_initializer=keras.initializers.VarianceScaling(1 / 3, "fan_in",
                                                                         "uniform"))
    x = np.random.default_rng(3).normal(0, 20, size=(1, 9, 9, 3)).astype("float32")
    y = layer(x, training=False).numpy()
    assert np.abs(y).max() <= 6.0
    assert sorted(layer.original_variables()) == [
        "net/conv0/weights", "net/conv0_bn/beta", "net/conv0_bn/gamma", "net/conv0_bn/moving_mean",
        "net/conv0_bn/moving_variance"]
    clone = ConvBN.from_config(layer.get_config())
    clone(x)
    clone.set_weights(layer.get_weights())
    assert clone.get_config() == layer.get_config()
    np.testing.assert_allclose(clone(x, training=False).numpy(), y, rtol=1e-6)
    layer.fold_batch_norm()
    np.testing.assert_allclose(layer(x, training=False).numpy(), y, rtol=1e-5, atol=1e-5)
