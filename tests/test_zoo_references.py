"""The original's reference configurations of this part of the model zoo (xception71_dpc,
nas_pnasnet, nas_hnasnet, xception41_bounded_os16_dec; tests/data/original_variables/):

* the original's flags, given to deeplab-train, deeplab-eval, deeplab-vis, deeplab-export and
  deeplab-model-stats, describe the same ModelConfig;
* a checkpoint written in the original's names (every variable of the reference list, random
  values) loads into the model built from it with the strict inference rule (no missing or
  unexpected variable), every value in place, and the model's parameters are the reference
  README's totals;
* deeplab-model-stats, run on those flags, prints that total (slow set).

nas_pnasnet runs by default; the larger three in the slow set (each a 28-42M parameter
checkpoint written and read).
"""

import os

import numpy as np
import pytest
from absl import flags

import helpers
from cli_in_process import run_in_process
from deeplab_tf import ModelConfig, build_model
from deeplab_tf.checkpoints.strict import load_for_inference
from deeplab_tf.cli import model_stats as model_stats_binary
from deeplab_tf.cli.flags import model, train
from deeplab_tf.cli.flags.parsing import flags_parser
from deeplab_tf.config.dense_prediction_cell import CITYSCAPES_CELL
from deeplab_tf.modeling.layers.original_layer import original_variable_map

_RATES_6 = ["--atrous_rates=6", "--atrous_rates=12", "--atrous_rates=18"]
# tsv -> (the original's model flags, classes, the ModelConfig they describe, README total).
REFERENCES = {
    "xception71_dpc.tsv": (
        ["--model_variant=xception_71", "--output_stride=16", "--decoder_output_stride=4",
         "--dense_prediction_cell_json="
         "deeplab/core/dense_prediction_cell_branch5_top1_cityscapes.json"], 19,
        ModelConfig(model_variant="xception_71", num_classes=19, output_stride=16,
                    dense_prediction_cell=CITYSCAPES_CELL, decoder_output_stride=(4,)),
        41_818_955),
    "nas_pnasnet.tsv": (
        ["--model_variant=nas_pnasnet", "--nas_stem_output_num_conv_filters=20",
         "--output_stride=16", *_RATES_6, "--decoder_output_stride=4"], 19,
        ModelConfig(model_variant="nas_pnasnet", num_classes=19, output_stride=16,
                    atrous_rates=(6, 12, 18), decoder_output_stride=(4,)),
        2_601_555),
    "nas_hnasnet.tsv": (
        ["--model_variant=nas_hnasnet", "--nas_stem_output_num_conv_filters=20",
         "--output_stride=8", "--atrous_rates=12", "--atrous_rates=24", "--atrous_rates=36"], 19,
        ModelConfig(model_variant="nas_hnasnet", num_classes=19, output_stride=8,
                    atrous_rates=(12, 24, 36)),
        7_665_011),
    "xception41_bounded_os16_dec.tsv": (
        ["--model_variant=xception_41", "--output_stride=16", *_RATES_6,
         "--decoder_output_stride=4", "--use_bounded_activation=true"], 21,
        ModelConfig(model_variant="xception_41", num_classes=21, output_stride=16,
                    atrous_rates=(6, 12, 18), decoder_output_stride=(4,),
                    use_bounded_activation=True),
        28_241_573),
}
DEFAULT_RUN = ("nas_pnasnet.tsv",)
BINARIES = ("deeplab-train", "deeplab-eval", "deeplab-vis", "deeplab-export",
            "deeplab-model-stats")


def _references():
    for tsv in REFERENCES:
        yield pytest.param(tsv, id=tsv[:-4],
                           marks=[] if tsv in DEFAULT_RUN else [pytest.mark.slow])


@pytest.fixture
def parse(capsys):
    def run(binary, *args):
        flags.FLAGS.unparse_flags()
        rest = flags_parser(binary)(["prog", *args])
        assert rest == ["prog"]
        return [line for line in capsys.readouterr().err.splitlines() if line]

    yield run
    flags.FLAGS.unparse_flags()


@pytest.mark.parametrize("binary", BINARIES)
def test_original_flags_describe_the_reference_configs(parse, binary):
    for tsv, (args, classes, expected, _) in REFERENCES.items():
        assert parse(binary, *args) == [], (tsv, binary)
        overrides = train.model_overrides() if binary == "deeplab-train" else {}
        assert model.model_config(num_classes=classes, **overrides) == expected, (tsv, binary)


@pytest.mark.parametrize("tsv", _references())
def test_original_checkpoint_loads_strictly_with_the_readme_total(tmp_path, tsv):
    _, _, config, total = REFERENCES[tsv]
    prefix, values = helpers.tsv_checkpoint(str(tmp_path / "model.ckpt"), tsv)
    built = build_model(config)
    report = load_for_inference(built, prefix, config)
    assert report.missing_in_checkpoint == [] and report.unused_in_checkpoint == []
    assert report.ignored == ["global_step"]
    names = original_variable_map(built)
    assert len(report.loaded) == len(names) == len(values) - 1 == len(built.weights)
    for name, var in names.items():
        np.testing.assert_array_equal(var.numpy(), values[name])
    assert built.count_params() == total


def test_a_mismatched_cell_names_the_flag(tmp_path):
    """A Dense Prediction Cell checkpoint into a model built without the cell, and the
    reverse: the strict rule's one-line error names the flag."""
    from deeplab_tf.checkpoints.paths import CheckpointError

    small = dict(model_variant="mobilenet_v2", depth_multiplier=0.25, num_classes=3)
    models = {"cell": build_model(ModelConfig(dense_prediction_cell=CITYSCAPES_CELL, **small)),
              "aspp": build_model(ModelConfig(atrous_rates=(6,), **small))}
    prefixes = {key: helpers.write_tf1_checkpoint(str(tmp_path / key / "model.ckpt"),
                                                  helpers.random_original_values(built))
                for key, built in models.items()}
    for checkpoint, built, hint in (
            ("cell", "aspp", "checkpoint has a dense prediction cell: add "
                             "--dense_prediction_cell_json"),
            ("aspp", "cell", "the checkpoint has no dense prediction cell: drop "
                             "--dense_prediction_cell_json")):
        with pytest.raises(CheckpointError, match=hint) as info:
            load_for_inference(models[built], prefixes[checkpoint])
        assert "\n" not in str(info.value)


@pytest.mark.slow  # builds each reference model again and traces it at 65x65
@pytest.mark.parametrize("tsv", list(REFERENCES))
def test_model_stats_binary_prints_the_readme_total(capfd, tsv):
    args, classes, _, total = REFERENCES[tsv]
    dataset = "--dataset=cityscapes" if classes == 19 else "--dataset=pascal_voc_seg"
    result = run_in_process(model_stats_binary.run, [
        "deeplab-model-stats", *args, dataset, "--crop_size=65,65"], capfd)
    assert result.returncode == 0, result.stderr
    assert f"params: {total:,}" in result.stdout.splitlines()


def test_reference_lists_are_the_shared_ones():
    """The copies in tests/data are the project's shared reference lists (when present)."""
    shared = os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared", "reference",
                          "original_variables")
    for tsv in REFERENCES:
        ours = helpers.reference_variables(tsv)
        assert sum(int(np.prod(shape)) for shape in ours.values()) == REFERENCES[tsv][3]
        path = os.path.join(shared, tsv)
        if os.path.exists(path):
            assert open(path).read() == open(os.path.join(helpers.REFERENCE_DIR, tsv)).read()


def test_dense_prediction_cell_presets():
    from deeplab_tf import presets

    trainfine = presets.get("xception71_dpc_cityscapes_trainfine")
    trainval = presets.get("xception71_dpc_cityscapes_trainval")
    assert trainfine.url == ("http://download.tensorflow.org/models/"
                             "deeplab_cityscapes_xception71_trainfine_2018_09_08.tar.gz")
    assert trainval.tarball == "deeplab_cityscapes_xception71_trainvalfine_2018_09_08.tar.gz"
    assert (trainfine.eval_output_stride, trainfine.eval_scales, trainfine.add_flipped_images,
            trainfine.published_miou, trainfine.eval_split, trainfine.published_madds) == (
        16, (1.0,), False, 80.31, "val", 502.07)
    assert (trainval.eval_output_stride, trainval.eval_scales, trainval.add_flipped_images,
            trainval.published_miou, trainval.eval_split, trainval.published_madds) == (
        8, (0.75, 1.0, 1.25, 1.5, 1.75, 2.0), True, 82.66, "test", None)
    assert trainfine.model_config == REFERENCES["xception71_dpc.tsv"][2]
    assert trainval.model_config == REFERENCES["xception71_dpc.tsv"][2].__class__.from_dict(
        dict(REFERENCES["xception71_dpc.tsv"][2].to_dict(), output_stride=8))
    assert len(trainfine.class_names) == 19


@pytest.mark.slow  # two 42M-parameter tarballs written and loaded
@pytest.mark.parametrize("name", ["xception71_dpc_cityscapes_trainfine",
                                  "xception71_dpc_cityscapes_trainval"])
def test_dense_prediction_cell_presets_load_a_zoo_tarball(tmp_path, name):
    from deeplab_tf import DeepLab, presets
    from test_presets import make_zoo_tarball

    path, values = make_zoo_tarball(str(tmp_path), name)
    built = DeepLab.from_preset(name, checkpoint=path)
    assert built.config == presets.get(name).model_config
    loaded = original_variable_map(built)
    assert len(loaded) == len(values) - 1  # all but global_step
    for variable_name, var in loaded.items():
        np.testing.assert_array_equal(var.numpy(), values[variable_name])
