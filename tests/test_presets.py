"""Presets of the original model zoo: table, errors, and from_preset on an original-format
zoo tarball built here (TF1 checkpoint with the original variable names)."""

import dataclasses
import glob
import os
import tarfile

import numpy as np
import pytest

import helpers
from deeplab_tf import presets
from deeplab_tf.checkpoints.paths import CheckpointError
from deeplab_tf.modeling.layers.original_layer import original_variable_map
from deeplab_tf.model import DeepLab, build_model

NAME = "mobilenetv2_coco_voc_trainaug"


def make_zoo_tarball(directory, name=NAME, seed=0):
    """Writes the preset's zoo tarball (model.ckpt + frozen graph placeholder) in the
    original layout; returns (tarball path, {original variable name: value})."""
    preset = presets.get(name)
    folder_name = preset.tarball[: -len(".tar.gz")]
    staging = os.path.join(directory, "staging", folder_name)
    os.makedirs(staging)
    values = helpers.random_original_values(build_model(preset.model_config), seed=seed)
    values["global_step"] = np.int64(30000)
    helpers.write_tf1_checkpoint(os.path.join(staging, "model.ckpt"), values)
    with open(os.path.join(staging, "frozen_inference_graph.pb"), "wb") as f:
        f.write(b"placeholder")
    path = os.path.join(directory, preset.tarball)
    with tarfile.open(path, "w:gz") as archive:
        archive.add(staging, arcname=folder_name)
    return path, values


def test_table_lists_every_preset(capsys):
    presets.list()
    printed = capsys.readouterr().out
    for name in presets.PRESETS:
        assert name in printed
    assert "xception71_dpc_cityscapes_trainfine" in printed and "502.07B" in printed
    preset = presets.get("xception65_coco_voc_trainaug")
    assert preset.published_miou == 82.20 and preset.model_config.atrous_rates == (6, 12, 18)
    assert preset.url == ("http://download.tensorflow.org/models/"
                          "deeplabv3_pascal_train_aug_2018_01_04.tar.gz")
    assert len(preset.class_names) == 21 and preset.palette.shape[1] == 3
    assert presets.get("xception65_coco_voc_trainval").eval_scales == (
        0.5, 0.75, 1.0, 1.25, 1.5, 1.75)


def test_unknown_name_and_missing_checkpoint_messages(tmp_path):
    with pytest.raises(ValueError, match="Unknown preset 'nope'"):
        presets.get("nope")
    missing = str(tmp_path / "missing.tar.gz")
    with pytest.raises(FileNotFoundError, match="download http://download.tensorflow.org/"
                       "models/deeplabv3_mnv2_pascal_train_aug_2018_01_29.tar.gz") as info:
        DeepLab.from_preset(NAME, checkpoint=missing)
    assert "\n" not in str(info.value) and f"Received: checkpoint='{missing}'" in str(info.value)
    with pytest.raises(FileNotFoundError, match="needs its checkpoint"):
        DeepLab.from_preset(NAME)
    # A file that is there but no tarball: the resolver's reason, with the preset's URL.
    broken = tmp_path / "deeplabv3_mnv2_pascal_train_aug_2018_01_29.tar.gz"
    broken.write_bytes(b"not a tarball")
    with pytest.raises(CheckpointError, match=f"Cannot extract {broken}") as info:
        DeepLab.from_preset(NAME, checkpoint=str(broken))
    assert "\n" not in str(info.value) and presets.get(NAME).url in str(info.value)


def test_from_preset_loads_a_zoo_tarball_and_its_folder(tmp_path):
    path, values = make_zoo_tarball(str(tmp_path))
    model = DeepLab.from_preset(NAME, checkpoint=path)
    assert model.config == presets.get(NAME).model_config
    loaded = original_variable_map(model)
    assert len(loaded) == len(values) - 1  # all but global_step
    for name, var in loaded.items():
        np.testing.assert_array_equal(var.numpy(), values[name], err_msg=name)
    # The extracted folder works too, and predictions are labels at the input size.
    folder = path[: -len(".tar.gz")]
    assert glob.glob(os.path.join(folder, "*", "model.ckpt.index"))
    again = DeepLab.from_preset(NAME, checkpoint=folder)
    prefix, = glob.glob(os.path.join(folder, "*", "model.ckpt.index"))
    by_prefix = DeepLab.from_preset(NAME, checkpoint=prefix[: -len(".index")])
    for name, var in original_variable_map(by_prefix).items():
        np.testing.assert_array_equal(var.numpy(), values[name], err_msg=name)
    images = np.random.default_rng(0).uniform(0, 255, (1, 37, 45, 3)).astype("float32")
    labels = model.predict_labels(images)
    assert labels.shape == (1, 37, 45)
    np.testing.assert_array_equal(again.predict_labels(images), labels)


def test_the_whole_zoo_is_listed_with_its_imagenet_backbones(capsys):
    """model_zoo.md's 24 entries: 18 segmentation models and 6 ImageNet checkpoints (their
    backbone in the original's VOC training network; no mIoU)."""
    imagenet = {name: p for name, p in presets.PRESETS.items() if p.imagenet_backbone}
    assert len(presets.PRESETS) == 24 and sorted(imagenet) == sorted([
        "xception_41_imagenet", "xception_65_imagenet", "xception_65_imagenet_coco",
        "xception_71_imagenet", "resnet_v1_50_beta_imagenet", "resnet_v1_101_beta_imagenet"])
    assert all(p.published_miou is not None for p in presets.PRESETS.values()
               if not p.imagenet_backbone)
    resnet = imagenet["resnet_v1_101_beta_imagenet"]
    assert (resnet.tarball, resnet.model_config.model_variant, resnet.model_config.multi_grid) \
        == ("resnet_v1_101_2018_05_04.tar.gz", "resnet_v1_101_beta", (1, 2, 4))
    assert resnet.published_miou is None and resnet.url.endswith(resnet.tarball)
    presets.list()
    row = next(line for line in capsys.readouterr().out.splitlines()
               if line.startswith("xception_65_imagenet_coco "))
    assert "imagenet" in row and "(backbone only)" in row


@pytest.mark.slow
def test_imagenet_preset_loads_the_backbone_and_leaves_the_heads(tmp_path):
    """An ImageNet checkpoint holds the backbone (and an ImageNet classifier the network does
    not have): the backbone loads by name, every head keeps its initialisation."""
    name = "resnet_v1_50_beta_imagenet"
    config = presets.get(name).model_config
    values = helpers.random_original_values(build_model(config), seed=5)
    backbone = {key: value for key, value in values.items() if key.startswith("resnet_v1_50/")}
    assert 0 < len(backbone) < len(values)
    backbone["resnet_v1_50/logits/weights"] = np.zeros((1, 1, 2048, 1000), np.float32)
    folder = tmp_path / "resnet_v1_50"
    folder.mkdir()
    helpers.write_tf1_checkpoint(str(folder / "model.ckpt"), backbone)
    model = DeepLab.from_preset(name, checkpoint=str(folder), num_classes=3)
    assert model.config.num_classes == 3
    fresh = original_variable_map(build_model(dataclasses.replace(config, num_classes=3)))
    for key, variable in original_variable_map(model).items():
        if key in backbone:
            np.testing.assert_array_equal(variable.numpy(), backbone[key], err_msg=key)
        else:  # a head: as initialised (batch norm's initial statistics equal everywhere)
            assert variable.shape == fresh[key].shape, key
            if "BatchNorm/moving" in key or key.endswith(("gamma", "beta", "biases")):
                np.testing.assert_array_equal(variable.numpy(), fresh[key].numpy(), err_msg=key)
