"""The quantization-aware building blocks against NumPy: RangeQuantizer (last value, the
zero-debiased moving average), ConvBN's folded quantized forward in training (batch
statistics, the original's correction) and inference, the residual add, the quantized input
normalisation; the switch that keeps training float; serialisation round trips."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import helpers
from deeplab_tf.modeling.layers.conv_bn import ConvBN
from deeplab_tf.modeling.layers.normalization import Normalization
from deeplab_tf.modeling.layers.quantize import (RangeQuantizer, quantization_scope,
                                                 set_quantization_active)
from deeplab_tf.modeling.layers.residual_add import ResidualAdd
from deeplab_tf.modeling.layers.separable_conv_bn import SeparableConvBN

np_fq = helpers.np_fake_quant


def _np_range(x, axes=None, symmetric=False):
    low = np.minimum(x.min(axis=axes), 0.0)
    high = np.maximum(x.max(axis=axes), 0.0)
    if symmetric:
        high = np.maximum(-low, high)
        low = -high
    return low, high


def test_moving_average_range_is_the_zero_debiased_average_of_batch_ranges():
    rng = np.random.default_rng(0)
    quantizer = RangeQuantizer("moving_average", scope="block/act_quant", ema_decay=0.9)
    batches = [rng.normal(s, 1.0 + s, (2, 4, 4, 3)).astype("float32") for s in (0.0, 1.0, 3.0)]
    biased_low = biased_high = 0.0
    for step, batch in enumerate(batches, start=1):
        out = quantizer(batch, training=True).numpy()
        low, high = _np_range(batch)
        biased_low = 0.9 * biased_low + 0.1 * low
        biased_high = 0.9 * biased_high + 0.1 * high
        want_low, want_high = biased_low / (1 - 0.9 ** step), biased_high / (1 - 0.9 ** step)
        np.testing.assert_allclose([quantizer.min.numpy(), quantizer.max.numpy()],
                                   [want_low, want_high], rtol=1e-5)
        # The batch is quantized with the range that includes it (updated first).
        np.testing.assert_allclose(out, np_fq(batch, want_low, want_high), atol=1e-5)
    assert quantizer.count.numpy() == 3
    # Inference: the stored range, nothing updated.
    test = rng.normal(0, 5, (1, 4, 4, 3)).astype("float32")
    np.testing.assert_allclose(quantizer(test).numpy(), np_fq(test, want_low, want_high),
                               atol=1e-5)
    assert quantizer.count.numpy() == 3
    assert sorted(quantizer.original_variables()) == ["block/act_quant/max",
                                                      "block/act_quant/min"]


def test_last_value_per_channel_symmetric_range():
    rng = np.random.default_rng(1)
    quantizer = RangeQuantizer("last_value", scope="w", per_channel=True, symmetric=True,
                               narrow_range=True)
    kernel = rng.normal(0, 0.3, (3, 3, 4, 5)).astype("float32")
    out = quantizer(kernel, training=True).numpy()
    low, high = _np_range(kernel, axes=(0, 1, 2), symmetric=True)
    np.testing.assert_allclose(quantizer.max.numpy(), high, rtol=1e-6)
    np.testing.assert_allclose(quantizer.min.numpy(), -high, rtol=1e-6)
    np.testing.assert_allclose(out, np_fq(kernel, low, high, narrow_range=True), atol=1e-6)
    # The largest magnitude of each channel is a level exactly (symmetric, narrow range).
    assert np.allclose(np.abs(out).max(axis=(0, 1, 2)), high, rtol=1e-6)


def _bn_arrays(bn):
    return [v.numpy().astype(np.float64) for v in (bn.gamma, bn.beta, bn.moving_mean,
                                                   bn.moving_variance)]


@pytest.mark.parametrize("quantization,depthwise", [("per_channel", False),
                                                    ("per_tensor", False),
                                                    ("per_channel", True)])
def test_quantized_conv_bn_inference_folds_and_quantizes(quantization, depthwise):
    rng = np.random.default_rng(2)
    layer = ConvBN(6, 3, strides=2, depthwise=depthwise, activation="relu6", bn_epsilon=1e-3,
                   scope="net/conv", quantization=quantization)
    x = rng.normal(0, 1, (2, 9, 9, 6)).astype("float32")
    layer(x, training=True)  # sets every range
    bn = layer.bn
    bn.gamma.assign(rng.uniform(0.5, 1.5, 6).astype("float32"))
    bn.moving_mean.assign(rng.normal(0, 0.2, 6).astype("float32"))
    bn.moving_variance.assign(rng.uniform(0.5, 2.0, 6).astype("float32"))
    layer.act_quant.min.assign(0.0)
    layer.act_quant.max.assign(0.5)
    got = layer(x, training=False).numpy()

    gamma, beta, mean, var = _bn_arrays(bn)
    scale = gamma / np.sqrt(var + 1e-3)
    w = layer.conv.kernel.numpy().astype(np.float64)
    folded = w * (scale[None, None, :, None] if depthwise else scale)
    low, high = layer.weights_quant.min.numpy(), layer.weights_quant.max.numpy()
    if depthwise:  # ranges along the channels of [kh, kw, C, 1]
        quantized = np_fq(folded.transpose(0, 1, 3, 2), low, high, True).transpose(0, 1, 3, 2)
    else:
        quantized = np_fq(folded, low, high, True)
    padded = helpers.np_pad_fixed(x, 3, 1)
    conv = (helpers.np_depthwise_conv2d(padded, quantized, 2) if depthwise
            else helpers.np_conv2d(padded, quantized, 2))
    want = np_fq(np.clip(conv + (beta - mean * scale), 0, 6), 0.0, 0.5)
    assert np.isclose(want, 0.5).any() and (want == 0).any()  # the range is used: it clips
    np.testing.assert_allclose(got, want, atol=1e-5)
    if quantization == "per_tensor":
        assert layer.weights_quant.min.shape == () and low < 0 < high and low != -high
    else:
        assert layer.weights_quant.min.shape == (6,)
    assert sorted(layer.original_variables()) == sorted(
        ["net/conv/weights" if not depthwise else "net/conv/depthwise_weights"]
        + [f"net/conv/BatchNorm/{n}" for n in ("gamma", "beta", "moving_mean",
                                                 "moving_variance")]
        + [f"net/conv/{q}/{m}" for q in ("weights_quant", "act_quant") for m in ("min", "max")])


def test_quantized_conv_bn_training_uses_batch_statistics_with_the_correction():
    """Training (batch norm trainable): y = conv(x, Q(w * g / s_moving)) * s_moving / s_batch
    + (beta - mean_batch * g / s_batch), the batch norm of the quantized-weight convolution;
    the moving statistics are updated as the float layer does."""
    rng = np.random.default_rng(3)
    layer = ConvBN(4, 1, activation=None, bn_epsilon=1e-3, bn_momentum=0.5, scope="c",
                   quantization="per_channel")
    x = rng.normal(0, 1, (2, 5, 5, 3)).astype("float32")
    layer(x)
    layer.bn.gamma.assign(rng.uniform(0.5, 1.5, 4).astype("float32"))
    layer.bn.beta.assign(rng.normal(0, 0.3, 4).astype("float32"))
    layer.bn.moving_variance.assign(rng.uniform(0.5, 2.0, 4).astype("float32"))
    gamma, beta, moving_mean, moving_var = _bn_arrays(layer.bn)
    w = layer.conv.kernel.numpy().astype(np.float64)
    got = layer(x, training=True).numpy()

    float_conv = helpers.np_conv2d(x, w)
    batch_mean = float_conv.mean(axis=(0, 1, 2))
    batch_var = float_conv.var(axis=(0, 1, 2))
    folded = w * (gamma / np.sqrt(moving_var + 1e-3))
    low, high = _np_range(folded, axes=(0, 1, 2), symmetric=True)
    conv = helpers.np_conv2d(x, np_fq(folded, low, high, True))
    y = (conv * np.sqrt(moving_var + 1e-3) / np.sqrt(batch_var + 1e-3)
         + beta - batch_mean * gamma / np.sqrt(batch_var + 1e-3))
    np.testing.assert_allclose(layer.act_quant.min.numpy(), min(y.min(), 0), rtol=1e-5)
    np.testing.assert_allclose(layer.act_quant.max.numpy(), max(y.max(), 0), rtol=1e-5)
    np.testing.assert_allclose(got, np_fq(y, min(y.min(), 0), max(y.max(), 0)), atol=1e-4)
    n = float_conv.size / 4
    np.testing.assert_allclose(layer.bn.moving_mean.numpy(), 0.5 * moving_mean + 0.5 * batch_mean,
                               rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(layer.bn.moving_variance.numpy(),
                               0.5 * moving_var + 0.5 * batch_var * n / (n - 1), rtol=1e-5)
    # Gradients reach the kernel, gamma and beta through the fake quantization.
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(layer(x, training=True) ** 2)
    grads = tape.gradient(loss, layer.trainable_variables)
    assert len(grads) == 3 and all(g is not None and np.any(g.numpy()) for g in grads)


def test_inactive_quantization_trains_as_the_float_layer_and_tracks_ranges():
    """Before the delay: the training pass and its gradients are the float layer's, bit for
    bit (the whole network's steps: test_quantization_training, slow set)."""
    rng = np.random.default_rng(4)
    x = rng.normal(0, 1, (2, 7, 7, 3)).astype("float32")
    float_layer = SeparableConvBN(5, 3, scope="s")
    layer = SeparableConvBN(5, 3, scope="s", quantization="per_tensor")
    float_layer(x)
    layer(x)
    targets = layer.original_variables()
    for name, variable in float_layer.original_variables().items():
        targets[name].assign(variable)
    model = keras.Sequential([layer])
    set_quantization_active(model, False)

    def pass_and_gradients(block):
        with tf.GradientTape() as tape:
            y = block(x, training=True)
            loss = tf.reduce_sum(y * y)
        return [y] + tape.gradient(loss, block.trainable_variables)

    for ours, theirs in zip(pass_and_gradients(layer), pass_and_gradients(float_layer)):
        np.testing.assert_array_equal(ours.numpy(), theirs.numpy())
    assert layer.pointwise.act_quant.max.numpy() > 0 and layer.depthwise.act_quant.count == 1
    set_quantization_active(model, True)
    assert not np.array_equal(layer(x, training=True).numpy(),
                              float_layer(x, training=True).numpy())


def test_residual_add_float_and_quantized():
    rng = np.random.default_rng(5)
    a, b = (rng.normal(0, 1, (1, 3, 3, 4)).astype("float32") for _ in range(2))
    plain = ResidualAdd(name="MobilenetV2.expanded_conv_2.add")
    np.testing.assert_array_equal(plain([a, b]).numpy(), a + b)
    assert plain.weights == [] and plain.quantization is None
    with quantization_scope("per_channel"):
        add = ResidualAdd(name="MobilenetV2.expanded_conv_2.add")
    assert add.quantization == "per_channel"
    add([a, b], training=True)
    assert sorted(add.range_quant.original_variables()) == [
        "MobilenetV2/expanded_conv_2/post_activation_bypass_quant/max",
        "MobilenetV2/expanded_conv_2/post_activation_bypass_quant/min"]
    low, high = _np_range(a + b)
    np.testing.assert_allclose(add([a, b]).numpy(), np_fq(a + b, low, high), atol=1e-6)


@pytest.mark.parametrize("quantization", ["per_channel", "per_tensor"])
def test_quantized_normalization_is_the_fake_quantized_affine_map(quantization):
    """Every output is a level of the 8-bit grid of the normalised range, the one nearest
    the exact normalised pixel (for [-1, 1] every pixel falls half-way between two levels:
    either neighbour is right, the error is half a step)."""
    pixels = np.arange(256, dtype="float32").reshape(1, 16, 16, 1).repeat(3, axis=-1)
    for mode, exact in (("zero_mean_unit_range", pixels * 2.0 / 255.0 - 1.0),
                        ("subtract_imagenet_mean",
                         pixels - np.array(Normalization.MEAN_RGB, "float32"))):
        layer = Normalization(mode, quantization=quantization)
        low, high = layer.output_range()
        levels = np.unique(np_fq(np.linspace(low - 1, high + 1, 8192), low, high))
        assert len(levels) == 256
        step = levels[1] - levels[0]
        got = layer(pixels).numpy()
        nearest = levels[np.abs(got[..., None] - levels).argmin(axis=-1)]
        np.testing.assert_allclose(got, nearest, atol=1e-5)
        assert np.abs(got - exact).max() <= step / 2 + 1e-5, mode


@pytest.mark.parametrize("layer", [
    RangeQuantizer("last_value", scope="a/weights_quant", per_channel=True, symmetric=True,
                   narrow_range=True, init_min=-1.0, init_max=2.0),
    ConvBN(4, 3, scope="x/c", quantization="per_channel"),
    SeparableConvBN(4, 3, scope="x/s", quantization="per_tensor"),
    ResidualAdd(name="x.b.add", quantization="per_channel"),
    Normalization(quantization="per_tensor"),
])
def test_quantized_layers_round_trip(layer):
    config = layer.get_config()
    clone = type(layer).from_config(config)
    assert clone.get_config() == config
    if hasattr(layer, "quantization"):
        assert config["quantization"] == layer.quantization is not None
