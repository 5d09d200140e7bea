"""Shared test helpers: tiny configs, NumPy reference implementations, TF1 checkpoint writer.

The NumPy references are written independently of the code under test (no TensorFlow), so
that tests compare the Keras layers against plain arithmetic.
"""

from __future__ import annotations

import os

import numpy as np

REFERENCE_DIR = os.path.join(os.path.dirname(__file__), "data", "original_variables")


def tiny_config(**overrides):
    """A small, fast ModelConfig (mobilenet_v2 x0.25, OS16, decoder, 3 classes)."""
    from deeplab_tf.config import ModelConfig

    values = dict(model_variant="mobilenet_v2", depth_multiplier=0.25, num_classes=3,
                  output_stride=16, atrous_rates=(), decoder_output_stride=(4,))
    values.update(overrides)
    return ModelConfig(**values)


def reference_variables(name):
    """{variable name: shape} of the original's checkpoint for a reference configuration."""
    path = os.path.join(REFERENCE_DIR, name)
    variables = {}
    with open(path) as f:
        next(f)
        for line in f:
            var, shape, _ = line.rstrip("\n").split("\t")
            variables[var] = tuple(int(v) for v in shape.strip("[]").split(",") if v)
    return variables


def np_pad_fixed(x, kernel_size, rate):
    effective = kernel_size + (kernel_size - 1) * (rate - 1)
    begin = (effective - 1) // 2
    end = effective - 1 - begin
    return np.pad(x, [(0, 0), (begin, end), (begin, end), (0, 0)])


def np_pad_same(x, kernel_size, stride, rate):
    """TensorFlow's 'SAME' padding (extra padding at the end)."""
    effective = kernel_size + (kernel_size - 1) * (rate - 1)
    pads = []
    for n in x.shape[1:3]:
        out = -(-n // stride)
        total = max((out - 1) * stride + effective - n, 0)
        pads.append((total // 2, total - total // 2))
    return np.pad(x, [(0, 0), pads[0], pads[1], (0, 0)])


def _np_windows(x, kh, kw, stride, rate):
    """Yields (i, j, patch): the input under kernel tap (i, j) for every VALID output."""
    _, h, w, _ = x.shape
    oh = (h - ((kh - 1) * rate + 1)) // stride + 1
    ow = (w - ((kw - 1) * rate + 1)) // stride + 1
    for i in range(kh):
        for j in range(kw):
            yield i, j, x[:, i * rate: i * rate + (oh - 1) * stride + 1: stride,
                          j * rate: j * rate + (ow - 1) * stride + 1: stride, :]


def np_conv2d(x, w, stride=1, rate=1):
    """VALID convolution, x [B,H,W,Ci], w [kh,kw,Ci,Co]."""
    return sum(patch.astype(np.float64) @ w[i, j]
               for i, j, patch in _np_windows(x, w.shape[0], w.shape[1], stride, rate))


def np_depthwise_conv2d(x, w, stride=1, rate=1):
    """VALID depthwise convolution, x [B,H,W,C], w [kh,kw,C,1]."""
    return sum(patch.astype(np.float64) * w[i, j, :, 0]
               for i, j, patch in _np_windows(x, w.shape[0], w.shape[1], stride, rate))


def np_batch_norm(x, gamma, beta, mean, var, eps):
    return (x - mean) / np.sqrt(var + eps) * gamma + beta


def np_resize_bilinear_align_corners(x, out_h, out_w):
    """Align-corners bilinear resize of x [B,H,W,C]: corners map onto corners."""
    b, h, w, c = x.shape

    def coords(n_in, n_out):
        if n_out == 1:
            return np.zeros(1)
        return np.arange(n_out) * ((n_in - 1) / (n_out - 1))

    ys, xs = coords(h, out_h), coords(w, out_w)
    y0 = np.floor(ys).astype(int)
    x0 = np.floor(xs).astype(int)
    y1 = np.minimum(y0 + 1, h - 1)
    x1 = np.minimum(x0 + 1, w - 1)
    wy = (ys - y0)[None, :, None, None]
    wx = (xs - x0)[None, None, :, None]
    top = x[:, y0][:, :, x0] * (1 - wx) + x[:, y0][:, :, x1] * wx
    bottom = x[:, y1][:, :, x0] * (1 - wx) + x[:, y1][:, :, x1] * wx
    return top * (1 - wy) + bottom * wy


def write_tf1_checkpoint(prefix, values):
    """Writes a name-based TF1 checkpoint (as the original's tf.train.Saver did).

    Args:
        prefix: checkpoint prefix to write.
        values: {variable name: numpy array}; names are saved exactly as given.
    """
    import tensorflow as tf

    with tf.Graph().as_default():
        variables = {name: tf.compat.v1.Variable(value, name=name)
                     for name, value in values.items()}
        saver = tf.compat.v1.train.Saver(variables)
        with tf.compat.v1.Session() as session:
            session.run(tf.compat.v1.global_variables_initializer())
            return saver.save(session, prefix, write_meta_graph=False)


def random_original_values(model, seed=0):
    """{original name: random array} for every variable of ``model`` (variances positive)."""
    from deeplab_tf.modeling.layers.conv_bn import original_variable_map

    rng = np.random.default_rng(seed)
    values = {}
    for name, var in original_variable_map(model).items():
        value = rng.normal(0.0, 0.1, size=tuple(var.shape)).astype(np.float32)
        if name.endswith("moving_variance"):
            value = rng.uniform(0.5, 1.5, size=tuple(var.shape)).astype(np.float32)
        elif name.endswith("gamma"):
            value = rng.uniform(0.8, 1.2, size=tuple(var.shape)).astype(np.float32)
        values[name] = value
    return values


def np_fake_quant(x, low, high, narrow_range=False, num_bits=8):
    """TensorFlow's FakeQuantWithMinMaxVars in NumPy (per tensor, or per channel of the last
    axis when ``low``/``high`` are vectors): the range nudged so that 0 is a level, values
    clamped to it and rounded to the nearest level (ties up). In float32 with the op's order
    of operations (``floor((x - nudged_min) * (1 / scale) + 0.5) * scale + nudged_min``), so
    that values on a rounding boundary round alike."""
    f32 = np.float32
    x = np.asarray(x, f32)
    low, high = np.asarray(low, f32), np.asarray(high, f32)
    q_min, q_max = f32(1 if narrow_range else 0), f32(2 ** num_bits - 1)
    scale = (high - low) / (q_max - q_min)
    zero_point = np.clip(np.floor(q_min - low / scale + f32(0.5)), q_min, q_max).astype(f32)
    nudged_low, nudged_high = (q_min - zero_point) * scale, (q_max - zero_point) * scale
    clamped = np.minimum(np.maximum(x, nudged_low), nudged_high)
    inverse = f32(1.0) / scale
    return (np.floor((clamped - nudged_low) * inverse + f32(0.5)) * scale + nudged_low).astype(f32)
