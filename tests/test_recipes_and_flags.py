"""Every recipe flagfile parses with the real binaries' flags and builds its model.

A typo in a recipe (a flag no deeplab binary defines, or a bad value) fails here, as does a
flag added to a binary without regenerating ``deeplab_tf/cli/_flag_names.py``.
"""

import glob
import json
import os
import subprocess
import sys

import pytest

from deeplab_tf.cli._flag_names import BINARIES, DEEPLAB_FLAG_NAMES, all_flag_names

ROOT = os.path.join(os.path.dirname(__file__), "..")
RECIPES = sorted(glob.glob(os.path.join(ROOT, "configs", "*", "*.flags")))

# Parses each recipe with the binary's own flags; leftovers must be other binaries' flags.
# For deeplab-train it also builds the recipe's model at 65x65 and runs it once.
_CHECK = r"""
import importlib, json, sys
import numpy as np
from absl import flags
module, recipes, build = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3] == "1"
importlib.import_module(module)
from deeplab_tf.cli._flag_names import DEEPLAB_FLAG_NAMES
from deeplab_tf.cli import _model_flags
FLAGS = flags.FLAGS
out = {}
for recipe in recipes:
    FLAGS.unparse_flags()
    rest = FLAGS(["prog", "--flagfile=" + recipe], known_only=True)
    unknown = [a for a in rest[1:] if a.lstrip("-").split("=")[0] not in DEEPLAB_FLAG_NAMES]
    shape = None
    if build:
        from deeplab_tf.data.registry import get_dataset_info
        from deeplab_tf.model import build_model
        config = _model_flags.model_config_from_flags(
            num_classes=get_dataset_info(FLAGS.dataset).num_classes)
        model = build_model(config)
        shape = list(model(np.zeros((1, 65, 65, 3), "float32")).shape)
    out[recipe] = {"unknown": unknown, "shape": shape}
print(json.dumps(out))
"""


def test_recipes_exist_with_headers():
    names = {os.path.relpath(p, os.path.join(ROOT, "configs")) for p in RECIPES}
    for expected in ["pascal_voc_seg/xception65_os16.flags", "pascal_voc_seg/xception65_os8_ms_flip.flags",
                     "pascal_voc_seg/resnet101beta_os16.flags", "pascal_voc_seg/mobilenetv2_os16.flags",
                     "pascal_voc_seg/mobilenetv2_dm05_os16.flags", "cityscapes/xception65_os16.flags",
                     "cityscapes/xception71_os16.flags", "cityscapes/mobilenetv2_os16.flags",
                     "ade20k/xception65_os16.flags", "ade20k/mobilenetv2_os16.flags"]:
        assert expected in names
    assert any(n.startswith("demo/") for n in names)
    for path in RECIPES:
        head = open(path).read().splitlines()[:5]
        assert head[0].startswith("# ") and any("reported" in line or "Reproduces" in line
                                                 for line in head), path


def test_flag_names_file_is_current():
    assert sorted(DEEPLAB_FLAG_NAMES) == all_flag_names(), (
        "regenerate with: python -m deeplab_tf.cli._flag_names")


@pytest.mark.parametrize("binary", ["deeplab-train", "deeplab-eval", "deeplab-export",
                                    "deeplab-bench"])
def test_every_recipe_parses(binary):
    build = binary == "deeplab-train"
    result = subprocess.run([sys.executable, "-c", _CHECK, BINARIES[binary], json.dumps(RECIPES),
                             "1" if build else "0"], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    out = json.loads(result.stdout.strip().splitlines()[-1])
    for recipe, info in out.items():
        assert info["unknown"] == [], (recipe, info["unknown"])
        if build:
            assert info["shape"][0] == 1 and info["shape"][1] in (5, 17), (recipe, info["shape"])


def test_typo_in_a_recipe_is_an_error(tmp_path):
    recipe = tmp_path / "typo.flags"
    recipe.write_text(open(RECIPES[0]).read() + "--atrous_rate=6\n")
    result = subprocess.run([sys.executable, "-m", "deeplab_tf.cli.model_stats",
                             f"--flagfile={recipe}", "--crop_size=33,33"],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 1 and "Unknown command line flag 'atrous_rate'" in result.stderr


def test_bench_runs_on_a_recipe_and_writes_its_table(tmp_path):
    out = tmp_path / "bench.json"
    result = subprocess.run(
        [sys.executable, "-m", "deeplab_tf.cli.bench",
         f"--flagfile={os.path.join(ROOT, 'configs', 'demo', 'mobilenetv2_dm05_demo.flags')}",
         "--crop_size=65,65", "--modes=function,function_folded", "--repeats=1",
         "--nothroughput", "--noagreement", f"--output_json={out}"],
        capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "inference/function_folded" in result.stdout and "util." in result.stdout
    record = json.loads(out.read_text())
    assert record["madds"] > 0 and {r["name"] for r in record["results"]} == {
        "inference/function", "inference/function_folded"}
    assert record["machine"]["peak_flops"] > 0
