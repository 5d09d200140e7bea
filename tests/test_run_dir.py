"""The run directory's contract (``deeplab_tf.checkpoints.run_dir``): the run's config.json is
the base, explicit model flags override it field by field, and a checkpoint that then does not
fit names the overridden field; deeplab-export of a MobileNetV2 x0.5 run with a matching or a
conflicting model flag."""

import json
import os

import pytest

import helpers
from cli_in_process import run_in_process
from deeplab_tf.checkpoints import run_dir
from deeplab_tf.checkpoints.loading import save_model_checkpoint
from deeplab_tf.cli import export as export_binary
from deeplab_tf.config import ModelConfig
from deeplab_tf.model import build_model

RUN_CONFIG = helpers.tiny_config(depth_multiplier=0.5, num_classes=3)


@pytest.fixture(scope="module")
def run_folder(tmp_path_factory):
    """A converted checkpoint of a MobileNetV2 x0.5 model with its config.json."""
    folder = str(tmp_path_factory.mktemp("run"))
    save_model_checkpoint(build_model(RUN_CONFIG), folder, step=3)
    run_dir.write_converted(folder, RUN_CONFIG, "original/model.ckpt")
    return folder


def test_explicit_flags_override_the_run_config_field_by_field(run_folder):
    flags_config = ModelConfig(num_classes=3, output_stride=8)  # defaults elsewhere
    resolved = run_dir.resolve_model_config(run_folder, flags_config, ["output_stride"])
    expected = dict(RUN_CONFIG.to_dict(), output_stride=8)
    assert resolved.config.to_dict() == expected
    assert resolved.overrides == {"output_stride": (16, 8)}
    assert "output_stride=8 from the flags" in resolved.source

    same = run_dir.resolve_model_config(run_folder, flags_config, ["num_classes"])
    assert same.config == RUN_CONFIG and same.overrides == {}

    alone = run_dir.resolve_model_config(None, flags_config, ["output_stride"])
    assert alone.config == flags_config and alone.source == "Model: from the model flags."


def test_an_unreadable_run_config_names_the_file(tmp_path):
    (tmp_path / "config.json").write_text('{"model": {"model_variant": "mobilenet_v9"}}')
    with pytest.raises(run_dir.RunDirError, match="config.json is not valid: model_variant"):
        run_dir.run_model_config(str(tmp_path))
    (tmp_path / "config.json").write_bytes(b"\xff\xfe not json")
    with pytest.raises(run_dir.RunDirError, match=r"Cannot read the run config .*config\.json"):
        run_dir.run_model_config(str(tmp_path))


def test_export_with_a_matching_flag_uses_the_run_config(run_folder, tmp_path, capfd):
    result = run_in_process(export_binary.run, [
        "deeplab-export", f"--checkpoint={run_folder}", f"--export_dir={tmp_path}",
        "--format=frozen_graph", f"--export_path={tmp_path / 'graph.pb'}",
        "--num_classes=3", "--crop_size=33,33"], capfd)
    assert result.returncode == 0, result.stderr
    assert f"Model: {os.path.join(run_folder, 'config.json')}." in result.stdout
    assert os.path.getsize(tmp_path / "graph.pb") > 0


def test_a_conflicting_flag_names_the_field_not_an_optimizer_slot(run_folder, tmp_path, capfd):
    result = run_in_process(export_binary.run, [
        "deeplab-export", f"--checkpoint={run_folder}", f"--export_dir={tmp_path}",
        "--depth_multiplier=1.0"], capfd)
    assert result.returncode == 1
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, result.stderr
    assert "depth_multiplier: run 0.5, flags 1.0" in lines[0]
    assert "Traceback" not in result.stderr
    assert json.load(open(os.path.join(run_folder, "config.json")))["model"] == \
        RUN_CONFIG.to_dict()
    assert not os.listdir(tmp_path)  # nothing written
