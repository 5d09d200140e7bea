"""``load_for_inference``: the one loading rule of deeplab-eval, -vis, -export and -bench.

Every model variable must come from the checkpoint, and every model variable of the
checkpoint must have a place in the built model: a checkpoint variable of the model family
(``decoder/...``, ``aspp*``, ``image_pooling/...``) that the built model lacks is an error
naming the flag to set (``checkpoint has decoder variables: add --decoder_output_stride=4``),
never a silently different network. Optimizer slots, ``global_step`` and moving-average
shadows are ignored and reported. Training loads with ``checkpoints.load_checkpoint``, which
allows a partial match (an ImageNet backbone, a new class count).
"""

from __future__ import annotations

from deeplab_tf.checkpoints.paths import CheckpointError, resolve_checkpoint_path
from deeplab_tf.checkpoints.loading import (LoadReport, load_checkpoint,
                                    shapes_kind, variable_shapes)
from deeplab_tf.modeling.layers.conv_bn import original_variable_map
from deeplab_tf.modeling.scopes import last_layer_scopes

# Optimizer slots and bookkeeping that original checkpoints hold beside the model.
_NON_MODEL_SUFFIXES = ("Momentum", "Adam", "Adam_1", "RMSProp", "RMSProp_1", "Adagrad",
                       "ExponentialMovingAverage")
_NON_MODEL_NAMES = ("global_step", "fake_quantization_step")
# Training-only state of quantization ranges: the original's zero-debiased moving averages'
# shadows (``<range>/<range>/min/biased``, ``.../local_step``) and this project's step count.
_RANGE_STATE_SUFFIXES = ("biased", "local_step")
_RANGE_COUNT = "_quant/count/"
# Scope of a checkpoint variable the built model lacks -> the flag that builds it.
_FLAG_HINTS = (("decoder", "checkpoint has decoder variables: add --decoder_output_stride=4"),
               ("image_pooling", "checkpoint has image-pooling variables: add "
                                 "--add_image_level_feature=true"),
               ("aspp", "checkpoint has ASPP branch variables: set --atrous_rates as in "
                        "training (e.g. --atrous_rates=6,12,18)"))
_MISSING_HINTS = (("decoder", "the checkpoint has no decoder: drop --decoder_output_stride"),
                  ("image_pooling", "the checkpoint has no image pooling: "
                                    "--add_image_level_feature=false"),
                  ("aspp", "the checkpoint has fewer ASPP branches: check --atrous_rates"))
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


# Quantization ranges (``<scope>/weights_quant/min`` ...) on one side only.
_RANGES_MISSING = ("the checkpoint holds no quantization ranges (a float checkpoint): drop "
                   "--quantize_delay_step, or train it with --quantize_delay_step first")
_RANGES_UNUSED = ("the checkpoint holds quantization ranges: load it into a quantization-aware "
                  "model (ModelConfig.quantization, --quantize_delay_step=0)")


def _is_range(name: str) -> bool:
    return "_quant/" in name


def _hints(names, table, ranges_hint):
    hints = [hint for scope, hint in table
             if any(not _is_range(name) and (name.split("/")[0].startswith(scope)
                                             or f"/{scope}" in name) for name in names)]
    return hints + ([ranges_hint] if any(_is_range(name) for name in names) else [])


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
    parts = (_hints(unused, _FLAG_HINTS, _RANGES_UNUSED) if kind == "original" else []) + \
        _hints(missing, _MISSING_HINTS, _RANGES_MISSING)
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
