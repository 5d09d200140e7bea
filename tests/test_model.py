"""build_model: shapes for every variant x output stride x decoder, taps, names, save/load."""

import os

import keras
import numpy as np
import pytest

import helpers
from deeplab_tf import ModelConfig, build_model
from deeplab_tf.modeling.backbones import BACKBONES
from deeplab_tf.config import MODEL_VARIANTS
from deeplab_tf.modeling.layers.original_layer import original_variable_map
from deeplab_tf.model import DeepLab

SIZE = 65


# The zoo's later variants cost more to build (NAS: 4-10 s each): two of them run by
# default, the rest in the slow set (their shapes and names: test_zoo_references.py).
_LATER_VARIANTS_IN_DEFAULT = {("resnet_v1_18", 32, False), ("resnet_v1_18_beta", 8, True)}


def _every_variant():
    for variant in MODEL_VARIANTS:
        # The MobileNetV3 families at one output stride here (every stride:
        # test_backbones_mobilenet_v3.py).
        mobilenet_v3 = variant.startswith(("mobilenet_v3", "mobilenet_edgetpu"))
        strides = (16,) if mobilenet_v3 else (8, 16, 32)
        for output_stride in strides:
            for use_decoder in (False, True):
                later = variant.startswith(("nas_", "resnet_v1_18"))
                slow = later and (variant, output_stride, use_decoder) not in \
                    _LATER_VARIANTS_IN_DEFAULT
                yield pytest.param(variant, output_stride, use_decoder,
                                   marks=[pytest.mark.slow] if slow else [],
                                   id=f"{use_decoder}-{output_stride}-{variant}")


@pytest.mark.parametrize("variant,output_stride,use_decoder", _every_variant())
def test_output_shape_every_variant(variant, output_stride, use_decoder):
    extra = {}
    if variant == "mobilenet_edgetpu" and use_decoder:
        with pytest.raises(ValueError, match="has no decoder taps in the original"):
            ModelConfig(model_variant=variant, decoder_output_stride=(4,))
        return
    if variant.startswith("nas_"):
        extra["nas_stem_output_num_conv_filters"] = 4
        # nas_hnasnet reaches output strides 16 and 32 with its classification head.
        extra["nas_use_classification_head"] = variant == "nas_hnasnet" and output_stride > 8
    config = ModelConfig(
        model_variant=variant, num_classes=3, output_stride=output_stride,
        atrous_rates=(1, 2) if variant != "mobilenet_v2" else (),
        decoder_output_stride=(4,) if use_decoder else (),
        depth_multiplier=0.25 if variant.startswith("mobilenet") else 1.0, **extra)
    model = build_model(config, input_shape=(SIZE, SIZE + 8, 3))
    stride = 4 if use_decoder else output_stride
    size = [(n - 1) // stride + 1 for n in (SIZE, SIZE + 8)]
    if variant == "nas_hnasnet" and output_stride == 8 and not use_decoder:
        # Its last cells come down from output stride 32 by 2h - 1 upsampling, as the original.
        size = [2 * (2 * ((n - 1) // 32 + 1) - 1) - 1 for n in (SIZE, SIZE + 8)]
    assert model.output_shape == (None, *size, 3)


def _features_model(variant, output_stride, size):
    """A model exposing the backbone's features and decoder taps."""
    from deeplab_tf.modeling.layers.normalization import Normalization

    spec = BACKBONES[variant]
    config = ModelConfig(model_variant=variant, output_stride=output_stride,
                         depth_multiplier=0.25 if variant == "mobilenet_v2" else 1.0)
    images = keras.Input((size, size, 3))
    features, endpoints = spec.builder(Normalization(spec.normalization)(images), config, variant)
    outputs = {"features": features}
    outputs.update({f"tap_{s}": endpoints[name] for s, name in spec.decoder_taps.items()
                    if s < output_stride})
    return keras.Model(images, outputs)


@pytest.mark.parametrize("variant", ["xception_41", "xception_71"])
def test_endpoint_strides(variant):
    size = 97
    model = _features_model(variant, 32, size)
    outputs = model(np.zeros((1, size, size, 3), "float32"))
    assert len(outputs) == 4
    for name, tensor in outputs.items():
        stride = 32 if name == "features" else int(name.split("_")[1])
        assert tensor.shape[1] == (size - 1) // stride + 1, (name, tensor.shape)


@pytest.mark.parametrize("tsv,kwargs", [
    ("xception65_os16_dec.tsv", dict(model_variant="xception_65", output_stride=16,
                                     atrous_rates=(6, 12, 18), decoder_output_stride=(4,),
                                     num_classes=21)),
    ("xception65_os8_dec.tsv", dict(model_variant="xception_65", output_stride=8,
                                    atrous_rates=(12, 24, 36), decoder_output_stride=(4,),
                                    num_classes=21)),
    ("xception71_os16_dec_city.tsv", dict(model_variant="xception_71", output_stride=16,
                                          atrous_rates=(6, 12, 18), decoder_output_stride=(4,),
                                          num_classes=19)),
])
def test_variables_equal_original_checkpoint_list(tsv, kwargs):
    reference = helpers.reference_variables(tsv)
    model = build_model(ModelConfig(**kwargs))
    ours = {name: tuple(v.shape) for name, v in original_variable_map(model).items()}
    assert sorted(set(reference) - set(ours)) == []
    assert sorted(set(ours) - set(reference)) == []
    assert ours == reference
    # Every Keras variable is mapped: nothing the checkpoint would not fill.
    assert len(ours) == len(model.weights)
    assert model.count_params() == sum(int(np.prod(s)) for s in reference.values())


def test_published_parameter_counts():
    model = build_model(ModelConfig(model_variant="xception_71", output_stride=16,
                                    atrous_rates=(6, 12, 18), decoder_output_stride=(4,),
                                    num_classes=19))
    assert model.count_params() == 43_693_899


def test_model_accepts_any_size_and_save_load_round_trip(tmp_path):
    config = helpers.tiny_config(model_variant="xception_41", output_stride=32,
                                 depth_multiplier=1.0, atrous_rates=(2,))
    model = build_model(config)
    rng = np.random.default_rng(0)
    for h, w in [(33, 41), (50, 37)]:
        x = rng.uniform(0, 255, size=(1, h, w, 3)).astype("float32")
        assert model(x).shape == (1, (h - 1) // 4 + 1, (w - 1) // 4 + 1, 3)
    x = rng.uniform(0, 255, size=(2, 33, 33, 3)).astype("float32")
    y = model(x, training=False).numpy()
    path = os.path.join(tmp_path, "model.keras")
    model.save(path)
    loaded = keras.models.load_model(path)
    np.testing.assert_allclose(loaded(x, training=False).numpy(), y, rtol=1e-5, atol=1e-5)
    assert sorted(original_variable_map(loaded)) == sorted(original_variable_map(model))
    clone = DeepLab.from_config(model.get_config())
    assert isinstance(loaded, DeepLab) and loaded.config == config
    assert [w.shape for w in clone.weights] == [w.shape for w in model.weights]


@pytest.mark.parametrize("kwargs,message", [
    (dict(model_variant="xception_99"), "model_variant"),
    (dict(output_stride=12), "output_stride"),
    (dict(output_stride=8, decoder_output_stride=(8,)), "decoder_output_stride"),
    (dict(decoder_output_stride=(4, 8)), "decoder_output_stride"),
    (dict(multi_grid=(1, 2)), "multi_grid"),
    (dict(num_classes=0), "num_classes"),
    (dict(model_variant="xception_65", depth_multiplier=0.5), "depth_multiplier"),
    (dict(atrous_rates=("a",)), "atrous_rates"),
])
def test_config_validation_messages(kwargs, message):
    with pytest.raises(ValueError, match=message) as info:
        ModelConfig(**kwargs)
    assert "\n" not in str(info.value) and "Received" in str(info.value)


def test_config_json_round_trip():
    config = ModelConfig(model_variant="xception_65", atrous_rates=[6, 12, 18],
                         decoder_output_stride=[4], image_pooling_crop_size=[513, 513])
    assert ModelConfig.from_dict(config.to_dict()) == config
    assert config.atrous_rates == (6, 12, 18)


def test_fine_tune_batch_norm_false_freezes_all_batch_norm():
    # As the original: batch norm always in inference mode, gamma / beta still trainable.
    model = build_model(helpers.tiny_config(fine_tune_batch_norm=False))
    bns = [l for l in model._flatten_layers() if isinstance(l, keras.layers.BatchNormalization)]
    assert bns and all(bn.always_inference and bn.trainable for bn in bns)


def test_image_pooling_crop_size_matches_global_pooling_at_crop_size():
    # With the pooling kernel equal to the whole feature map, the crop-size form and the
    # global form are the same computation.
    rng = np.random.default_rng(1)
    x = rng.uniform(0, 255, size=(1, 65, 65, 3)).astype("float32")
    a = build_model(helpers.tiny_config())
    for name, value in helpers.random_original_values(a).items():
        original_variable_map(a)[name].assign(value)
    b = build_model(helpers.tiny_config(image_pooling_crop_size=(65, 65)))
    b.set_weights(a.get_weights())
    np.testing.assert_allclose(a(x).numpy(), b(x).numpy(), rtol=1e-5, atol=1e-5)
    # At a larger input the crop-size pooling is local, so results differ.
    x = rng.uniform(0, 255, size=(1, 129, 129, 3)).astype("float32")
    assert np.abs(a(x).numpy() - b(x).numpy()).max() > 1e-3


def test_predict_labels_pads_with_the_mean_pixel_and_crops():
    from test_inference import assert_labels_match, calibrated_model

    from deeplab_tf import inference

    model = calibrated_model(helpers.tiny_config())
    images = np.random.default_rng(3).uniform(0, 255, (2, 37, 53, 3)).astype("float32")
    # NumPy: pad bottom/right to 3 * 16 + 1 by 4 * 16 + 1 with mobilenet_v2's mean pixel,
    # upsample the logits to the padded size (align corners), crop.
    padded = np.full((2, 49, 65, 3), 127.5, np.float32)
    padded[:, :37, :53] = images
    logits = model(padded, training=False).numpy().astype(np.float64)
    reference = helpers.np_resize_bilinear_align_corners(logits, 49, 65)[:, :37, :53]
    labels = model.predict_labels(images, batch_size=1)
    assert labels.dtype == np.int32 and labels.shape == (2, 37, 53)
    assert_labels_match(labels, reference)
    np.testing.assert_array_equal(model.predict_labels(images[0]), labels[0])
    # Scales and flip reach the multi-scale path (checked against NumPy in test_inference).
    multi = model.predict_labels(images, scales=(0.75, 1.25), add_flipped_images=True)
    expected = inference.predict_labels(model, padded, scales=(0.75, 1.25),
                                        add_flipped_images=True).numpy()[:, :37, :53]
    np.testing.assert_array_equal(multi, expected)
    assert (multi != labels).any()  # the options changed something
    with pytest.raises(ValueError, match=r"images must be RGB .*Received: shape=\(37, 53\)"):
        model.predict_labels(images[0, ..., 0])
