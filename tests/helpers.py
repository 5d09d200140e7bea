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


def _np_pair(value):
    return (value, value) if np.isscalar(value) else tuple(value)


def np_pad_same(x, kernel_size, stride, rate, value=0.0):
    """TensorFlow's 'SAME' padding (extra padding at the end); kernel_size and rate may be
    (height, width) pairs."""
    pads = []
    for n, k, r in zip(x.shape[1:3], _np_pair(kernel_size), _np_pair(rate)):
        effective = k + (k - 1) * (r - 1)
        out = -(-n // stride)
        total = max((out - 1) * stride + effective - n, 0)
        pads.append((total // 2, total - total // 2))
    return np.pad(x, [(0, 0), pads[0], pads[1], (0, 0)], constant_values=value)


def _np_windows(x, kh, kw, stride, rate):
    """Yields (i, j, patch): the input under kernel tap (i, j) for every VALID output
    (``rate``: an int or a (rate_h, rate_w) pair)."""
    _, h, w, _ = x.shape
    rh, rw = _np_pair(rate)
    oh = (h - ((kh - 1) * rh + 1)) // stride + 1
    ow = (w - ((kw - 1) * rw + 1)) // stride + 1
    for i in range(kh):
        for j in range(kw):
            yield i, j, x[:, i * rh: i * rh + (oh - 1) * stride + 1: stride,
                          j * rw: j * rw + (ow - 1) * stride + 1: stride, :]


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


def np_relu6(x):
    return np.minimum(np.maximum(x, 0.0), 6.0)


def np_hard_swish(x):
    """MobileNetV3's hard-swish: x * relu6(x + 3) / 6."""
    return x * np_relu6(x + 3.0) / 6.0


def np_q_sigmoid(x):
    """The original's q-sigmoid gate: relu6(x + 3) * 0.16667 (its literal, not 1/6)."""
    return np_relu6(x + 3.0) * 0.16667


def np_avg_pool_valid(x, window, stride):
    """VALID average pooling of x [B,H,W,C] with (h, w) ``window`` and ``stride``."""
    (wh, ww), (sh, sw) = window, stride
    rows = range(0, x.shape[1] - wh + 1, sh)
    cols = range(0, x.shape[2] - ww + 1, sw)
    return np.stack([np.stack([x[:, i:i + wh, j:j + ww].mean(axis=(1, 2)) for j in cols], 1)
                     for i in rows], 1)
def np_max_pool_same(x, kernel_size, stride):
    """TensorFlow's 'SAME' max pooling (padding at the end never wins)."""
    padded = np_pad_same(x, kernel_size, stride, 1, value=-np.inf)
    return np.max(np.stack([patch for _, _, patch in
                            _np_windows(padded, kernel_size, kernel_size, stride, 1)]), axis=0)


def np_resize_nearest_align_corners(labels, out_h, out_w):
    """TensorFlow's align-corners nearest-neighbour resize of labels [B, h, w]: source index
    round(y * (h - 1) / (H - 1)), computed in float32 and rounded half away from zero."""
    _, h, w = labels.shape

    def index(n_in, n_out):
        scale = np.float32(n_in - 1) / np.float32(n_out - 1) if n_out > 1 else np.float32(0)
        return np.minimum(np.floor(np.arange(n_out, dtype=np.float32) * scale
                                   + np.float32(0.5)).astype(int), n_in - 1)

    return labels[:, index(h, out_h)][:, :, index(w, out_w)]


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


def scale_dimension(dim, scale):
    """The original's size rule: int((dim - 1) * scale + 1)."""
    return int((dim - 1) * scale + 1)


# The NAS genotypes, as the original's nas_genotypes.PNASCell and nas_network.hnasnet list
# them: operations (left, right per combination) and the state each reads.
PNAS_GENOTYPE = (("separable_5x5_2", "max_pool_3x3", "separable_7x7_2", "max_pool_3x3",
                  "separable_5x5_2", "separable_3x3_2", "separable_3x3_2", "max_pool_3x3",
                  "separable_3x3_2", "none"), (1, 1, 0, 0, 0, 0, 4, 0, 1, 0))
HNAS_GENOTYPE = (("atrous_5x5", "separable_3x3_2", "separable_3x3_2", "atrous_3x3",
                  "separable_3x3_2", "separable_3x3_2", "separable_5x5_2", "separable_5x5_2",
                  "separable_5x5_2", "atrous_5x5"), (1, 0, 1, 0, 3, 1, 4, 2, 3, 5))


def np_nas_cell(net, prev, w, scope, genotype, filters, stride, upsample, eps=1e-3):
    """The original's NAS cell (nas_cell.NASBaseCell) in float64, weights by original name.

    Both genotypes concatenate the five combinations (used_hiddenstates [1, 1, 0, 0, 0, 0, 0]).
    """
    relu = lambda x: np.maximum(x, 0)  # noqa: E731

    def bn(x, name):
        return np_batch_norm(x, w[f"{name}/gamma"], w[f"{name}/beta"], w[f"{name}/moving_mean"],
                             w[f"{name}/moving_variance"], eps)

    def conv(x, name, k, s=1, r=1):  # conv2d_same: fixed padding when strided
        x = np_pad_fixed(x, k, r) if s > 1 else np_pad_same(x, k, 1, r)
        return np_conv2d(x, w[f"{name}/weights"], s, r)

    if upsample:
        net = np_resize_bilinear_align_corners(net, 2 * net.shape[1] - 1, 2 * net.shape[2] - 1)
    if prev.shape[1:3] != net.shape[1:3]:
        prev = np_resize_bilinear_align_corners(prev, net.shape[1], net.shape[2])
    if prev.shape[-1] != filters:
        prev = bn(conv(relu(prev), f"{scope}/prev_1x1", 1), f"{scope}/prev_bn")
    states = [bn(conv(relu(net), f"{scope}/1x1", 1), f"{scope}/beginning_bn"), prev]
    operations, indices = genotype
    for i in range(5):
        outputs = []
        for j, side in ((2 * i, "left"), (2 * i + 1, "right")):
            x, op, path = states[indices[j]], operations[j], f"{scope}/comb_iter_{i}/{side}"
            s = stride if indices[j] < 2 else 1
            if op.startswith("separable"):
                k = int(op.split("_")[1].split("x")[0])
                for layer in range(1, int(op.split("_")[2]) + 1):
                    name = f"separable_{k}x{k}_{layer}"
                    x = relu(x)
                    x = np_pad_fixed(x, k, 1) if s > 1 else np_pad_same(x, k, 1, 1)
                    x = np_depthwise_conv2d(x, w[f"{path}/{name}/depthwise_weights"], s)
                    x = np_conv2d(x, w[f"{path}/{name}/pointwise_weights"])
                    x = bn(x, f"{path}/bn_sep_{k}x{k}_{layer}")
                    s = 1
            elif op.startswith("atrous"):
                k = int(op.split("_")[1].split("x")[0])
                x = relu(x)
                if s == 2:
                    x = np_resize_bilinear_align_corners(x, scale_dimension(x.shape[1], 0.5),
                                                         scale_dimension(x.shape[2], 0.5))
                x = bn(conv(x, f"{path}/atrous_{k}x{k}", k, 1, 1 if s == 2 else 2),
                       f"{path}/bn_atr_{k}x{k}")
            elif op == "max_pool_3x3":
                x = np_max_pool_same(x, 3, s)
            elif op == "none" and s > 1:
                x = bn(conv(relu(x), f"{path}/1x1", 1, s), f"{path}/bn_1")
            outputs.append(x)
        states.append(outputs[0] + outputs[1])
    return np.concatenate(states[2:], axis=-1)


def tsv_checkpoint(prefix, tsv_name, seed=0):
    """Writes a TF1 checkpoint of random values for every variable of a reference list (the
    original's names); returns (prefix, {name: value}).

    """
    rng = np.random.default_rng(seed)
    values = {}
    for name, shape in reference_variables(tsv_name).items():
        if name.endswith("moving_variance"):
            values[name] = rng.uniform(0.5, 1.5, size=shape).astype(np.float32)
        elif name.endswith("gamma"):
            values[name] = rng.uniform(0.8, 1.2, size=shape).astype(np.float32)
        else:
            values[name] = rng.normal(0.0, 0.1, size=shape).astype(np.float32)
    values["global_step"] = np.int64(1000)
    return write_tf1_checkpoint(prefix, values), values


def write_tf1_checkpoint(prefix, values):
    """Writes a name-based TF1 checkpoint (what the original's tf.train.Saver wrote).

    The tensors go through the ``SaveV2`` op that ``Saver.save`` runs (eagerly: no graph or
    session to build, far faster than a graph Saver over a thousand variables; keys = the
    variable names, the V2 format), and the directory's ``checkpoint`` state file names the
    prefix, as ``Saver.save`` leaves it.

    Args:
        prefix: checkpoint prefix to write.
        values: {variable name: numpy array}; names are saved exactly as given.

    Returns:
        The prefix.
    """
    import tensorflow as tf

    directory = os.path.dirname(os.path.abspath(prefix))
    os.makedirs(directory, exist_ok=True)
    names = sorted(values)
    tf.raw_ops.SaveV2(prefix=prefix, tensor_names=names, shape_and_slices=[""] * len(names),
                      tensors=[tf.constant(values[name]) for name in names])
    tf.compat.v1.train.update_checkpoint_state(directory, os.path.abspath(prefix))
    return prefix


def random_original_values(model, seed=0, weight_gain=None, scale=0.1):
    """{original name: random array} for every variable of ``model`` (variances positive).

    Args:
        model: a model whose ConvBN layers carry the original's scopes.
        seed: int.
        weight_gain: float or None. None: kernels N(0, scale) like the other values. A gain:
            kernels N(0, gain / sqrt(fan in)), so that activations keep their scale through a
            whole network and its predictions vary from pixel to pixel.
        scale: float. Standard deviation of betas, means, biases (and kernels without a gain);
            large enough (~1) to reach the activations' kinks in block-level comparisons.
    """
    from deeplab_tf.modeling.layers.original_layer import original_variable_map

    rng = np.random.default_rng(seed)
    values = {}
    for name, var in original_variable_map(model).items():
        shape = tuple(var.shape)
        value = rng.normal(0.0, scale, size=shape).astype(np.float32)
        if name.endswith("moving_variance"):
            value = rng.uniform(0.5, 1.5, size=shape).astype(np.float32)
        elif name.endswith("gamma"):
            value = rng.uniform(0.8, 1.2, size=shape).astype(np.float32)
        elif weight_gain and name.endswith("weights"):
            depthwise = name.endswith("depthwise_weights")
            fan_in = np.prod(shape[:2]) if depthwise else np.prod(shape[:-1])
            value = rng.normal(0.0, weight_gain / np.sqrt(fan_in), size=shape).astype(np.float32)
        values[name] = value
    return values


def assign_original_values(model, values):
    """Assigns {original name: array} to ``model``'s variables; returns them as float64 (the
    values the variables hold), for NumPy references."""
    from deeplab_tf.modeling.layers.original_layer import original_variable_map

    assigned = {}
    for name, variable in original_variable_map(model).items():
        variable.assign(values[name])
        assigned[name] = variable.numpy().astype(np.float64)
    return assigned
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
