"""The Dense Prediction Cell: the original's JSON format (parsing, the shipped Cityscapes cell,
errors), the head against an independent NumPy cell (wiring, anisotropic rates scaled by
16 // output_stride, a 1x1 branch and a pyramid-pooling branch), and the Cityscapes cell's
rates in the built head."""

import json

import keras
import numpy as np
import pytest

import helpers
from deeplab_tf import ModelConfig
from deeplab_tf.config.dense_prediction_cell import (CITYSCAPES_CELL, DenseCellBranch,
                                                     load_cell_json, parse_cell)
from deeplab_tf.errors import ConfigError
from deeplab_tf.modeling.heads.dense_prediction_cell import dense_prediction_cell
from deeplab_tf.modeling.layers.original_layer import iter_original_layers
from deeplab_tf.modeling.layers.separable_conv_bn import SeparableConvBN

# A small cell in the original's format: a separable branch on the features, one on
# branch 0, a 1x1 branch and a pyramid-pooling branch.
CELL = [{"kernel": 3, "rate": [1, 2], "op": "conv", "input": -1},
        {"kernel": 3, "rate": [2, 1], "op": "conv", "input": 0},
        {"kernel": 1, "op": "conv", "input": -1},
        {"op": "pyramid_pooling", "grid_size": [2, 2], "input": -1}]


def _head(config, channels):
    features = keras.Input((None, None, channels))
    return keras.Model(features, dense_prediction_cell(features, config))


def _np_cell(x, w, cell, multiplier, crop, output_stride):
    eps = 1e-5

    def bn_relu(y, scope):
        return np.maximum(helpers.np_batch_norm(
            y, w[f"{scope}/BatchNorm/gamma"], w[f"{scope}/BatchNorm/beta"],
            w[f"{scope}/BatchNorm/moving_mean"], w[f"{scope}/BatchNorm/moving_variance"], eps), 0)

    outputs = []
    for i, branch in enumerate(cell):
        source = x if branch["input"] < 0 else outputs[branch["input"]]
        scope = f"meta_architecture/branch{i}"
        if branch["op"] == "pyramid_pooling":
            kernel = [helpers.scale_dimension(c, 1.0 / (output_stride * g))
                      for c, g in zip(crop, branch["grid_size"])]
            pooled = np.mean(np.stack([p for _, _, p in helpers._np_windows(
                source, kernel[0], kernel[1], 1, 1)]), axis=0)
            y = bn_relu(helpers.np_conv2d(pooled, w[f"{scope}/weights"]), scope)
            y = helpers.np_resize_bilinear_align_corners(y, *source.shape[1:3])
        elif branch["kernel"] == 1:
            y = bn_relu(helpers.np_conv2d(source, w[f"{scope}/weights"]), scope)
        else:
            rate = [r * multiplier for r in branch["rate"]]
            y = helpers.np_depthwise_conv2d(helpers.np_pad_same(source, 3, 1, rate),
                                            w[f"{scope}_depthwise/depthwise_weights"], 1, rate)
            y = bn_relu(y, f"{scope}_depthwise")
            y = bn_relu(helpers.np_conv2d(y, w[f"{scope}_pointwise/weights"]),
                        f"{scope}_pointwise")
        outputs.append(y)
    y = np.concatenate(outputs, axis=-1)
    return bn_relu(helpers.np_conv2d(y, w["meta_architecture/concat_projection/weights"]),
                   "meta_architecture/concat_projection")


@pytest.mark.parametrize("output_stride", [16, 8])
def test_cell_matches_numpy(output_stride):
    """Tolerance 1e-4 (float32 against float64). The crop's features are 13x15 at OS8 and
    7x8 at OS16; the pyramid pooling pools a (crop / (OS * 2)) window."""
    crop = (97, 113)
    size = [helpers.scale_dimension(c, 1.0 / output_stride) for c in crop]
    config = ModelConfig(model_variant="xception_41", output_stride=output_stride,
                         dense_prediction_cell=CELL, image_pooling_crop_size=crop)
    model = _head(config, 6)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, *size, 6)).astype("float32")
    model(x)
    w = {}
    for layer in iter_original_layers(model):
        for name, var in layer.original_variables().items():
            value = (rng.uniform(0.5, 1.5, var.shape) if name.endswith(("variance", "gamma"))
                     else rng.normal(0.0, 0.3, var.shape)).astype("float32")
            var.assign(value)
            w[name] = value
    assert sorted(w) == sorted(
        [f"meta_architecture/branch{i}_{part}/{v}" for i in (0, 1) for part, v in
         (("depthwise", "depthwise_weights"), ("pointwise", "weights"))]
        + [f"meta_architecture/{s}/weights" for s in ("branch2", "branch3", "concat_projection")]
        + [f"meta_architecture/{s}/BatchNorm/{k}" for s in
           ("branch0_depthwise", "branch0_pointwise", "branch1_depthwise", "branch1_pointwise",
            "branch2", "branch3", "concat_projection")
           for k in ("gamma", "beta", "moving_mean", "moving_variance")])
    got = model(x, training=False).numpy()
    want = _np_cell(x.astype(np.float64), w, CELL, 16 // output_stride, crop, output_stride)
    assert got.shape == (2, *size, 256)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * np.abs(want).max())


@pytest.mark.parametrize("output_stride,rates", [
    (16, [(1, 6), (18, 15), (6, 3), (1, 1), (6, 21)]),
    (8, [(2, 12), (36, 30), (12, 6), (2, 2), (12, 42)])])
def test_cityscapes_cell_rates_and_wiring(output_stride, rates):
    config = ModelConfig(model_variant="xception_71", output_stride=output_stride,
                         dense_prediction_cell=CITYSCAPES_CELL, decoder_output_stride=(4,))
    model = _head(config, 8)
    branches = {layer.scope: layer for layer in model._flatten_layers()
                if isinstance(layer, SeparableConvBN)}
    assert sorted(branches) == [f"meta_architecture/branch{i}" for i in range(5)]
    for i, rate in enumerate(rates):
        assert branches[f"meta_architecture/branch{i}"].depthwise.conv.dilation_rate == rate
    # Wiring: branch0 reads the features, branch1 branch0, branch2 branch1, branch3 and
    # branch4 branch0.
    sources = {scope: layer._inbound_nodes[0].input_tensors[0]._keras_history.operation
               for scope, layer in branches.items()}
    assert isinstance(sources["meta_architecture/branch0"], keras.layers.InputLayer)
    assert {scope: source.name for scope, source in sources.items()
            if scope != "meta_architecture/branch0"} == {
        "meta_architecture/branch1": "meta_architecture.branch0",
        "meta_architecture/branch2": "meta_architecture.branch1",
        "meta_architecture/branch3": "meta_architecture.branch0",
        "meta_architecture/branch4": "meta_architecture.branch0"}
    assert branches["meta_architecture/branch0"].depthwise.conv.kernel.shape == (3, 3, 8, 1)


def test_json_format_and_shipped_cell(tmp_path):
    cell = parse_cell(CITYSCAPES_CELL)
    assert cell[0] == DenseCellBranch("conv", -1, (3, 3), (1, 6))
    assert [b.input for b in cell] == [-1, 0, 1, 0, 0]
    # The original's file name is known without the file; a file is read.
    assert load_cell_json("deeplab/core/dense_prediction_cell_branch5_top1_cityscapes.json") == cell
    path = tmp_path / "cell.json"
    path.write_text(json.dumps(CELL))
    loaded = load_cell_json(str(path))
    assert loaded[3] == DenseCellBranch("pyramid_pooling", -1, (1, 1), (1, 1), (2, 2))
    assert [b.to_json() for b in loaded] == [
        {"op": "conv", "input": -1, "kernel": [3, 3], "rate": [1, 2]},
        {"op": "conv", "input": 0, "kernel": [3, 3], "rate": [2, 1]},
        {"op": "conv", "input": -1, "kernel": [1, 1], "rate": [1, 1]},
        {"op": "pyramid_pooling", "input": -1, "kernel": [1, 1], "grid_size": [2, 2]}]
    config = ModelConfig(model_variant="xception_71", dense_prediction_cell=CITYSCAPES_CELL,
                         decoder_output_stride=(4,))
    assert ModelConfig.from_json(config.to_json()) == config
    assert config.to_dict()["dense_prediction_cell"][1] == {
        "op": "conv", "input": 0, "kernel": [3, 3], "rate": [18, 15]}


@pytest.mark.parametrize("content,message", [
    ("not json", "is not JSON"),
    ('{"op": "conv"}', "must be a list of branches"),
    ('[{"op": "pool", "input": -1}]', "branch 0: op must be one of conv, pyramid_pooling. "
                                      "Received: op='pool'"),
    ('[{"op": "conv", "input": 0, "kernel": 3}]', "branch 0: input must be -1"),
    ('[{"op": "conv", "input": -1, "kernel": 3, "rate": [0, 2]}]', "branch 0: rate must be"),
    ('[{"op": "pyramid_pooling", "input": -1}]', "pyramid_pooling needs grid_size"),
    ('[{"op": "conv", "input": -1, "rates": [1, 2]}]', "unknown keys \\['rates'\\]"),
])
def test_bad_cells_are_one_line_errors(tmp_path, content, message):
    path = tmp_path / "cell.json"
    path.write_text(content)
    with pytest.raises(ConfigError, match=message) as info:
        load_cell_json(str(path))
    assert "\n" not in str(info.value) and str(path) in str(info.value)
    with pytest.raises(ConfigError, match="Cannot read the dense prediction cell"):
        load_cell_json(str(tmp_path / "missing.json"))


@pytest.mark.parametrize("kwargs,message", [
    (dict(output_stride=32), "dense_prediction_cell needs output_stride 8 or 16 .* "
                             "Received: output_stride=32"),
    (dict(aspp_with_batch_norm=False), "dense_prediction_cell needs aspp_with_batch_norm=true"),
    (dict(dense_prediction_cell=CELL), "pyramid_pooling branches need image_pooling_crop_size"),
])
def test_config_errors(kwargs, message):
    values = dict(model_variant="xception_71", dense_prediction_cell=CITYSCAPES_CELL)
    values.update(kwargs)
    with pytest.raises(ConfigError, match=message):
        ModelConfig(**values)
