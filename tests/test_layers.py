"""ConvBN / SeparableConvBN / resize against NumPy references; serialisation round trips."""

import numpy as np
import pytest
import tensorflow as tf

import helpers
from deeplab_tf.modeling.layers.conv_bn import ConvBN, fixed_padding_amounts
from deeplab_tf.modeling.layers.normalization import Normalization
from deeplab_tf.modeling.layers.resize import ResizeLike, resize_bilinear, scale_dimension
from deeplab_tf.modeling.layers.separable_conv_bn import SeparableConvBN


def _randomise_bn(bn, rng):
    c = bn.gamma.shape[0]
    bn.gamma.assign(rng.uniform(0.5, 1.5, c).astype("float32"))
    bn.beta.assign(rng.normal(size=c).astype("float32"))
    bn.moving_mean.assign(rng.normal(size=c).astype("float32"))
    bn.moving_variance.assign(rng.uniform(0.5, 2.0, c).astype("float32"))


def _np_bn(x, bn):
    return helpers.np_batch_norm(x, bn.gamma.numpy(), bn.beta.numpy(), bn.moving_mean.numpy(),
                                 bn.moving_variance.numpy(), bn.epsilon)


@pytest.mark.parametrize("kernel,rate", [(3, 1), (3, 2), (7, 1), (1, 1)])
def test_fixed_padding_amounts(kernel, rate):
    effective = kernel + (kernel - 1) * (rate - 1)
    begin, end = fixed_padding_amounts(kernel, rate)
    assert begin + end == effective - 1 and end - begin in (0, 1)


@pytest.mark.parametrize("stride,rate,size", [(2, 1, 13), (2, 1, 12), (1, 2, 11), (1, 1, 9)])
def test_conv_bn_matches_numpy(stride, rate, size):
    rng = np.random.default_rng(0)
    layer = ConvBN(5, 3, strides=stride, dilation_rate=rate, activation="relu",
                   bn_epsilon=1e-3, scope="net/conv")
    x = rng.normal(size=(2, size, size + 2, 4)).astype("float32")
    layer(x)
    _randomise_bn(layer.bn, rng)
    got = layer(x, training=False).numpy()
    w = layer.conv.kernel.numpy()
    if stride > 1:
        padded = helpers.np_pad_fixed(x, 3, rate)
    else:
        padded = helpers.np_pad_same(x, 3, 1, rate)
    want = np.maximum(_np_bn(helpers.np_conv2d(padded, w, stride, rate), layer.bn), 0)
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


def test_strided_conv_uses_fixed_not_same_padding():
    # On an even input, 'SAME' pads (0, 1) but the original pads (1, 1): results differ.
    rng = np.random.default_rng(1)
    x = rng.normal(size=(1, 8, 8, 2)).astype("float32")
    layer = ConvBN(3, 3, strides=2, use_batch_norm=False, activation=None, scope="c")
    got = layer(x).numpy()
    w = layer.conv.kernel.numpy()
    fixed = helpers.np_conv2d(helpers.np_pad_fixed(x, 3, 1), w, 2) + layer.conv.bias.numpy()
    same = helpers.np_conv2d(helpers.np_pad_same(x, 3, 2, 1), w, 2) + layer.conv.bias.numpy()
    np.testing.assert_allclose(got, fixed, rtol=1e-5, atol=1e-5)
    assert np.abs(got - same).max() > 1e-3


@pytest.mark.parametrize("pre_activation,activation,stride,rate", [
    (True, None, 1, 1),      # Xception unit, activation_fn_in_separable_conv=False
    (False, "relu", 1, 2),   # ASPP / decoder split_separable_conv2d (atrous)
    (True, None, 2, 1),      # strided Xception unit (fixed padding)
    (False, "relu", 2, 2),   # exit flow with ReLU inside, strided atrous
])
def test_separable_conv_matches_numpy(pre_activation, activation, stride, rate):
    rng = np.random.default_rng(2)
    layer = SeparableConvBN(6, 3, strides=stride, dilation_rate=rate,
                            pre_activation=pre_activation, activation=activation,
                            bn_epsilon=1e-3, scope="block/sep")
    x = rng.normal(size=(2, 11, 10, 4)).astype("float32")
    layer(x)
    _randomise_bn(layer.depthwise.bn, rng)
    _randomise_bn(layer.pointwise.bn, rng)
    got = layer(x, training=False).numpy()

    act = (lambda v: np.maximum(v, 0)) if activation else (lambda v: v)
    h = np.maximum(x, 0) if pre_activation else x
    h = helpers.np_pad_fixed(h, 3, rate) if stride > 1 else helpers.np_pad_same(h, 3, 1, rate)
    h = act(_np_bn(helpers.np_depthwise_conv2d(h, layer.depthwise.conv.kernel.numpy(), stride,
                                               rate), layer.depthwise.bn))
    h = act(_np_bn(helpers.np_conv2d(h, layer.pointwise.conv.kernel.numpy()),
                   layer.pointwise.bn))
    np.testing.assert_allclose(got, h, rtol=1e-4, atol=1e-4)


def test_separable_conv_original_names():
    layer = SeparableConvBN(8, 3, scope="aspp1")
    layer(np.zeros((1, 5, 5, 4), "float32"))
    assert {n: tuple(v.shape) for n, v in layer.original_variables().items()} == {
        "aspp1_depthwise/depthwise_weights": (3, 3, 4, 1),
        "aspp1_depthwise/BatchNorm/gamma": (4,), "aspp1_depthwise/BatchNorm/beta": (4,),
        "aspp1_depthwise/BatchNorm/moving_mean": (4,),
        "aspp1_depthwise/BatchNorm/moving_variance": (4,),
        "aspp1_pointwise/weights": (1, 1, 4, 8),
        "aspp1_pointwise/BatchNorm/gamma": (8,), "aspp1_pointwise/BatchNorm/beta": (8,),
        "aspp1_pointwise/BatchNorm/moving_mean": (8,),
        "aspp1_pointwise/BatchNorm/moving_variance": (8,),
    }


@pytest.mark.parametrize("in_size,out_size", [((5, 7), (17, 25)), ((9, 9), (3, 4)),
                                               ((1, 1), (4, 6)), ((6, 4), (6, 4))])
def test_resize_bilinear_align_corners_matches_numpy(in_size, out_size):
    rng = np.random.default_rng(3)
    x = rng.normal(size=(2,) + in_size + (3,)).astype("float32")
    got = resize_bilinear(tf.constant(x), out_size).numpy()
    want = helpers.np_resize_bilinear_align_corners(x.astype(np.float64), *out_size)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    # Corners map exactly onto corners.
    np.testing.assert_allclose(got[:, 0, 0], x[:, 0, 0], rtol=1e-6)
    np.testing.assert_allclose(got[:, -1, -1], x[:, -1, -1], rtol=1e-6)


def test_resize_like_and_scale_dimension():
    x = np.arange(2 * 3 * 3 * 1, dtype="float32").reshape(2, 3, 3, 1)
    ref = np.zeros((2, 9, 5, 7), "float32")
    out = ResizeLike()([x, ref]).numpy()
    assert out.shape == (2, 9, 5, 1)
    np.testing.assert_allclose(out, helpers.np_resize_bilinear_align_corners(
        x.astype(np.float64), 9, 5), rtol=1e-5, atol=1e-5)
    # By hand: the middle row of a 3-row input is row 4 of 9 (align corners: 0 -> 0, 2 -> 8).
    np.testing.assert_allclose(out[:, 4, 2, 0], x[:, 1, 1, 0], rtol=1e-6)
    # A symbolic reference (dynamic shapes, as inside the model) gives the same numbers.
    fn = tf.function(lambda a, b: ResizeLike()([a, b]), input_signature=[
        tf.TensorSpec([None, None, None, 1]), tf.TensorSpec([None, None, None, 7])])
    np.testing.assert_allclose(fn(x, ref).numpy(), out, rtol=1e-6)
    assert scale_dimension(513, 1 / 4) == 129 and scale_dimension(513, 1 / 16) == 33
    assert int(scale_dimension(tf.constant(65), 0.25)) == 17
    for n in range(1, 40):  # int((n-1)/s + 1) == (n-1)//s + 1 == ceil(n/s)
        assert scale_dimension(n, 1 / 4) == (n - 1) // 4 + 1 == -(-n // 4)


def test_normalization_modes():
    x = np.array([[[[0.0, 127.5, 255.0]]]], "float32")
    np.testing.assert_allclose(Normalization("zero_mean_unit_range")(x).numpy(), [[[[-1, 0, 1]]]])
    np.testing.assert_allclose(Normalization("subtract_imagenet_mean")(x).numpy(),
                               x - np.array([123.15, 115.90, 103.06]), rtol=1e-6)
    with pytest.raises(ValueError, match="mode"):
        Normalization("bad")


def test_bad_activation_raises():
    with pytest.raises(ValueError, match="activation"):
        ConvBN(4, 3, activation="gelu")


@pytest.mark.parametrize("layer", [
    ConvBN(4, 3, strides=2, dilation_rate=1, activation="relu6", weight_decay=1e-4,
           kernel_stddev=0.09, scope="a/b", batch_norm_trainable=False),
    SeparableConvBN(4, 3, dilation_rate=2, pre_activation=True, activation=None,
                    scope="x/sep"),
])
def test_get_config_round_trip_and_weights(layer):
    x = np.random.default_rng(4).normal(size=(1, 9, 9, 3)).astype("float32")
    y = layer(x, training=False).numpy()
    clone = layer.__class__.from_config(layer.get_config())
    clone(x)
    clone.set_weights(layer.get_weights())
    assert clone.get_config() == layer.get_config()
    np.testing.assert_allclose(clone(x, training=False).numpy(), y, rtol=1e-6)
    assert sorted(clone.original_variables()) == sorted(layer.original_variables())


def test_weight_decay_is_slim_l2():
    layer = ConvBN(2, 1, weight_decay=0.1, scope="c", use_batch_norm=False)
    layer(np.zeros((1, 2, 2, 3), "float32"))
    w = layer.conv.kernel.numpy()
    # slim.l2_regularizer(wd): wd * sum(w^2) / 2
    np.testing.assert_allclose(float(sum(layer.losses)), 0.1 * np.sum(w ** 2) / 2, rtol=1e-5)


def test_frozen_batch_norm_uses_moving_statistics_and_trains_gamma_beta():
    # The original's fine_tune_batch_norm=False: batch norm in inference mode (moving
    # statistics, never updated), gamma and beta still trained.
    rng = np.random.default_rng(5)
    layer = ConvBN(3, 1, activation=None, scope="c", batch_norm_trainable=False)
    x = rng.normal(3.0, 2.0, size=(4, 5, 5, 2)).astype("float32")
    layer(x)
    _randomise_bn(layer.bn, rng)
    moving = [layer.bn.moving_mean.numpy(), layer.bn.moving_variance.numpy()]
    with tf.GradientTape() as tape:
        y = layer(x, training=True)
        loss = tf.reduce_sum(y * y)
    want = _np_bn(helpers.np_conv2d(x, layer.conv.kernel.numpy(), 1), layer.bn)
    np.testing.assert_allclose(y.numpy(), want, rtol=1e-4, atol=1e-4)
    np.testing.assert_array_equal(layer.bn.moving_mean.numpy(), moving[0])
    np.testing.assert_array_equal(layer.bn.moving_variance.numpy(), moving[1])
    trainable = {v.path.rsplit("/", 1)[-1] for v in layer.trainable_weights}
    assert trainable == {"kernel", "gamma", "beta"}
    # d loss / d beta = sum over pixels of 2 y (NumPy from the outputs above).
    grads = dict(zip(("gamma", "beta"), tape.gradient(loss, [layer.bn.gamma, layer.bn.beta])))
    np.testing.assert_allclose(grads["beta"].numpy(), 2 * want.sum(axis=(0, 1, 2)),
                               rtol=1e-4, atol=1e-3)
    assert np.abs(grads["gamma"].numpy()).min() > 0


@pytest.mark.parametrize("depthwise,stride,rate,use_bn", [
    (False, 2, 1, True), (True, 1, 2, True), (True, 2, 1, True), (False, 1, 1, False)])
def test_folded_batch_norm_matches_unfolded(depthwise, stride, rate, use_bn):
    rng = np.random.default_rng(6)
    layer = ConvBN(4, 3, strides=stride, dilation_rate=rate, depthwise=depthwise,
                   use_batch_norm=use_bn, activation="relu6", scope="f")
    x = rng.normal(size=(2, 12, 11, 4)).astype("float32")
    layer(x)
    if use_bn:
        _randomise_bn(layer.bn, rng)
    want = layer(x, training=False).numpy()
    layer.fold_batch_norm()
    np.testing.assert_allclose(layer(x, training=False).numpy(), want, rtol=1e-5, atol=1e-5)


def _np_train_bn(x, gamma, beta, eps):
    """NumPy batch norm in training mode: output, batch mean, biased and unbiased variance."""
    x = x.astype(np.float64)
    mean = x.mean(axis=(0, 1, 2))
    var = x.var(axis=(0, 1, 2))
    n = x.size // x.shape[-1]
    return (x - mean) / np.sqrt(var + eps) * gamma + beta, mean, var, var * n / (n - 1)


def _np_train_bn_backward(x, dy, gamma, eps):
    """NumPy gradients of training-mode batch norm: (dx, dgamma, dbeta)."""
    x, dy = x.astype(np.float64), dy.astype(np.float64)
    mean, var = x.mean(axis=(0, 1, 2)), x.var(axis=(0, 1, 2))
    xhat = (x - mean) / np.sqrt(var + eps)
    dgamma = (dy * xhat).sum(axis=(0, 1, 2))
    dbeta = dy.sum(axis=(0, 1, 2))
    dx = gamma / np.sqrt(var + eps) * (dy - dy.mean(axis=(0, 1, 2))
                                       - xhat * (dy * xhat).mean(axis=(0, 1, 2)))
    return dx, dgamma, dbeta


def test_fused_batch_norm_training_matches_numpy():
    # Forward, the original's moving-average update (decay; Bessel-corrected batch variance,
    # as slim's fused batch norm) and the backward pass, against NumPy.
    from deeplab_tf.modeling.layers.batch_norm import BatchNorm

    rng = np.random.default_rng(7)
    x = rng.normal(2.0, 3.0, size=(2, 6, 5, 4)).astype("float32")
    dy = rng.normal(size=x.shape).astype("float32")
    layer = BatchNorm(momentum=0.9, epsilon=1e-3)
    layer.build(x.shape)
    gamma, beta = rng.uniform(0.5, 1.5, 4), rng.normal(size=4)
    moving_mean, moving_var = rng.normal(size=4), rng.uniform(0.5, 2.0, 4)
    for var, value in zip(layer.weights, (gamma, beta, moving_mean, moving_var)):
        var.assign(value.astype("float32"))
    xt = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(xt)
        y = layer(xt, training=True)
    dx, dgamma, dbeta = tape.gradient(y, [xt, layer.gamma, layer.beta], output_gradients=dy)
    want, mean, _, unbiased = _np_train_bn(x, gamma, beta, 1e-3)
    np.testing.assert_allclose(y.numpy(), want, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(layer.moving_mean.numpy(), 0.9 * moving_mean + 0.1 * mean,
                               rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(layer.moving_variance.numpy(),
                               0.9 * moving_var + 0.1 * unbiased, rtol=1e-5)
    want_dx, want_dgamma, want_dbeta = _np_train_bn_backward(x, dy, gamma, 1e-3)
    np.testing.assert_allclose(dx.numpy(), want_dx, rtol=1e-3, atol=1e-4)
    np.testing.assert_allclose(dgamma.numpy(), want_dgamma, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(dbeta.numpy(), want_dbeta, rtol=1e-4, atol=1e-4)
    # The fused kernel runs in the training graph (FusedBatchNormV3 forward, its Grad back).
    graph = tf.function(lambda t: tf.gradients(layer(t, training=True), t)).get_concrete_function(
        tf.TensorSpec(x.shape)).graph
    ops = {op.type for op in graph.get_operations()}
    assert {"FusedBatchNormV3", "FusedBatchNormGradV3"} <= ops and "Rsqrt" not in ops


def test_fused_batch_norm_mixed_precision_and_inference_mode():
    from deeplab_tf.modeling.layers.batch_norm import BatchNorm

    rng = np.random.default_rng(8)
    x = rng.normal(1.0, 2.0, size=(2, 5, 5, 3)).astype("float32")
    layer = BatchNorm(momentum=0.5, epsilon=1e-3, dtype="mixed_bfloat16")
    layer.build(x.shape)
    y = layer(tf.constant(x, tf.bfloat16), training=True)
    assert y.dtype == tf.bfloat16 and layer.moving_mean.dtype == "float32"
    want, mean, _, _ = _np_train_bn(x.astype(tf.bfloat16.as_numpy_dtype).astype(np.float32),
                                    1.0, 0.0, 1e-3)
    np.testing.assert_allclose(y.numpy().astype(np.float32), want, rtol=2e-2, atol=2e-2)
    np.testing.assert_allclose(layer.moving_mean.numpy(), 0.5 * mean, rtol=1e-2, atol=1e-2)
    # The backward pass from bfloat16 activations agrees with NumPy to bfloat16's precision.
    xb = tf.constant(x, tf.bfloat16)
    dy = rng.normal(size=x.shape).astype("float32")
    dy_bfloat16 = tf.constant(dy, tf.bfloat16)

    def forward_backward(t):
        with tf.GradientTape() as tape:
            tape.watch(t)
            out = tf.nn.relu(layer(t, training=True))
        return tape.gradient(out, t, output_gradients=dy_bfloat16)

    layer.moving_mean.assign(tf.zeros([3]))
    dx = forward_backward(xb).numpy().astype(np.float32)
    xf = x.astype(tf.bfloat16.as_numpy_dtype).astype(np.float32)
    ref, _, _, _ = _np_train_bn(xf, 1.0, 0.0, 1e-3)
    dy_relu = dy.astype(tf.bfloat16.as_numpy_dtype).astype(np.float32) * (ref > 0)
    want_dx, _, _ = _np_train_bn_backward(xf, dy_relu, np.ones(3), 1e-3)
    np.testing.assert_allclose(dx, want_dx, rtol=5e-2, atol=5e-2)
    # training=False: the moving statistics (Keras' inference formula), nothing updated.
    before = layer.moving_mean.numpy()
    got = layer(tf.constant(x), training=False).numpy().astype(np.float32)
    want = (x - before) / np.sqrt(layer.moving_variance.numpy() + 1e-3)
    np.testing.assert_allclose(got, want, rtol=2e-2, atol=2e-2)
    np.testing.assert_array_equal(layer.moving_mean.numpy(), before)
