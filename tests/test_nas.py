"""The NAS backbones (nas_pnasnet, nas_hnasnet): one cell against an independent NumPy cell,
the fused separable convolution, drop path's schedule, the cell schedule and the original's
own shape check, configuration errors and serialisation round trips."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import helpers
from deeplab_tf import ModelConfig
from deeplab_tf.errors import ConfigError
from deeplab_tf.modeling.backbones import BACKBONES, nas
from deeplab_tf.modeling.layers.drop_path import DropPath, bind_drop_path, cell_keep_prob
from deeplab_tf.modeling.layers.fused_separable_conv_bn import FusedSeparableConvBN
from deeplab_tf.modeling.layers.nas_cell import NasCell
from deeplab_tf.modeling.layers.normalization import Normalization
from deeplab_tf.modeling.layers.original_layer import iter_original_layers

USED = (1, 1, 0, 0, 0, 0, 0)


def _randomise(layer, rng):
    """Random values for every original variable of ``layer``; returns them by name."""
    values = {}
    for owner in [layer, *iter_original_layers(layer)]:
        if not hasattr(owner, "original_variables"):
            continue
        for name, var in owner.original_variables().items():
            if name.endswith("moving_variance"):
                value = rng.uniform(0.5, 1.5, var.shape)
            elif name.endswith("gamma"):
                value = rng.uniform(0.7, 1.3, var.shape)
            else:
                value = rng.normal(0.0, 0.3, var.shape)
            var.assign(value.astype("float32"))
            values[name] = value.astype("float32")
    return values


@pytest.mark.parametrize("genotype,stride,upsample,net_size,prev_size", [
    # PNAS cell 0: strided separable (fixed padding), max pool 'SAME', a strided 1x1 'none';
    # prev at twice the resolution (resized), even sizes (SAME and fixed padding differ).
    (helpers.PNAS_GENOTYPE, 2, False, (10, 12), (20, 24)),
    # HNAS strided: atrous ops on a resized input.
    (helpers.HNAS_GENOTYPE, 2, False, (9, 10), (9, 10)),
    # HNAS going down a level: net upsampled to 2h - 1, atrous with rate 2.
    (helpers.HNAS_GENOTYPE, 1, True, (5, 6), (9, 11)),
])
def test_nas_cell_matches_numpy(genotype, stride, upsample, net_size, prev_size):
    """Tolerance: float32 against float64, 1e-4 relative to the output's scale."""
    rng = np.random.default_rng(0)
    filters = 4
    cell = NasCell(filters, genotype[0], genotype[1], USED, stride=stride,
                   upsample_input=upsample, scope="hnasnet/cell_3")
    net = rng.normal(size=(2, *net_size, 10)).astype("float32")
    prev = rng.normal(size=(2, *prev_size, 6)).astype("float32")
    cell([net, prev])
    weights = _randomise(cell, rng)
    got = cell([net, prev], training=False).numpy()
    want = helpers.np_nas_cell(net.astype(np.float64), prev.astype(np.float64), weights,
                               "hnasnet/cell_3", genotype, filters, stride, upsample)
    assert got.shape == want.shape == cell.compute_output_shape(
        [(2, *net_size, 10), (2, *prev_size, 6)])
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * np.abs(want).max())
    # Folded batch norm (every layer of the cell) computes the same.
    for layer in iter_original_layers(cell):
        layer.fold_batch_norm()
    np.testing.assert_allclose(cell([net, prev], training=False).numpy(), want,
                               rtol=1e-4, atol=1e-4 * np.abs(want).max())


def test_nas_cell_names_and_round_trip():
    cell = NasCell(4, *helpers.PNAS_GENOTYPE, USED, stride=2, cell_num=4,
                   drop_path_keep_prob=0.7, scope="pnasnet/cell_4")
    x = [np.ones((1, 9, 9, 8), "float32"), np.ones((1, 9, 9, 6), "float32")]
    y = cell(x, training=False).numpy()
    names = {name for layer in iter_original_layers(cell) for name in layer.original_variables()}
    # As the original's PNAS cell with a stride: 87 variables (none -> 1x1 + bn_1).
    assert len(names) == 87
    for name in ("pnasnet/cell_4/prev_1x1/weights", "pnasnet/cell_4/prev_bn/gamma",
                 "pnasnet/cell_4/1x1/weights", "pnasnet/cell_4/beginning_bn/moving_variance",
                 "pnasnet/cell_4/comb_iter_1/left/separable_7x7_2/pointwise_weights",
                 "pnasnet/cell_4/comb_iter_1/left/bn_sep_7x7_2/beta",
                 "pnasnet/cell_4/comb_iter_4/right/1x1/weights",
                 "pnasnet/cell_4/comb_iter_4/right/bn_1/moving_mean"):
        assert name in names
    clone = NasCell.from_config(cell.get_config())
    clone(x)
    clone.set_weights(cell.get_weights())
    assert clone.get_config() == cell.get_config()
    np.testing.assert_allclose(clone(x, training=False).numpy(), y, rtol=1e-6)
    assert cell.drop_path.keep_prob == pytest.approx(1 - 5 / 12 * 0.3)


def test_nas_cell_checkpoint_holds_every_variable(tmp_path):
    """tf.train.Checkpoint (deeplab-train's format) sees every layer of the cell."""
    cell = NasCell(4, *helpers.HNAS_GENOTYPE, USED, stride=2, scope="hnasnet/cell_4")
    cell([np.ones((1, 9, 9, 8), "float32"), np.ones((1, 9, 9, 6), "float32")])
    path = tf.train.Checkpoint(cell=cell).save(str(tmp_path / "ckpt"))
    keys = [k for k in tf.train.load_checkpoint(path).get_variable_to_shape_map()
            if k.startswith("cell/")]
    assert len(keys) == len(cell.weights) == 109  # the original's HNAS cell: 109 variables


def test_fused_separable_conv_matches_numpy_and_round_trips():
    rng = np.random.default_rng(1)
    layer = FusedSeparableConvBN(5, 3, strides=2, weight_decay=4e-5, scope="c/separable_3x3_1",
                                 bn_scope="c/bn_sep_3x3_1")
    x = rng.normal(size=(2, 10, 9, 4)).astype("float32")
    layer(x)
    w = _randomise(layer, rng)
    got = layer(x, training=False).numpy()
    y = helpers.np_depthwise_conv2d(helpers.np_pad_fixed(x, 3, 1),
                                    w["c/separable_3x3_1/depthwise_weights"], 2)
    y = helpers.np_batch_norm(helpers.np_conv2d(y, w["c/separable_3x3_1/pointwise_weights"]),
                              *(w[f"c/bn_sep_3x3_1/{k}"] for k in
                                ("gamma", "beta", "moving_mean", "moving_variance")), 1e-3)
    np.testing.assert_allclose(got, y, rtol=1e-4, atol=1e-4)
    # slim's l2_regularizer on both kernels: wd * sum(w^2) / 2 each.
    want = sum(4e-5 * np.sum(w[f"c/separable_3x3_1/{k}_weights"] ** 2) / 2
               for k in ("depthwise", "pointwise"))
    np.testing.assert_allclose(float(sum(layer.losses)), want, rtol=1e-4)
    clone = FusedSeparableConvBN.from_config(layer.get_config())
    clone(x)
    clone.set_weights(layer.get_weights())
    np.testing.assert_allclose(clone(x, training=False).numpy(), got, rtol=1e-6)


def test_drop_path_follows_the_original_schedule():
    """k_t = 1 - min(1, t / T) * (1 - k); each example kept (scaled by 1 / k_t) or zeroed."""
    assert cell_keep_prob(0.6, 11, 12) == pytest.approx(0.6)
    assert cell_keep_prob(0.6, 2, 12) == pytest.approx(1 - 3 / 12 * 0.4)
    layer = DropPath(0.5)
    x = tf.ones([4000, 1, 1, 2])
    with pytest.raises(ConfigError, match="needs the training step"):
        layer(x, training=True)
    step = tf.Variable(0, dtype=tf.int64)
    bind_drop_path(keras.Sequential([layer]), step, total_steps=100)
    np.testing.assert_array_equal(layer(x, training=True).numpy(), x.numpy())  # t = 0: k_t = 1
    for t, keep in ((50, 0.75), (100, 0.5), (400, 0.5)):
        step.assign(t)
        y = layer(x, training=True).numpy()[:, 0, 0, 0]
        assert set(np.unique(y)) <= {0.0, np.float32(1 / keep)}
        assert abs(np.mean(y > 0) - keep) < 0.05  # 4000 draws: ~5 standard deviations
        np.testing.assert_array_equal(y, layer(x, training=True).numpy()[:, 0, 0, 1] * 0 + y)
    np.testing.assert_array_equal(layer(x, training=False).numpy(), x.numpy())


@pytest.mark.parametrize("levels,remove,expected", [
    # hnasnet: strides, upsampling and filter scaling per cell (the note's table).
    (nas.backbone_levels("nas_hnasnet", 8), False,
     [(1, False, 1), (1, False, 1), (1, False, 1), (2, False, 2), (2, False, 4), (1, True, 2),
      (2, False, 4), (1, False, 4), (2, False, 8), (1, False, 8), (1, True, 4), (1, True, 2)]),
    (nas.backbone_levels("nas_hnasnet", 8), True,
     [(1, False, 1), (1, False, 1), (1, False, 1), (2, False, 2), (2, False, 4), (1, True, 2),
      (2, False, 4), (1, False, 4), (1, False, 8), (1, False, 8), (1, False, 4), (1, True, 2)]),
    (nas.backbone_levels("nas_pnasnet", 16), False,
     [(2, False, 2)] + [(1, False, 2)] * 3 + [(2, False, 4)] + [(1, False, 4)] * 7),
])
def test_cell_schedule(levels, remove, expected):
    assert nas.cell_schedule(levels, remove) == expected


@pytest.mark.slow  # 8 s: a full backbone at 321x321; the cells' sizes: test_nas_cell_matches_numpy
def test_hnasnet_shapes_of_the_originals_test():
    """core/nas_network_test.py: stem filters 10, a 321x321 input."""
    spec = BACKBONES["nas_hnasnet"]
    config = ModelConfig(model_variant="nas_hnasnet", output_stride=8,
                         nas_stem_output_num_conv_filters=10)
    images = keras.Input((321, 321, 3))
    _, endpoints = spec.builder(Normalization(spec.normalization)(images), config, "nas_hnasnet")
    names = ["Stem"] + [f"Cell_{n}" for n in range(12)]
    model = keras.Model(images, [endpoints[name] for name in names])
    shapes = [tuple(t.shape[1:]) for t in model(np.zeros((1, 321, 321, 3), "float32"))]
    assert shapes == [(81, 81, 128), (81, 81, 50), (81, 81, 50), (81, 81, 50), (41, 41, 100),
                      (21, 21, 200), (41, 41, 100), (21, 21, 200), (21, 21, 200),
                      (11, 11, 400), (11, 11, 400), (21, 21, 200), (41, 41, 100)]


@pytest.mark.parametrize("kwargs,message", [
    (dict(model_variant="xception_65", nas_stem_output_num_conv_filters=10),
     "nas_stem_output_num_conv_filters applies to nas_pnasnet and nas_hnasnet only"),
    (dict(model_variant="mobilenet_v2", drop_path_keep_prob=0.7),
     "drop_path_keep_prob applies to nas_pnasnet and nas_hnasnet only"),
    (dict(model_variant="nas_pnasnet", drop_path_keep_prob=0.0),
     r"drop_path_keep_prob must be in \(0, 1\]. Received: drop_path_keep_prob=0.0"),
    (dict(model_variant="nas_hnasnet", output_stride=16),
     "nas_hnasnet's features are at output stride 8"),
    (dict(model_variant="nas_pnasnet", output_stride=32, nas_remove_os32_stride=True),
     "nas_remove_os32_stride keeps nas_pnasnet's features at output stride 16"),
    (dict(model_variant="nas_pnasnet", nas_stem_output_num_conv_filters=0),
     "nas_stem_output_num_conv_filters must be >= 1"),
    (dict(model_variant="nas_hnasnet", output_stride=8, quantization="per_channel"),
     "the NAS cells are not quantization-aware"),
])
def test_nas_config_errors(kwargs, message):
    with pytest.raises(ConfigError, match=message) as info:
        ModelConfig(**kwargs)
    assert "\n" not in str(info.value)
