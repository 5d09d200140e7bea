"""The original's head switches of the MobileNetV3 recipe: the image-pooling branch as a
squeeze-and-excitation gate (sigmoid / q-sigmoid), ASPP without its concat projection, the
sum-merge decoder and the decoder whose output is the logits.

Each is checked against independent NumPy code, by its variable names, by the checkpoint
errors that name the flag to set, by the last-layer scopes and gradient multipliers, and by
``ModelConfig``'s one-line errors for combinations the original cannot build.
"""

from __future__ import annotations

import functools

import keras
import numpy as np
import pytest

import helpers
from deeplab_tf import ModelConfig
from deeplab_tf.checkpoints.loading import load_checkpoint
from deeplab_tf.checkpoints.paths import CheckpointError
from deeplab_tf.checkpoints.strict import load_for_inference
from deeplab_tf.errors import ConfigError
from deeplab_tf.model import build_model
from deeplab_tf.modeling.heads.aspp import aspp
from deeplab_tf.modeling.heads.decoder import decoder
from deeplab_tf.modeling.layers.original_layer import original_variable_map
from deeplab_tf.modeling.scopes import gradient_multipliers

# The zoo's MobileNetV3 head on a tiny backbone (the switches do not depend on it).
V3_HEAD = dict(aspp_convs_filters=16, aspp_with_concat_projection=False,
               aspp_with_squeeze_and_excitation=True, image_se_uses_qsigmoid=True,
               decoder_use_sum_merge=True, decoder_output_is_logits=True,
               decoder_output_stride=(8,))


def tiny_v3_head(num_classes=3, **overrides):
    return helpers.tiny_config(**dict(V3_HEAD, num_classes=num_classes,
                                      decoder_filters=num_classes, **overrides))


def np_conv1x1(x, values, scope, bias=False, batch_norm=False):
    y = helpers.np_conv2d(x.astype(np.float64), values[f"{scope}/weights"])
    if bias:
        y = y + values[f"{scope}/biases"]
    if batch_norm:
        y = helpers.np_batch_norm(y, *(values[f"{scope}/BatchNorm/{k}"] for k in
                                       ("gamma", "beta", "moving_mean", "moving_variance")),
                                  1e-5)
    return y


def _randomise(model, seed):
    return helpers.assign_original_values(model, helpers.random_original_values(
        model, seed, scale=1.0))


# ---------------------------------------------------------------------------------------------
# ASPP: the image-level gate.

@pytest.mark.parametrize("qsigmoid, projection, crop", [
    (True, False, (33, 41)),  # the zoo's form: q-sigmoid, no projection, strided pooling
    (False, True, None),  # sigmoid gate after the concat projection, global pooling
])
def test_image_gate_matches_numpy(qsigmoid, projection, crop):
    config = ModelConfig(output_stride=8, aspp_convs_filters=6, image_pooling_crop_size=crop,
                         image_pooling_stride=(2, 3), aspp_with_concat_projection=projection,
                         aspp_with_squeeze_and_excitation=True, image_se_uses_qsigmoid=qsigmoid)
    features = keras.Input((9, 13, 5))
    model = keras.Model(features, aspp(features, config))
    names = sorted(original_variable_map(model))
    assert "image_pooling/biases" in names and "image_pooling/weights" in names
    assert not any(n.startswith("image_pooling/BatchNorm") for n in names)
    assert any(n.startswith("concat_projection/") for n in names) == projection
    values = _randomise(model, 1)
    x = np.random.default_rng(2).normal(0.0, 1.0, (2, 9, 13, 5)).astype(np.float32)
    got = model(x, training=False).numpy()

    if crop is None:
        pooled = x.astype(np.float64).mean(axis=(1, 2), keepdims=True)
    else:  # window: the crop's feature size, scale_dimension(33, 1/8) x scale_dimension(41, 1/8)
        pooled = helpers.np_avg_pool_valid(x.astype(np.float64), (5, 6), (2, 3))
        assert pooled.shape[1:3] == (3, 3)
    gate = np_conv1x1(pooled, values, "image_pooling", bias=True)
    gate = helpers.np_q_sigmoid(gate) if qsigmoid else 1.0 / (1.0 + np.exp(-gate))
    gate = helpers.np_resize_bilinear_align_corners(gate, 9, 13)
    branch = np.maximum(np_conv1x1(x, values, "aspp0", batch_norm=True), 0.0)
    if projection:
        branch = np.maximum(np_conv1x1(branch, values, "concat_projection", batch_norm=True), 0)
    want = branch * gate
    assert gate.min() < 0.5 < gate.max()  # the gate opens and closes
    if crop is not None:  # and varies over the image
        assert np.std(gate, axis=(1, 2)).max() > 0.05
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


# ---------------------------------------------------------------------------------------------
# The decoder: sum merge, output is logits.

def _decoder_model(config, tap_shapes):
    features = keras.Input((3, 4, 6))
    taps = {stride: keras.Input(shape) for stride, shape in tap_shapes.items()}
    names = {stride: f"tap_{stride}" for stride in taps}
    endpoints = {names[stride]: tensor for stride, tensor in taps.items()}
    outputs = decoder(features, endpoints, config, names)
    return keras.Model([features] + [taps[s] for s in sorted(taps, reverse=True)], outputs)


@pytest.mark.parametrize("decoder_output_stride", [(8,), (8, 4)])
def test_sum_merge_decoder_output_is_logits_matches_numpy(decoder_output_stride):
    config = ModelConfig(num_classes=4, decoder_filters=4, output_stride=16,
                         decoder_output_stride=decoder_output_stride, decoder_use_sum_merge=True,
                         decoder_output_is_logits=True)
    tap_shapes = {8: (5, 7, 6), 4: (9, 13, 3)}
    tap_shapes = {s: tap_shapes[s] for s in decoder_output_stride}
    model = _decoder_model(config, tap_shapes)
    suffixes = ["", "_1"][:len(decoder_output_stride)]
    want_names = sorted(f"decoder/{conv}{suffix}/{var}" for suffix in suffixes
                        for conv in ("decoder_conv0", "feature_projection0")
                        for var in ("weights", "biases"))
    assert sorted(original_variable_map(model)) == want_names
    values = _randomise(model, 3)
    rng = np.random.default_rng(4)
    inputs = [rng.normal(0.0, 1.0, (2,) + tuple(t.shape[1:])).astype(np.float32)
              for t in model.inputs]
    got = model(inputs, training=False).numpy()

    net = inputs[0].astype(np.float64)
    for stage, tap in zip(suffixes, inputs[1:]):
        net = helpers.np_resize_bilinear_align_corners(net, *tap.shape[1:3])
        net = (np_conv1x1(net, values, f"decoder/decoder_conv0{stage}", bias=True)
               + np_conv1x1(tap, values, f"decoder/feature_projection0{stage}", bias=True))
    assert got.shape == net.shape == (2,) + tuple(tap_shapes[decoder_output_stride[-1]][:2]) + (4,)
    np.testing.assert_allclose(got, net, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("switches, shapes", [
    # Sum merge, separable: decoder_split_sep_conv0 (BN + ReLU) + a projection as wide.
    (dict(decoder_use_sum_merge=True, decoder_filters=8),
     {"decoder/feature_projection0/weights": (1, 1, 3, 8),
      "decoder/decoder_split_sep_conv0_depthwise/depthwise_weights": (3, 3, 6, 1),
      "decoder/decoder_split_sep_conv0_pointwise/weights": (1, 1, 6, 8)}),
    # Sum merge, not separable: a 3x3 decoder_conv0 with batch norm.
    (dict(decoder_use_sum_merge=True, decoder_filters=8, decoder_use_separable_conv=False),
     {"decoder/feature_projection0/weights": (1, 1, 3, 8),
      "decoder/decoder_conv0/weights": (3, 3, 6, 8)}),
    # Concat merge whose output is the logits: two linear 3x3 convs with biases, plain.
    (dict(decoder_output_is_logits=True, decoder_filters=4, num_classes=4),
     {"decoder/feature_projection0/weights": (1, 1, 3, 48),
      "decoder/feature_projection0/biases": (48,),
      "decoder/decoder_conv0/decoder_conv0_1/weights": (3, 3, 54, 4),
      "decoder/decoder_conv0/decoder_conv0_1/biases": (4,),
      "decoder/decoder_conv0/decoder_conv0_2/weights": (3, 3, 4, 4),
      "decoder/decoder_conv0/decoder_conv0_2/biases": (4,)}),
])
def test_decoder_variants_variables(switches, shapes):
    config = ModelConfig(output_stride=16, decoder_output_stride=(4,), **switches)
    model = _decoder_model(config, {4: (9, 13, 3)})
    got = {name: tuple(v.shape) for name, v in original_variable_map(model).items()}
    assert {name: got.get(name) for name in shapes} == shapes
    assert all(name.startswith(tuple(n.rsplit("/", 1)[0] for n in shapes)) for name in got)
    biases = any(name.endswith("/biases") for name in got)
    assert biases == bool(switches.get("decoder_output_is_logits"))


# ---------------------------------------------------------------------------------------------
# The network, checkpoints, last layers.

@functools.lru_cache(maxsize=None)
def _tiny_v3_head_model(num_classes=3):
    return build_model(tiny_v3_head(num_classes))


@pytest.mark.parametrize("variant", [
    "mobilenet_v2",
    pytest.param("xception_41", marks=pytest.mark.slow),
    pytest.param("resnet_v1_50_beta", marks=pytest.mark.slow),
    pytest.param("mobilenet_v3_large_seg", marks=pytest.mark.slow)])
def test_network_outputs_the_decoder_logits(variant):
    """Any backbone: no logits layer, the decoder's sum at stride 8 is the model output."""
    if variant == "mobilenet_v2":
        model, config = _tiny_v3_head_model(), tiny_v3_head()
    else:
        config = ModelConfig(model_variant=variant, num_classes=3, output_stride=16,
                             **dict(V3_HEAD, decoder_filters=3))
        model = build_model(config)
    names = original_variable_map(model)
    assert not any(name.startswith(("logits/", "concat_projection/")) for name in names)
    assert model.layers[-1].name == "decoder.sum" and model.output.dtype == "float32"
    logits = model(np.zeros((1, 65, 81, 3), np.float32), training=False)
    assert logits.shape == (1, 9, 11, 3)


def test_checkpoint_with_another_head_names_the_flags(tmp_path):
    values = helpers.random_original_values(_tiny_v3_head_model(), seed=0)
    prefix = helpers.write_tf1_checkpoint(str(tmp_path / "v3.ckpt"), values)
    plain = helpers.tiny_config(decoder_output_stride=(8,), aspp_convs_filters=16)
    with pytest.raises(CheckpointError) as info:
        load_for_inference(build_model(plain), prefix)
    message = str(info.value)
    assert "\n" not in message
    for flag in ("add --aspp_with_squeeze_and_excitation=true",
                 "add --aspp_with_concat_projection=false", "add --decoder_use_sum_merge=true",
                 "add --decoder_output_is_logits=true"):
        assert flag in message
    assert "--decoder_output_stride" not in message and "--atrous_rates" not in message
    # The other way round: a checkpoint with the default head, a model with the V3 head.
    values = helpers.random_original_values(build_model(plain), seed=0)
    prefix = helpers.write_tf1_checkpoint(str(tmp_path / "plain.ckpt"), values)
    with pytest.raises(CheckpointError) as info:
        load_for_inference(_tiny_v3_head_model(), prefix)
    for flag in ("--aspp_with_squeeze_and_excitation=false",
                 "--aspp_with_concat_projection=true", "--decoder_use_sum_merge=false",
                 "--decoder_output_is_logits=false"):
        assert flag in str(info.value)


def test_last_layers_and_gradient_multipliers_follow_the_original(tmp_path):
    """The original's prefixes: image_pooling, aspp, decoder are last layers (the decoder's
    logits convolutions too); with last_layers_contain_logits_only nothing is (no logits
    scope); biases get twice the gradient."""
    model = _tiny_v3_head_model()
    names = {var.path: name for name, var in original_variable_map(model).items()}
    by_name = dict(zip([names.get(v.path, "") for v in model.trainable_variables],
                       gradient_multipliers(model, 10.0)))
    assert by_name["image_pooling/biases"] == 20.0 and by_name["image_pooling/weights"] == 10.0
    assert by_name["decoder/decoder_conv0/biases"] == 20.0
    assert by_name["decoder/feature_projection0/weights"] == 10.0
    assert by_name["aspp0/weights"] == 10.0 and by_name["MobilenetV2/Conv/weights"] == 1.0
    se_free = dict(zip([names.get(v.path, "") for v in model.trainable_variables],
                       gradient_multipliers(model, 10.0, last_layers_contain_logits_only=True)))
    assert se_free["decoder/decoder_conv0/weights"] == 1.0
    assert se_free["decoder/decoder_conv0/biases"] == 2.0

    # A checkpoint of 3 classes into a 2-class model: --initialize_last_layer=false skips the
    # whole head; with last_layers_contain_logits_only the decoder is loaded, and fails.
    values = helpers.random_original_values(model, seed=1)
    prefix = helpers.write_tf1_checkpoint(str(tmp_path / "model.ckpt"), values)
    two = _tiny_v3_head_model(2)
    report = load_checkpoint(two, prefix, initialize_last_layer=False)
    skipped = sorted(name for name, _, _ in report.skipped_last_layers)
    assert skipped == sorted(n for n in values if n.startswith(("image_pooling", "aspp0",
                                                                 "decoder/")))
    assert all(name.startswith("MobilenetV2/") for name in report.loaded)
    with pytest.raises(CheckpointError, match="--last_layers_contain_logits_only loads this "
                                              "head layer"):
        load_checkpoint(two, prefix, initialize_last_layer=False,
                        last_layers_contain_logits_only=True)


@pytest.mark.parametrize("overrides, message", [
    (dict(model_variant="mobilenet_edgetpu", depth_multiplier=1.0, decoder_output_stride=(4,)),
     "has no decoder taps in the original"),
    (dict(image_se_uses_qsigmoid=True), "needs aspp_with_squeeze_and_excitation=True"),
    (dict(aspp_with_squeeze_and_excitation=True, add_image_level_feature=False),
     "needs add_image_level_feature=True"),
    (dict(aspp_with_squeeze_and_excitation=True, aspp_with_concat_projection=False,
          atrous_rates=(6, 12)), "allows no atrous branches"),
    (dict(decoder_use_sum_merge=True, decoder_output_stride=()), "decoder_use_sum_merge=True "
                                                                 "needs a decoder"),
    (dict(decoder_output_is_logits=True, decoder_output_stride=()), "decoder_output_is_logits"
                                                                    "=True needs a decoder"),
    (dict(decoder_output_is_logits=True, decoder_filters=256),
     "decoder_filters must equal num_classes=3"),
])
def test_invalid_head_combinations_are_one_line_config_errors(overrides, message):
    with pytest.raises(ConfigError, match=message) as info:
        helpers.tiny_config(**overrides)
    assert "\n" not in str(info.value)
    assert "Received" in str(info.value) or "needs" in str(info.value)


def test_class_count_of_a_checkpoint_without_logits_layer():
    """deeplab-export / deeplab-convert-checkpoint take the class count from the checkpoint:
    the logits' biases, or the decoder's when it outputs the logits."""
    from deeplab_tf.checkpoints.loading import logits_classes

    v3 = {"decoder/feature_projection0/biases": [19], "decoder/decoder_conv0/biases": [19],
          "decoder/decoder_conv0/weights": [1, 1, 128, 19], "image_pooling/biases": [128]}
    assert logits_classes(v3) == 19
    assert logits_classes({"logits/semantic/biases": [21], **v3}) == 21
    assert logits_classes({"decoder/decoder_conv0_pointwise/BatchNorm/beta": [256]}) is None


@pytest.mark.slow
def test_mixed_precision_keeps_the_decoder_logits_in_float32():
    import keras

    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        model = build_model(tiny_v3_head())
    finally:
        keras.mixed_precision.set_global_policy(previous)
    assert model.get_layer("decoder.feature_projection0").compute_dtype == "float32"
    assert model.get_layer("decoder.decoder_conv0").compute_dtype == "float32"
    assert model.get_layer("MobilenetV2.Conv").compute_dtype == "bfloat16"
    logits = model(np.zeros((1, 33, 33, 3), np.float32), training=False)
    assert logits.dtype == "float32" and logits.shape == (1, 5, 5, 3)


def test_config_round_trip_and_layer_configs():
    config = tiny_v3_head()
    assert ModelConfig.from_json(config.to_json()) == config
    model = _tiny_v3_head_model()
    pooling = model.get_layer("image_pooling")
    assert pooling.conv_kwargs["activation"] == "q_sigmoid"
    assert not pooling.conv_kwargs["use_batch_norm"]
    clone = type(pooling).from_config(pooling.get_config())
    assert clone.get_config() == pooling.get_config()
