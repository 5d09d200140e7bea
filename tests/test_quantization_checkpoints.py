"""The zoo's 8-bit checkpoints (issue 23): a checkpoint in the original's quantized-graph
naming — names built by the original's rule from its float variable list
(tests/data/original_variables/mobilenetv2_os8.tsv) — loads into the 8-bit preset, and its
ranges are used; float / quantized checkpoints are told apart; strict loading names what is
missing; the per-tensor model converts to an all-uint8 TFLite model like the original's."""

import tarfile

import numpy as np
import pytest

import helpers
from deeplab_tf import presets
from deeplab_tf.checkpoints.paths import CheckpointError
from deeplab_tf.checkpoints.quantization import checkpoint_quantization, config_for_checkpoint
from deeplab_tf.checkpoints.strict import load_for_inference
from deeplab_tf.model import DeepLab, build_model
from deeplab_tf.modeling.layers.original_layer import original_variable_map

PRESET = "mobilenetv2_dm05_coco_voc_trainaug_8bit"


def quantized_graph_names(float_names):
    """The range variables contrib.quantize adds to DeepLab's MobileNetV2, by its rule: every
    convolution (a ``weights`` / ``depthwise_weights`` variable) gets ``<scope>/weights_quant``
    and ``<scope>/act_quant``; every residual block (an ``expanded_conv_N`` whose project
    conv keeps the previous block's output depth) ``<block>/post_activation_bypass_quant``."""
    names, depth = [], {}
    for name, shape in float_names.items():
        scope, last = name.rsplit("/", 1)
        if last in ("weights", "depthwise_weights"):
            names += [f"{scope}/{q}/{m}" for q in ("weights_quant", "act_quant")
                      for m in ("min", "max")]
            if scope.endswith("/project"):
                depth[scope[:-len("/project")]] = (shape[2], shape[3])
    blocks = list(depth)
    for previous, block in zip(blocks, blocks[1:]):
        expanded_input = depth[previous][1]  # the previous block's output depth
        if depth[block][1] == expanded_input:
            names += [f"{block}/post_activation_bypass_quant/{m}" for m in ("min", "max")]
    return names


@pytest.fixture(scope="module")
def zoo(tmp_path_factory):
    """The x0.5 8-bit preset's tarball written in the original's names (random float
    weights, a distinct range per quantizer, the training graph's moving-average shadows)."""
    float_names = helpers.reference_variables("mobilenetv2_os8.tsv")
    range_names = quantized_graph_names(float_names)
    preset = presets.get(PRESET)
    model = build_model(preset.model_config)
    values = {name: value for name, value in helpers.random_original_values(model).items()
              if "_quant/" not in name}  # the float variables; the ranges below
    rng = np.random.default_rng(3)
    for name in range_names:
        if name.endswith("/min"):
            # Ranges of ReLU6 outputs start at 0; weights, linear outputs (projections,
            # residual sums, the logits) are signed.
            relu6 = "act_quant" in name and "/project/" not in name and "logits" not in name
            low = 0.0 if relu6 else -rng.uniform(0.5, 3.0)
            values[name] = np.float32(low)
            values[name[:-3] + "max"] = np.float32(rng.uniform(0.5, 3.0))
    values["MobilenetV2/Conv/act_quant/max"] = np.float32(0.3)  # clips: the range is used
    for quantizer in ("MobilenetV2/Conv/act_quant", "logits/semantic/act_quant"):
        for m in ("min", "max"):  # training-only state: ignored
            values[f"{quantizer}/{quantizer}/{m}/biased"] = np.float32(0.1)
            values[f"{quantizer}/{quantizer}/{m}/local_step"] = np.float32(3000.0)
    values["global_step"] = np.int64(3000)
    root = tmp_path_factory.mktemp("zoo8")
    folder = preset.tarball[: -len(".tar.gz")]
    staging = root / "staging" / folder
    staging.mkdir(parents=True)
    helpers.write_tf1_checkpoint(str(staging / "model.ckpt"), values)
    tarball = str(root / preset.tarball)
    with tarfile.open(tarball, "w:gz") as archive:
        archive.add(str(staging), arcname=folder)
    return {"tarball": tarball, "prefix": str(staging / "model.ckpt"), "values": values,
            "range_names": range_names, "float_names": float_names, "model": model}


def test_zoo_8bit_checkpoint_loads_by_name_and_its_ranges_are_used(zoo):
    # The rule: 55 convolutions (the list's 55 kernels) and 10 residual blocks, 120 ranges,
    # exactly the model's.
    assert len(zoo["range_names"]) == 2 * (55 + 55 + 10)
    assert sorted(name for name in original_variable_map(zoo["model"]) if "_quant/" in name) \
        == sorted(zoo["range_names"])
    assert checkpoint_quantization(zoo["prefix"]) == "per_tensor"
    model = DeepLab.from_preset(PRESET, checkpoint=zoo["tarball"])
    variables = original_variable_map(model)
    for name in zoo["range_names"]:
        np.testing.assert_array_equal(variables[name].numpy(), zoo["values"][name], err_msg=name)
    # Strict inference loading accepts it (shadows and global_step ignored).
    report = load_for_inference(build_model(model.config), zoo["prefix"], model.config)
    assert not report.unused_in_checkpoint and any("local_step" in n for n in report.ignored)
    # The first layer computes Q_act(relu6(conv(normalised, Q_w(w * gamma / sigma)) + bias))
    # with the checkpoint's ranges, one per tensor: NumPy from the normalised input.
    import keras

    probe = keras.Model(model.input, [model.get_layer("normalization").output,
                                      model.get_layer("MobilenetV2.Conv").output])
    pixels = np.random.default_rng(0).integers(0, 256, (1, 17, 17, 3)).astype(np.float32)
    normalised, got = (t.numpy() for t in probe(pixels))
    v = zoo["values"]
    scope = "MobilenetV2/Conv"
    scale = v[f"{scope}/BatchNorm/gamma"] / np.sqrt(v[f"{scope}/BatchNorm/moving_variance"] + 1e-3)
    kernel = helpers.np_fake_quant(v[f"{scope}/weights"] * scale, v[f"{scope}/weights_quant/min"],
                                   v[f"{scope}/weights_quant/max"], narrow_range=True)
    conv = helpers.np_conv2d(helpers.np_pad_same(normalised, 3, 2, 1), kernel, 2)
    bias = v[f"{scope}/BatchNorm/beta"] - v[f"{scope}/BatchNorm/moving_mean"] * scale
    want = helpers.np_fake_quant(np.clip(conv + bias, 0, 6), v[f"{scope}/act_quant/min"],
                                 v[f"{scope}/act_quant/max"])
    # float32 against float64 arithmetic: a value on a rounding boundary may take the
    # neighbouring level (one step), rarely.
    step = (v[f"{scope}/act_quant/max"] - v[f"{scope}/act_quant/min"]) / 255
    error = np.abs(got - want)
    assert error.max() <= step * 1.001 and (error > 1e-4).mean() < 0.01, error.max()
    np.testing.assert_allclose(got / step, np.round(got / step), atol=1e-3)  # on its grid
    assert (np.abs(got - 0.3) < 1e-5).sum() > 10  # clipped at the checkpoint's max


@pytest.mark.slow
def test_float_and_quantized_checkpoints_are_told_apart(zoo, tmp_path):
    float_model = build_model(presets.get("mobilenetv2_dm05_coco_voc_trainaug").model_config)
    values = {name: value for name, value in zoo["values"].items() if "_quant/" not in name}
    float_prefix = helpers.write_tf1_checkpoint(str(tmp_path / "float" / "model.ckpt"), values)
    assert checkpoint_quantization(float_prefix) is None
    config = float_model.config
    assert config_for_checkpoint(config, zoo["prefix"]).quantization == "per_tensor"
    assert config_for_checkpoint(config, float_prefix) is config
    # --quantize_delay_step on a float checkpoint: the ranges are missing, said in one line.
    asked = config_for_checkpoint(config, float_prefix, requested="per_channel")
    with pytest.raises(CheckpointError, match="holds no quantization ranges") as info:
        load_for_inference(build_model(asked), float_prefix, asked)
    assert "\n" not in str(info.value) and "fewer ASPP" not in str(info.value)
    # A quantized checkpoint into a float model: the ranges have no place.
    with pytest.raises(CheckpointError, match="holds quantization ranges"):
        load_for_inference(float_model, zoo["prefix"], config)


@pytest.mark.slow
def test_per_tensor_model_converts_to_an_all_uint8_model(zoo, tmp_path):
    from deeplab_tf import inference
    from deeplab_tf.config import EvalConfig, ExportConfig
    from deeplab_tf.export.litert import LiteRTModel
    from deeplab_tf.export.tflite import export_tflite

    model = DeepLab.from_preset(PRESET, checkpoint=zoo["tarball"])
    config = ExportConfig(format="tflite", crop_size=(65, 65), tflite_mode="int8",
                          tflite_output="logits")
    result = export_tflite(model, model.config, config, str(tmp_path))
    runner = LiteRTModel(result["path"])
    types = {d["dtype"] for d in runner.interpreter.get_tensor_details()}
    assert types <= {np.uint8, np.int32}, types  # uint8 tensors, int32 biases
    assert result["output"]["dtype"] == "uint8" and "quantization" in result["output"]
    images = np.random.default_rng(1).integers(0, 256, (2, 65, 65, 3)).astype(np.float32)
    spec = inference.InferenceSpec.from_configs(model.config, EvalConfig(eval_crop_size=None))
    graph = inference.predict(model, images, spec)[inference.LABELS].numpy()
    tflite = np.stack([runner.predict(image[None])[0] for image in images])
    agreement = float((graph == tflite).mean())
    print(f"per-tensor uint8 model vs its quantized evaluation graph: {agreement:.4%}")
    assert agreement >= 0.99
