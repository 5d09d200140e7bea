"""The flags package: every recipe parses with every binary, typos fail, another binary's flag
gets a notice, both list forms of the size flags, the original's legacy flags (notice /
error), config round trips and the compatibility table of docs/compatibility.md.

Parsing runs in-process through each binary's real parser (``flags_parser(binary)``); the
one-line-error contract is checked once on a real binary in a subprocess.
"""

import glob
import os
import subprocess
import sys

import pytest
from absl import flags

from deeplab_tf.cli.flags import compat, data, export, inference, legacy, model, parsing, train, vis
from deeplab_tf.cli.flags.parsing import USES, flags_parser
from deeplab_tf.cli.flags.values import FlagValueError, parse_size
from deeplab_tf.config import DataConfig, EvalConfig, ExportConfig, ModelConfig, TrainConfig
from deeplab_tf.config.dense_prediction_cell import CITYSCAPES_CELL

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
RECIPES = sorted(glob.glob(os.path.join(ROOT, "configs", "*", "*.flags")))
FLAGS = flags.FLAGS


@pytest.fixture
def parse(capsys):
    """parse(binary, *args) -> (positional argv, stderr lines); flags reset afterwards."""

    def run(binary, *args):
        FLAGS.unparse_flags()
        rest = flags_parser(binary)(["prog", *args])
        return rest, [line for line in capsys.readouterr().err.splitlines() if line]

    yield run
    FLAGS.unparse_flags()


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


@pytest.mark.parametrize("binary", sorted(USES))
def test_every_recipe_parses_quietly_with_every_binary(parse, binary):
    for recipe in RECIPES:
        rest, err = parse(binary, f"--flagfile={recipe}")
        assert rest == ["prog"] and err == [], (recipe, err)
        if binary == "deeplab-train":
            # The recipe's configs validate (the model itself is built in test_model.py).
            model_config = model.model_config(num_classes=data.dataset_num_classes() or 21,
                                              **train.model_overrides())
            assert model_config.model_variant == FLAGS.model_variant
            train.train_config()
            data.data_config(**train.data_fields())
            inference.eval_config()


def test_defaults_are_the_configs():
    assert FLAGS["model_variant"].default == ModelConfig().model_variant == "mobilenet_v2"
    assert FLAGS["output_stride"].default == ModelConfig().output_stride
    assert FLAGS["save_interval_secs"].default == TrainConfig().save_interval_secs == 1200
    assert parse_size(FLAGS["eval_crop_size"].default, "x") == EvalConfig().eval_crop_size == (513, 513)
    assert parse_size(FLAGS["train_crop_size"].default, "x") == DataConfig().train_crop_size
    assert FLAGS["fold_batch_norm"].default == EvalConfig().fold_batch_norm
    assert FLAGS["max_image_pixels"].default == ExportConfig().max_image_pixels


def test_a_typo_is_an_error(parse, tmp_path, capsys):
    recipe = tmp_path / "typo.flags"
    recipe.write_text(open(RECIPES[0]).read() + "--atrous_rate=6\n")
    with pytest.raises(SystemExit) as exit_info:
        parse("deeplab-train", f"--flagfile={recipe}")
    assert exit_info.value.code == 1
    assert "Unknown command line flag 'atrous_rate'" in capsys.readouterr().err


def test_another_binarys_flag_gets_a_notice_on_the_command_line_only(parse, tmp_path):
    _, err = parse("deeplab-train", "--crop_size=65,65", "--nofold_batch_norm")
    assert err == [
        "--crop_size is a deeplab-export / deeplab-bench / deeplab-model-stats flag; "
        "deeplab-train ignores it",
        "--fold_batch_norm is a deeplab-eval / deeplab-vis / deeplab-export flag; "
        "deeplab-train ignores it"]
    recipe = tmp_path / "r.flags"
    recipe.write_text("--crop_size=65,65\n--eval_logdir=x\n--voc_root=y\n")
    assert parse("deeplab-train", f"--flagfile={recipe}")[1] == []
    assert parse("deeplab-export", "--crop_size=65,65")[1] == []


@pytest.mark.parametrize("name,holder_parse", [
    ("train_crop_size", train.train_crop_size),
    ("eval_crop_size", lambda: parse_size(inference.EVAL_CROP_SIZE.value, "eval_crop_size")),
    ("crop_size", lambda: parse_size(export.CROP_SIZE.value, "crop_size")),
    ("vis_crop_size", vis.crop_size),
])
def test_both_list_forms_of_size_flags(parse, tmp_path, name, holder_parse):
    parse("deeplab-train", f"--{name}=321,257")
    assert holder_parse() == (321, 257)
    parse("deeplab-train", f"--{name}=321", f"--{name}=257")
    assert holder_parse() == (321, 257)
    recipe = tmp_path / "r.flags"
    recipe.write_text(f"--{name}=513,513\n")
    parse("deeplab-train", f"--flagfile={recipe}", f"--{name}=65,97")  # the last one wins
    assert holder_parse() == (65, 97)
    parse("deeplab-train", f"--flagfile={recipe}", f"--{name}=65", f"--{name}=97")
    assert holder_parse() == (65, 97)


def test_size_parser_errors_name_the_flag():
    assert parse_size(["33"], "crop_size") == (33, 33)
    assert parse_size([], "crop_size") is None
    for bad in (["a,b"], ["1", "2", "3"], ["0,5"], ["1,2,3"]):
        with pytest.raises(FlagValueError, match="--crop_size"):
            parse_size(bad, "crop_size")


def test_legacy_flags_notice_or_error(parse, monkeypatch):
    _, err = parse("deeplab-train", "--num_replicas=2", "--master=grpc://x",
                   "--save_summaries_secs=30", "--num_clones=1", "--quantize_delay_step=-1")
    assert err == [
        "note: --num_replicas=2: " + legacy.BY_NAME["num_replicas"].text,
        "note: --master=grpc://x: " + legacy.BY_NAME["master"].text,
        "note: --save_summaries_secs=30: summaries are written every --log_steps steps"]
    _, err = parse("deeplab-eval", "--eval_batch_size=4")
    assert err == ["note: --eval_batch_size=4: " + legacy.BY_NAME["eval_batch_size"].text]
    # No flag of the original is refused today; an "error" entry stops the binary.
    refused = legacy.Legacy(legacy.KEEP_ASPECT_RATIO, "error", "not built here",
                            legacy.MODEL_BINARIES)
    monkeypatch.setattr(legacy, "LEGACY", tuple(
        refused if entry.holder.name == "keep_aspect_ratio" else entry for entry in legacy.LEGACY))
    monkeypatch.setitem(legacy.BY_NAME, "keep_aspect_ratio", refused)
    for binary, arg in [("deeplab-train", "--keep_aspect_ratio=false")]:
        with pytest.raises(SystemExit) as exit_info:
            parse(binary, arg)
        assert exit_info.value.code == 1


def test_a_flag_error_in_a_real_binary_is_one_line_and_writes_nothing(tmp_path):
    logdir = tmp_path / "run"
    result = subprocess.run(
        [sys.executable, "-m", "deeplab_tf.cli.train", f"--train_logdir={logdir}",
         f"--dataset_dir={tmp_path}", "--num_ps_tasks=2"],
        capture_output=True, text=True, timeout=300, cwd=ROOT,
        env=dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="3"))
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert errors == ["error: --num_ps_tasks=2 but TF_CONFIG's cluster has 0 'ps' tasks (set "
                      "TF_CONFIG to the cluster: a chief, workers, ps tasks)"]
    assert "Traceback" not in result.stderr and not logdir.exists()


def test_num_clones_without_enough_devices_says_why(tmp_path, capfd):
    """deeplab-train's entry point in this process (cli_in_process: the device count needs
    TensorFlow, already imported here); the one-line error contract's subprocess run is the
    test above."""
    import tensorflow as tf

    from cli_in_process import run_in_process
    from deeplab_tf.cli import train as train_binary

    gpus = len(tf.config.list_logical_devices("GPU"))
    logdir = tmp_path / "run"
    result = run_in_process(train_binary.run, [
        "deeplab-train", f"--train_logdir={logdir}", f"--dataset_dir={tmp_path}",
        "--num_clones=64"], capfd)
    assert result.returncode == 1
    assert f"error: --num_clones=64 needs 64 local GPUs; this machine has {gpus}" in result.stderr
    assert "note: --num_clones=64:" in result.stderr and not logdir.exists()


def test_vis_reads_the_old_image_dir_spelling_from_the_command_line_only(parse, tmp_path):
    from deeplab_tf.cli import vis as vis_binary

    parse("deeplab-vis", f"--image_dir={tmp_path}")
    assert vis_binary._image_dir() == str(tmp_path)
    recipe = tmp_path / "r.flags"
    recipe.write_text(f"--image_dir={tmp_path}\n")  # a deeplab-build-folder recipe
    parse("deeplab-vis", f"--flagfile={recipe}")
    assert vis_binary._image_dir() is None
    parse("deeplab-vis", f"--vis_image_dir={tmp_path}")
    assert vis_binary._image_dir() == str(tmp_path)


def _non_default(cls):
    """A config of ``cls`` with tuples, None and changed values."""
    return {
        ModelConfig: ModelConfig(model_variant="xception_65", num_classes=3, atrous_rates=(6, 12, 18),
                                 decoder_output_stride=(8, 4), multi_grid=(1, 2, 4),
                                 image_pooling_crop_size=(65, 97), divisible_by=None,
                                 dense_prediction_cell=CITYSCAPES_CELL,
                                 use_bounded_activation=True,
                                 prediction_with_upsampled_logits=False),
        DataConfig: DataConfig(dataset="", dataset_dir="/d", train_crop_size=(65, 97),
                               min_resize_value=65, max_resize_value=129, seed=None),
        TrainConfig: TrainConfig(label_weights=(1.0, 2.5), tf_initial_checkpoint=None,
                                 save_interval_secs=0, batch_norm_decay=0.99),
        EvalConfig: EvalConfig(eval_scales=(0.5, 1.0), eval_crop_size=None, trimap_widths=(4, 8),
                               sliding_window_size=(65, 65), fold_batch_norm=True),
        ExportConfig: ExportConfig(format="frozen_graph", export_path="/x/frozen.pb",
                                   inference_scales=(0.75, 1.25), crop_size=(33, 45),
                                   export_version=None, min_resize_value=33, max_resize_value=65),
    }[cls]


@pytest.mark.parametrize("cls", [ModelConfig, DataConfig, TrainConfig, EvalConfig, ExportConfig])
def test_config_round_trips(cls):
    for config in (cls(), _non_default(cls)):
        assert cls.from_dict(config.to_dict()) == config
        assert cls.from_json(config.to_json()) == config
        assert all(not isinstance(v, tuple) for v in config.to_dict().values())
    assert cls.to_dict is ModelConfig.to_dict  # one implementation (the mixin)
    with pytest.raises(ValueError, match=f"Unknown {cls.__name__} fields: \\['typo'\\]"):
        cls.from_dict({"typo": 1})


def test_every_original_flag_has_a_status():
    rows = compat.statuses()
    assert {status for _, status, _ in rows.values()} == {"same", "notice"}  # none refused
    for name in ("num_clones", "master", "save_summaries_secs"):
        assert rows[name][1] == "notice"
    for name in ("dense_prediction_cell_json", "nas_use_classification_head",
                 "use_bounded_activation", "drop_path_keep_prob"):
        assert rows[name][1] == "same"
    for name in ("save_interval_secs", "checkpoint_path", "export_path", "crop_size", "eval_crop_size",
                 "quantize_delay_step"):
        assert rows[name][1] == "same"
    assert set(legacy.BY_NAME) <= set(rows)  # every legacy flag is one of the original's


def test_readme_compatibility_section_is_current():
    """docs/compatibility.md (linked from the README) holds the generated table as it is now."""
    page = open(os.path.join(ROOT, "docs", "compatibility.md")).read()
    assert compat.SECTION_HEADER in page, (
        f"docs/compatibility.md has no '{compat.SECTION_HEADER}' section: paste the output of "
        "python -c 'from deeplab_tf.cli.flags.compat import compat_table; print(compat_table())'")
    start = page.index(compat.SECTION_HEADER)
    end = page.find("\n## ", start + 1)
    section = page[start:] if end < 0 else page[start:end + 1]
    assert section.strip() == compat.compat_table().strip(), (
        "regenerate: python -c 'from deeplab_tf.cli.flags.compat import compat_table; "
        "print(compat_table())'")


def test_uses_names_real_groups_and_flags():
    groups = {parsing.group_of(name) for name in FLAGS} - {None}
    for binary, used in USES.items():
        for item in used:
            assert item in groups or (item.startswith("--") and item[2:] in FLAGS), (binary, item)
    assert not parsing.uses("deeplab-train", "train")  # bench's --train, not the train group


def test_bench_runs_on_a_recipe_and_writes_its_table(tmp_path):
    import json

    out = tmp_path / "bench.json"
    result = subprocess.run(
        [sys.executable, "-m", "deeplab_tf.cli.bench",
         f"--flagfile={os.path.join(ROOT, 'configs', 'demo', 'mobilenetv2_dm05_demo.flags')}",
         "--crop_size=65,65", "--modes=function,function_folded", "--repeats=1",
         "--nothroughput", "--noagreement", f"--output_json={out}"],
        capture_output=True, text=True, timeout=300, cwd=ROOT,
        env=dict(os.environ, PYTHONPATH=ROOT))
    assert result.returncode == 0, result.stderr[-2000:]
    assert "inference/function_folded" in result.stdout and "util." in result.stdout
    record = json.loads(out.read_text())
    assert record["madds"] > 0 and {r["name"] for r in record["results"]} == {
        "inference/function", "inference/function_folded"}
    assert record["machine"]["peak_flops"] > 0


def test_a_legacy_flag_of_another_binary_gets_the_other_binary_notice(parse):
    _, err = parse("deeplab-eval", "--num_clones=2")
    assert err == ["--num_clones is a deeplab-train flag; deeplab-eval ignores it"]


_MODEL = ["--model_variant=xception_65", "--atrous_rates=6", "--atrous_rates=12",
          "--atrous_rates=18", "--output_stride=16", "--decoder_output_stride=4"]
# The original's research/deeplab/local_test.sh commands (their flags, paths shortened).
LOCAL_TEST = {
    "deeplab-train": ["--logtostderr", "--train_split=trainval", *_MODEL,
                      "--train_crop_size=513,513", "--train_batch_size=4",
                      "--training_number_of_steps=10", "--fine_tune_batch_norm=true",
                      "--tf_initial_checkpoint=init/deeplabv3_pascal_train_aug/model.ckpt",
                      "--train_logdir=train", "--dataset_dir=tfrecord"],
    "deeplab-eval": ["--logtostderr", "--eval_split=val", *_MODEL, "--eval_crop_size=513,513",
                     "--checkpoint_dir=train", "--eval_logdir=eval", "--dataset_dir=tfrecord",
                     "--max_number_of_evaluations=1"],
    "deeplab-vis": ["--logtostderr", "--vis_split=val", *_MODEL, "--vis_crop_size=513,513",
                    "--checkpoint_dir=train", "--vis_logdir=vis", "--dataset_dir=tfrecord",
                    "--max_number_of_iterations=1"],
    "deeplab-export": ["--logtostderr", "--checkpoint_path=train/model.ckpt-10",
                       "--export_path=export/frozen_inference_graph.pb", *_MODEL,
                       "--num_classes=21", "--crop_size=513", "--crop_size=513",
                       "--inference_scales=1.0"],
}


@pytest.mark.parametrize("binary", sorted(LOCAL_TEST))
def test_local_test_sh_flags_parse_quietly_into_the_original_configs(parse, binary):
    from deeplab_tf.cli import export as export_binary

    rest, err = parse(binary, *LOCAL_TEST[binary])
    assert rest == ["prog"] and err == []
    config = model.model_config(num_classes=21)
    assert (config.model_variant, config.atrous_rates, config.decoder_output_stride) == (
        "xception_65", (6, 12, 18), (4,))
    if binary == "deeplab-train":
        assert train.train_crop_size() == (513, 513) and train.train_config().train_batch_size == 4
    if binary == "deeplab-vis":
        assert vis.crop_size() == (513, 513)
    if binary == "deeplab-export":
        export_config = export_binary.export_config_from_flags()
        assert export_config.format == "frozen_graph" and export_config.crop_size == (513, 513)
        assert export_config.export_path == "export/frozen_inference_graph.pb"
        assert export_config.inference_scales == (1.0,)


def test_tf_initial_checkpoints_alias_of_pascal_md(capsys):
    from absl import flags
    from absl.testing import flagsaver

    if not flags.FLAGS.is_parsed():
        flags.FLAGS.mark_as_parsed()
    with flagsaver.flagsaver(tf_initial_checkpoints="init/model.ckpt"):
        assert train.initial_checkpoint() == "init/model.ckpt"
    assert "read as --tf_initial_checkpoint" in capsys.readouterr().err
    with flagsaver.flagsaver(tf_initial_checkpoints="a/model.ckpt", tf_initial_checkpoint="b"):
        with pytest.raises(ValueError, match="--tf_initial_checkpoints=a/model.ckpt"):
            train.initial_checkpoint()
    assert compat.statuses()["tf_initial_checkpoints"][1] == "notice"


def test_cityscapes_md_split_names_read_the_fine_shards(tmp_path, capsys):
    """cityscapes.md's --train_split="train" / --eval_split="val" (the original's first names)
    read train_fine / val_fine shards, with a notice; existing train-* shards win."""
    from absl.testing import flagsaver

    if not flags.FLAGS.is_parsed():
        flags.FLAGS.mark_as_parsed()
    for name in ("train_fine-00000-of-00001.tfrecord", "val_fine-00000-of-00001.tfrecord"):
        (tmp_path / name).write_bytes(b"")
    with flagsaver.flagsaver(dataset="cityscapes", dataset_dir=str(tmp_path)):
        config = data.data_config(train_split="train", eval_split="val")
        assert (config.train_split, config.eval_split) == ("train_fine", "val_fine")
        err = capsys.readouterr().err
        assert "--train_split=train" in err and "--eval_split=val" in err and "val_fine" in err
        assert data.data_config(eval_split_flag="vis_split", eval_split="val").eval_split == \
            "val_fine"
        assert "--vis_split=val" in capsys.readouterr().err
        (tmp_path / "train-00000-of-00001.tfrecord").write_bytes(b"")
        assert data.data_config(train_split="train").train_split == "train"
    with flagsaver.flagsaver(dataset="pascal_voc_seg", dataset_dir=str(tmp_path)):
        assert data.data_config(eval_split="val").eval_split == "val"
