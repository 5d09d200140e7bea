"""The MobileNetV3 and EdgeTPU zoo entries: the original's flags in every binary, the
multiply-adds, the presets from original-format tarballs and the recipes.

* the zoo's flags (model_zoo.md; the reference README's configurations), given to
  deeplab-train, -eval, -vis, -export and -model-stats, parse quietly into the reference
  configurations, whose models have the reference variables (test_backbones_mobilenet_v3);
  deeplab-model-stats prints the reference parameter totals;
* multiply-adds against the independent count of the note's tables (7.58B / 1.96B at
  1025x2049, conv-only) and the zoo's EdgeTPU figures (513x513);
* ``from_preset`` on a tarball in the original layout, every variable loaded.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
from cli_in_process import run_in_process
from deeplab_tf import ModelConfig, model_stats, presets
from deeplab_tf.cli.flags import data, model, train
from deeplab_tf.model import DeepLab
from deeplab_tf.modeling.layers.original_layer import original_variable_map
from test_backbones_mobilenet_v3 import REFERENCES, _reference_model
from test_presets import make_zoo_tarball
from test_recipes_and_flags import parse  # noqa: F401 (the fixture)

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
# model_zoo.md: "we use additional commandline flags as follows" (MobileNetV3), and the
# EdgeTPU models' changes to the MobileNet-v2 flags (the reference at output stride 16).
V3_FLAGS = ["--image_pooling_crop_size=769,769", "--image_pooling_stride=4,5",
            "--add_image_level_feature=1", "--aspp_convs_filters=128",
            "--aspp_with_concat_projection=0", "--aspp_with_squeeze_and_excitation=1",
            "--decoder_use_sum_merge=1", "--decoder_filters=19", "--decoder_output_is_logits=1",
            "--image_se_uses_qsigmoid=1", "--decoder_output_stride=8", "--output_stride=32"]
ORIGINAL_FLAGS = {
    "mobilenetv3_large_seg.tsv": ["--model_variant=mobilenet_v3_large_seg", *V3_FLAGS],
    "mobilenetv3_small_seg.tsv": ["--model_variant=mobilenet_v3_small_seg", *V3_FLAGS],
    "mobilenet_edgetpu.tsv": ["--decoder_output_stride=", "--aspp_convs_filters=256",
                              "--model_variant=mobilenet_edgetpu", "--output_stride=16"],
}
# What each binary's command adds (the original's train.py / eval.py / vis.py read the
# class count from --dataset; export_model.py takes --num_classes).
BINARY_ARGS = {
    "deeplab-train": ["--dataset=cityscapes", "--train_crop_size=769,769",
                      "--train_logdir=train", "--dataset_dir=tfrecord"],
    "deeplab-eval": ["--dataset=cityscapes", "--eval_crop_size=1025,2049",
                     "--checkpoint_dir=train", "--eval_logdir=eval", "--dataset_dir=tfrecord"],
    "deeplab-vis": ["--dataset=cityscapes", "--vis_crop_size=1025,2049",
                    "--checkpoint_dir=train", "--vis_logdir=vis", "--dataset_dir=tfrecord"],
    "deeplab-export": ["--checkpoint_path=train/model.ckpt-10", "--num_classes=19",
                       "--export_path=export/frozen_inference_graph.pb", "--crop_size=1025",
                       "--crop_size=2049"],
    "deeplab-model-stats": ["--dataset=cityscapes", "--crop_size=1025,2049"],
}


@pytest.mark.parametrize("filename", sorted(ORIGINAL_FLAGS))
def test_original_flags_give_the_reference_model_in_every_binary(parse, filename):
    kwargs, params = REFERENCES[filename]
    want = ModelConfig(**kwargs)
    for binary, extra in BINARY_ARGS.items():
        rest, err = parse(binary, *ORIGINAL_FLAGS[filename], *extra)
        assert rest == ["prog"] and err == [], (binary, err)
        overrides = train.model_overrides() if binary == "deeplab-train" else {}
        config = model.model_config(num_classes=data.dataset_num_classes(), **overrides)
        assert config == ModelConfig(**dict(want.to_dict(), **overrides)), binary
    built = _reference_model(filename)
    assert built.config == want and built.count_params() == params


@pytest.mark.parametrize("filename, size, madds", [
    ("mobilenetv3_small_seg.tsv", "769,769", "0.56B"),
    pytest.param("mobilenetv3_large_seg.tsv", "1025,2049", "7.58B", marks=pytest.mark.slow),
    pytest.param("mobilenet_edgetpu.tsv", "513,513", "7.07B", marks=pytest.mark.slow)])
def test_model_stats_binary_prints_the_reference_params(filename, size, madds, capfd):
    from deeplab_tf.cli import model_stats as binary

    result = run_in_process(binary.run, ["deeplab-model-stats", "--dataset=cityscapes",
                                         *ORIGINAL_FLAGS[filename], f"--crop_size={size}"],
                            capfd)
    assert result.returncode == 0, result.stderr[-2000:]
    assert f"params: {REFERENCES[filename][1]:,}" in result.stdout
    assert f"multiply-adds: {madds}" in result.stdout and "classes: 19" in result.stdout


# (preset, output stride, height, width, expected multiply-adds, relative tolerance). The
# MobileNetV3 figures are the independent conv-only count of the note's block tables
# (/work/notes/mobilenet_v3_edgetpu_check.py; the zoo's 15.95B / 4.63B count FLOPs), equal to
# the multiply-add; EdgeTPU's are the zoo's own, which fit 513x513.
MADDS = [pytest.param(*case, marks=pytest.mark.slow) for case in [
    ("mobilenetv3_large_cityscapes_trainfine", 32, 1025, 2049, 7_582_881_504, 0),
    ("mobilenetv3_small_cityscapes_trainfine", 32, 1025, 2049, 1_963_916_608, 0),
    ("mobilenetv3_small_cityscapes_trainfine", 32, 769, 769, 560_695_616, 0),
    ("edgetpu_deeplab", 16, 513, 513, 7.1e9, 0.02),
    ("edgetpu_deeplab", 32, 513, 513, 5.6e9, 0.025),
    ("edgetpu_deeplab_slim", 16, 513, 513, 4.3e9, 0.025),
    ("edgetpu_deeplab_slim", 32, 513, 513, 3.5e9, 0.03),
]]


@pytest.mark.parametrize("name, output_stride, height, width, expected, tolerance", MADDS)
def test_multiply_adds(name, output_stride, height, width, expected, tolerance):
    config = presets.get(name).model_config
    config = ModelConfig(**dict(config.to_dict(), output_stride=output_stride))
    stats = model_stats(config, height, width)
    assert abs(stats["madds"] / expected - 1) <= tolerance, stats["madds"] / 1e9


NEW_PRESETS = {
    "mobilenetv3_large_cityscapes_trainfine": ("mobilenet_v3_large_seg", 72.41, 15.95,
                                               1_525_230),
    "mobilenetv3_small_cityscapes_trainfine": ("mobilenet_v3_small_seg", 68.99, 4.63, 477_454),
    "edgetpu_deeplab": ("mobilenet_edgetpu", 74.1, 7.1, 3_643_699),
    # -slim: derived from the tables (no reference list): backbone 1,689,928 + head 282,515.
    "edgetpu_deeplab_slim": ("mobilenet_edgetpu", 73.2, 4.3, 1_972_443),
}


def test_presets_table_lists_the_new_entries(capsys):
    presets.list()
    printed = capsys.readouterr().out
    for name, (variant, miou, madds, _) in NEW_PRESETS.items():
        preset = presets.get(name)
        assert name in printed
        assert preset.model_config.model_variant == variant and preset.dataset == "cityscapes"
        assert (preset.published_miou, preset.published_madds) == (miou, madds)
        assert preset.url.startswith("http://download.tensorflow.org/models/")
        assert f"{madds:g}B" in printed
    assert presets.get("edgetpu_deeplab_slim").model_config.depth_multiplier == 0.75
    assert presets.get("mobilenetv3_small_cityscapes_trainfine").model_config == ModelConfig(
        **REFERENCES["mobilenetv3_small_seg.tsv"][0])


@pytest.mark.parametrize("name", [
    "mobilenetv3_small_cityscapes_trainfine",
    pytest.param("mobilenetv3_large_cityscapes_trainfine", marks=pytest.mark.slow),
    pytest.param("edgetpu_deeplab", marks=pytest.mark.slow),
    pytest.param("edgetpu_deeplab_slim", marks=pytest.mark.slow)])
def test_from_preset_loads_an_original_tarball(tmp_path, name):
    path, values = make_zoo_tarball(str(tmp_path), name=name, seed=2)
    model = DeepLab.from_preset(name, checkpoint=path)
    assert model.config == presets.get(name).model_config
    assert model.count_params() == NEW_PRESETS[name][3]
    loaded = original_variable_map(model)
    assert sorted(loaded) == sorted(n for n in values if n != "global_step")
    for variable_name, variable in loaded.items():
        np.testing.assert_array_equal(variable.numpy(), values[variable_name],
                                      err_msg=variable_name)
    # Small images are padded up to the image pooling's crop (769): labels at the input size.
    images = np.random.default_rng(0).uniform(0, 255, (1, 37, 45, 3)).astype(np.float32)
    assert model.predict_labels(images).shape == (1, 37, 45)


RECIPES = {"mobilenetv3_large.flags": "mobilenetv3_large_cityscapes_trainfine",
           "mobilenetv3_small.flags": "mobilenetv3_small_cityscapes_trainfine",
           "edgetpu.flags": "edgetpu_deeplab", "edgetpu_slim.flags": "edgetpu_deeplab_slim"}


@pytest.mark.parametrize("recipe", sorted(RECIPES))
def test_recipes_are_the_presets(parse, recipe):
    path = os.path.join(ROOT, "configs", "cityscapes", recipe)
    head = open(path).read().splitlines()[:5]
    preset = presets.get(RECIPES[recipe])
    assert preset.name in head[1] and f"{preset.published_miou:g}%" in head[2]
    rest, err = parse("deeplab-eval", f"--flagfile={path}")
    assert rest == ["prog"] and err == []
    assert model.model_config(num_classes=data.dataset_num_classes()) == preset.model_config
