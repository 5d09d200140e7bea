"""Original (TF1, name-based) and project checkpoints -> Keras weights, and their errors."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

import helpers
from deeplab_tf import build_model, load_original_checkpoint
from deeplab_tf.checkpoints.paths import CheckpointError
from deeplab_tf.checkpoints.loading import load_checkpoint, save_model_checkpoint
from deeplab_tf.modeling.layers.original_layer import original_variable_map

CONFIG = dict(model_variant="mobilenet_v2", depth_multiplier=0.25, num_classes=3,
              atrous_rates=(2,), aspp_with_separable_conv=True, decoder_output_stride=(4,))


@pytest.fixture(scope="module")
def original_checkpoint(tmp_path_factory):
    """A TF1 checkpoint in the original's naming, with extras a model-zoo checkpoint has."""
    model = build_model(helpers.tiny_config(**CONFIG))
    values = helpers.random_original_values(model, seed=7)
    extras = {"global_step": np.array(1234, np.int64),
              "MobilenetV2/Conv/weights/Momentum": np.ones((3, 3, 3, 8), np.float32)}
    prefix = helpers.write_tf1_checkpoint(
        str(tmp_path_factory.mktemp("tf1") / "model.ckpt"), {**values, **extras})
    return prefix, values


def test_original_checkpoint_converts_exactly(original_checkpoint):
    prefix, values = original_checkpoint
    model = build_model(helpers.tiny_config(**CONFIG))
    report = load_original_checkpoint(model, prefix)
    mapped = original_variable_map(model)
    assert sorted(report.loaded) == sorted(values) == sorted(mapped)
    for name, value in values.items():
        np.testing.assert_array_equal(mapped[name].numpy(), value)
    assert report.unused_in_checkpoint == ["MobilenetV2/Conv/weights/Momentum", "global_step"]
    assert report.missing_in_checkpoint == []
    # The loaded weights are the ones used in the forward pass.
    x = np.random.default_rng(0).uniform(0, 255, (1, 33, 33, 3)).astype("float32")
    other = build_model(helpers.tiny_config(**CONFIG))
    assert np.abs(model(x).numpy() - other(x).numpy()).max() > 1e-3


def test_new_class_count_needs_initialize_last_layer_false(original_checkpoint):
    prefix, values = original_checkpoint
    model = build_model(helpers.tiny_config(**dict(CONFIG, num_classes=5)))
    with pytest.raises(CheckpointError) as info:
        load_original_checkpoint(model, prefix)
    message = str(info.value)
    assert "logits/semantic/weights" in message and "[1, 1, 256, 3]" in message
    assert "[1, 1, 256, 5]" in message and "--initialize_last_layer=false" in message
    report = load_original_checkpoint(model, prefix, initialize_last_layer=False)
    skipped = {name for name, _, _ in report.skipped_last_layers}
    assert "logits/semantic/weights" in skipped and "aspp0/weights" in skipped
    assert not any(n.startswith("MobilenetV2") for n in skipped)
    np.testing.assert_array_equal(original_variable_map(model)["MobilenetV2/Conv/weights"].numpy(),
                                  values["MobilenetV2/Conv/weights"])
    # Logits only: ASPP and decoder are loaded, the logits skipped.
    report = load_original_checkpoint(model, prefix, initialize_last_layer=False,
                                      last_layers_contain_logits_only=True)
    assert {n for n, _, _ in report.skipped_last_layers} == {"logits/semantic/weights",
                                                             "logits/semantic/biases"}
    assert "aspp0/weights" in report.loaded


def test_backbone_shape_mismatch_is_an_error(original_checkpoint, tmp_path):
    _, values = original_checkpoint
    bad = dict(values)
    bad["MobilenetV2/Conv/weights"] = np.zeros((3, 3, 3, 9), np.float32)
    prefix = helpers.write_tf1_checkpoint(str(tmp_path / "bad.ckpt"), bad)
    model = build_model(helpers.tiny_config(**CONFIG))
    with pytest.raises(CheckpointError, match=r"MobilenetV2/Conv/weights.*\[3, 3, 3, 9\].*\[3, 3, 3, 8\]"):
        load_original_checkpoint(model, prefix, initialize_last_layer=False)


def test_backbone_only_checkpoint_reports_missing_heads(original_checkpoint, tmp_path):
    _, values = original_checkpoint
    backbone = {k: v for k, v in values.items() if k.startswith("MobilenetV2/")}
    backbone["MobilenetV2/Logits/Conv2d_1c_1x1/weights"] = np.zeros((1, 1, 8, 1001), np.float32)
    prefix = helpers.write_tf1_checkpoint(str(tmp_path / "imagenet.ckpt"), backbone)
    model = build_model(helpers.tiny_config(**CONFIG))
    report = load_original_checkpoint(model, prefix)
    assert sorted(report.loaded) == sorted(k for k in values if k.startswith("MobilenetV2/"))
    assert "logits/semantic/weights" in report.missing_in_checkpoint
    assert report.unused_in_checkpoint == ["MobilenetV2/Logits/Conv2d_1c_1x1/weights"]


def test_unreadable_and_unrelated_checkpoints(tmp_path):
    model = build_model(helpers.tiny_config(**CONFIG))
    with pytest.raises(CheckpointError, match=r"No checkpoint at .*nothing\.ckpt \(expected"):
        load_checkpoint(model, str(tmp_path / "nothing.ckpt"))
    (tmp_path / "junk.ckpt.index").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match=r"junk\.ckpt\.index exists but no data file"):
        load_checkpoint(model, str(tmp_path / "junk.ckpt"))
    (tmp_path / "junk.ckpt.data-00000-of-00001").write_bytes(b"not data either")
    with pytest.raises(CheckpointError, match="Cannot read checkpoint"):
        load_checkpoint(model, str(tmp_path / "junk.ckpt"))
    prefix = helpers.write_tf1_checkpoint(str(tmp_path / "other.ckpt"),
                                          {"resnet_v1_50/conv1/weights": np.zeros((7, 7, 3, 64), np.float32)})
    with pytest.raises(CheckpointError, match="No variable"):
        load_checkpoint(model, prefix)
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match="No checkpoint found in directory"):
        load_checkpoint(model, str(tmp_path / "empty"))


def test_project_checkpoint_round_trip(tmp_path):
    model = build_model(helpers.tiny_config(**CONFIG))
    values = helpers.random_original_values(model, seed=3)
    for name, value in values.items():
        original_variable_map(model)[name].assign(value)
    save_model_checkpoint(model, str(tmp_path), step=5)
    fresh = build_model(helpers.tiny_config(**CONFIG))
    report = load_checkpoint(fresh, str(tmp_path))  # a directory: its latest checkpoint
    assert report.kind == "project" and report.path.endswith("ckpt-5")
    assert sorted(report.loaded) == sorted(values)
    for name, var in original_variable_map(fresh).items():
        np.testing.assert_array_equal(var.numpy(), values[name])
    other_classes = build_model(helpers.tiny_config(**dict(CONFIG, num_classes=7)))
    with pytest.raises(CheckpointError, match="initialize_last_layer"):
        load_checkpoint(other_classes, str(tmp_path))
    report = load_checkpoint(other_classes, str(tmp_path), initialize_last_layer=False)
    assert report.skipped_last_layers and report.loaded


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "deeplab_tf.cli.convert_checkpoint", *args],
                          capture_output=True, text=True, timeout=300)


def _flags():
    return ["--model_variant=mobilenet_v2", "--depth_multiplier=0.25", "--atrous_rates=2",
            "--decoder_output_stride=4"]


def test_convert_cli(original_checkpoint, tmp_path):
    prefix, values = original_checkpoint
    out = tmp_path / "converted"
    result = _cli(f"--tf1_checkpoint={prefix}", f"--output={out}", *_flags())
    assert result.returncode == 0, result.stderr
    config = json.loads((out / "config.json").read_text())
    assert config["model"]["num_classes"] == 3  # from the checkpoint's logits
    model = build_model(helpers.tiny_config(**CONFIG))
    load_checkpoint(model, str(out))
    np.testing.assert_array_equal(original_variable_map(model)["logits/semantic/biases"].numpy(),
                                  values["logits/semantic/biases"])
    # Existing output is never overwritten.
    again = _cli(f"--tf1_checkpoint={prefix}", f"--output={out}", *_flags())
    assert again.returncode == 1 and "already exists" in again.stderr


@pytest.mark.parametrize("bad_flags,expected", [
    (["--output_stride=12"], "output_stride must be 8, 16 or 32"),
    (["--decoder_output_stride=16"], "decoder_output_stride"),
    (["--depth_multiplier=0.5"], "Shape mismatch"),
])
def test_convert_cli_bad_input_leaves_nothing(original_checkpoint, tmp_path, bad_flags, expected):
    prefix, _ = original_checkpoint
    out = tmp_path / "converted"
    result = _cli(f"--tf1_checkpoint={prefix}", f"--output={out}", *_flags(), *bad_flags)
    assert result.returncode == 1
    lines = [l for l in result.stderr.splitlines() if l.startswith("error:")]
    assert len(lines) == 1 and expected in lines[0], result.stderr
    assert not out.exists() and os.listdir(tmp_path) == []


def test_convert_cli_unreadable_checkpoint_and_unknown_variant(tmp_path):
    result = _cli(f"--tf1_checkpoint={tmp_path / 'missing.ckpt'}", f"--output={tmp_path / 'o'}",
                  *_flags())
    assert result.returncode == 1 and "error: No checkpoint at" in result.stderr
    result = _cli("--tf1_checkpoint=x", "--output=y", "--model_variant=xception_99")
    assert result.returncode == 1 and "model_variant" in result.stderr
    assert not (tmp_path / "o").exists()
