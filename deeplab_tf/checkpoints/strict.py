"""``load_for_inference``: the one loading rule of deeplab-eval, -vis, -export and -bench.

Every model variable must come from the checkpoint, and every model variable of the
checkpoint must have a place in the built model: a checkpoint variable of the model family
(``decoder/...``, ``aspp*``, ``image_pooling/...``) that the built model lacks is an error
naming the flag to set (``checkpoint has decoder variables: add --decoder_output_stride=4``;
likewise the head switches such as ``--aspp_with_squeeze_and_excitation`` or
``--decoder_output_is_logits``), never a silently different network. Optimizer slots,
``global_step`` and moving-average shadows are ignored and reported. Training loads with
``checkpoints.load_checkpoint``, which allows a partial match (an ImageNet backbone, a new
class count).
"""

from __future__ import annotations

import re

from deeplab_tf.checkpoints.paths import CheckpointError, resolve_checkpoint_path
from deeplab_tf.checkpoints.loading import (LoadReport, load_checkpoint,
                                    shapes_kind, variable_shapes)
from deeplab_tf.modeling.layers.original_layer import original_variable_map
from deeplab_tf.modeling.scopes import last_layer_scopes

# Optimizer slots and bookkeeping that original checkpoints hold beside the model.
_NON_MODEL_SUFFIXES = ("Momentum", "Adam", "Adam_1", "RMSProp", "RMSProp_1", "Adagrad",
                       "ExponentialMovingAverage")
_NON_MODEL_NAMES = ("global_step", "fake_quantization_step")
# Training-only state of quantization ranges: the original's zero-debiased moving averages'
# shadows (``<range>/<range>/min/biased``, ``.../local_step``) and this project's step count.
_RANGE_STATE_SUFFIXES = ("biased", "local_step")
_RANGE_COUNT = "_quant/count/"
# The head a variable list describes, switch by switch: (what a set of original names shows,
# None where it cannot tell; the hint when the checkpoint's value is true / larger than the
# model's; the hint when it is false / smaller).
_SWITCHES = (
    (lambda names: _any(names, "decoder/"),
     "checkpoint has decoder variables: add --decoder_output_stride=4 (8 for the MobileNetV3 "
     "zoo models)",
     "the checkpoint has no decoder: drop --decoder_output_stride"),
    (lambda names: _any(names, "image_pooling/"),
     "checkpoint has image-pooling variables: add --add_image_level_feature=true",
     "the checkpoint has no image pooling: --add_image_level_feature=false"),
    (lambda names: len({name.split("/")[0] for name in names
                        if re.match(r"aspp[1-9]", name)}),
     "checkpoint has ASPP branch variables: set --atrous_rates as in training "
     "(e.g. --atrous_rates=6,12,18)",
     "the checkpoint has fewer ASPP branches: check --atrous_rates"),
    (lambda names: ("image_pooling/biases" in names) if _any(names, "image_pooling/") else None,
     "checkpoint's image pooling has a bias and no batch norm (a squeeze-and-excitation "
     "gate): add --aspp_with_squeeze_and_excitation=true",
     "checkpoint's image pooling has batch norm: --aspp_with_squeeze_and_excitation=false"),
    (lambda names: _any(names, "concat_projection/"),
     "checkpoint has concat_projection variables: --aspp_with_concat_projection=true",
     "the checkpoint has no concat projection: add --aspp_with_concat_projection=false"),
    (lambda names: _sum_merge(names) if _any(names, "decoder/") else None,
     "checkpoint's decoder sums its branches (decoder_conv0 or decoder_split_sep_conv0 "
     "beside feature_projection0): add --decoder_use_sum_merge=true",
     "checkpoint's decoder concatenates its branches: --decoder_use_sum_merge=false"),
    (lambda names: _any(names, "logits/") if _any(names, "decoder/") else None,
     "checkpoint has a logits layer (logits/semantic): --decoder_output_is_logits=false",
     "the checkpoint has no logits layer, its decoder outputs the logits: add "
     "--decoder_output_is_logits=true"),
    (lambda names: _any(names, "meta_architecture/"),
     "checkpoint has a dense prediction cell: add --dense_prediction_cell_json (e.g. the "
     "original's dense_prediction_cell_branch5_top1_cityscapes.json)",
     "the checkpoint has no dense prediction cell: drop --dense_prediction_cell_json"),
    (lambda names: _any(names, "logits/semantic_1/"),
     "checkpoint has DeepLab-v2 logits (one per rate): add --aspp_with_batch_norm=false and "
     "its --atrous_rates",
     "the checkpoint has one logits layer: drop --aspp_with_batch_norm=false"),
)
# For this project's checkpoints (names not the original's): model scopes they lack.
_MISSING_HINTS = (("decoder", _SWITCHES[0][2]), ("image_pooling", _SWITCHES[1][2]),
                  ("aspp", _SWITCHES[2][2]), ("meta_architecture", _SWITCHES[7][2]))
_LIST_LIMIT = 6


def _is_non_model(name: str) -> bool:
    last = name.split("/")[-1]
    return (name in _NON_MODEL_NAMES or last in _NON_MODEL_SUFFIXES
            or "/ExponentialMovingAverage" in name or name.startswith("optimizer/")
            or name.startswith(("step/", "save_counter/"))
            or ("_quant/" in name and last in _RANGE_STATE_SUFFIXES) or _RANGE_COUNT in name)


def _describe(names, shapes):
    names = sorted(names, key=lambda name: ("BatchNorm" in name, name))  # weights first
    text = ", ".join(f"{name} {list(shapes.get(name, ()))}" for name in names[:_LIST_LIMIT])
    return text + (f", ... ({len(names) - _LIST_LIMIT} more)" if len(names) > _LIST_LIMIT else "")


def _any(names, prefix) -> bool:
    return any(name.startswith(prefix) for name in names)


def _sum_merge(names) -> bool:
    return any(re.match(r"decoder/decoder_split_sep_conv0|decoder/decoder_conv0(_\d+)?/"
                        r"(weights|biases|BatchNorm/)", name) for name in names)


def _switch_hints(checkpoint_names, model_names):
    """The hints of the head switches on which the checkpoint and the model differ."""
    hints = []
    for shows, more, less in _SWITCHES:
        theirs, ours = shows(checkpoint_names), shows(model_names)
        if theirs is not None and ours is not None and theirs != ours:
            hints.append(more if theirs > ours else less)
    return hints


def _missing_hints(missing):
    return [hint for scope, hint in _MISSING_HINTS
            if any(not _is_range(name) and name.split("/")[0].startswith(scope)
                   for name in missing)]


# Quantization ranges (``<scope>/weights_quant/min`` ...) on one side only.
_RANGES_MISSING = ("the checkpoint holds no quantization ranges (a float checkpoint): drop "
                   "--quantize_delay_step, or train it with --quantize_delay_step first")
_RANGES_UNUSED = ("the checkpoint holds quantization ranges: load it into a quantization-aware "
                  "model (ModelConfig.quantization, --quantize_delay_step=0)")


def _is_range(name: str) -> bool:
    return "_quant/" in name


def _range_hints(missing, unused):
    return ([_RANGES_MISSING] if any(_is_range(name) for name in missing) else []) + \
        ([_RANGES_UNUSED] if any(_is_range(name) for name in unused) else [])


def load_for_inference(model, path: str, model_config=None) -> LoadReport:
    """The loading rule of deeplab-eval, deeplab-vis, deeplab-export and deeplab-bench.

    Every model variable must come from the checkpoint, and every model variable of the
    checkpoint must have a place in the built model: a decoder checkpoint loaded into a model
    built without ``--decoder_output_stride`` is an error naming that flag (likewise ASPP and
    image-pooling branches), never a silently different network. Optimizer slots,
    ``global_step`` and moving-average shadows are ignored and listed in ``report.ignored``.

    Args:
        model: a model from ``build_model``.
        path: anything ``resolve_checkpoint_path`` accepts.
        model_config: ModelConfig or None. Quoted in error messages.

    Raises:
        CheckpointError: naming the variables (and shapes) that do not match, and the flag.
    """
    path = resolve_checkpoint_path(path)
    shapes = variable_shapes(path)
    kind = shapes_kind(shapes)
    names = original_variable_map(model)
    family = {name.split("/")[0] for name in names} | set(last_layer_scopes())

    def of_model(name):  # a model variable of the family (not e.g. another network's)
        root = name.split("/")[0]
        return not _is_non_model(name) and (
            kind == "project" or root in family or root.startswith("aspp"))

    if kind == "original":  # Names first: a missing branch explains the shapes that follow.
        missing = sorted(set(names) - set(shapes))
        unused = sorted(name for name in set(shapes) - set(names) if of_model(name))
        if missing or unused:
            _mismatch(path, model, model_config, missing, unused, shapes, kind)
    report = load_checkpoint(model, path)
    unused = [name for name in report.unused_in_checkpoint if of_model(name)]
    report.ignored = [name for name in report.unused_in_checkpoint if not of_model(name)]
    report.unused_in_checkpoint = unused
    if report.missing_in_checkpoint or unused:
        _mismatch(report.path, model, model_config, report.missing_in_checkpoint, unused,
                  shapes, kind)
    return report


def _mismatch(path, model, model_config, missing, unused, shapes, kind):
    model_shapes = {name: tuple(var.shape) for name, var in original_variable_map(model).items()}
    if kind == "original":
        parts = _switch_hints(set(shapes), set(model_shapes)) + _range_hints(missing, unused)
    else:
        parts = _missing_hints(missing) + _range_hints(missing, ())
    if missing:
        parts.append(f"{len(missing)} model variables are not in the "
                     f"checkpoint: {_describe(missing, model_shapes)}")
    if unused:
        parts.append(f"{len(unused)} checkpoint variables are not in the model: "
                     f"{_describe(unused, shapes)}")
    model_text = ""
    if model_config is not None:
        model_text = (f" (model_variant={model_config.model_variant}, "
                      f"num_classes={model_config.num_classes}, "
                      f"output_stride={model_config.output_stride}, "
                      f"decoder_output_stride={list(model_config.decoder_output_stride)}, "
                      f"atrous_rates={list(model_config.atrous_rates)})")
    raise CheckpointError(f"Checkpoint {path} does not match the model{model_text}: "
                          + "; ".join(parts) + ". Check the model flags (or config.json).")
