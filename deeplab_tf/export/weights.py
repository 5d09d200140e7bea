"""``load_weights``: every model variable from a checkpoint, or an error naming the mismatch.

An export must reproduce the trained model exactly, so, unlike fine-tuning (which accepts a
partial checkpoint), any model variable missing from the checkpoint, any model variable of
the checkpoint the model lacks (e.g. a decoder the flags did not ask for) and any shape
difference (``checkpoints.load_checkpoint``) is an error listing the variables and shapes.
"""

from __future__ import annotations

import tensorflow as tf

from deeplab_tf.checkpoints import CheckpointError, LoadReport, load_checkpoint
from deeplab_tf.layers import original_variable_map

# Optimizer slots and bookkeeping that original checkpoints may hold beside the model.
_NON_MODEL_SUFFIXES = ("Momentum", "Adam", "Adam_1", "RMSProp", "RMSProp_1",
                       "ExponentialMovingAverage")
_LIST_LIMIT = 6


def _describe(names, shapes):
    names = sorted(names, key=lambda name: ("BatchNorm" in name, name))  # weights first
    text = ", ".join(f"{name} {list(shapes.get(name, ()))}" for name in names[:_LIST_LIMIT])
    return text + (f", ... ({len(names) - _LIST_LIMIT} more)" if len(names) > _LIST_LIMIT else "")


def _model_scopes(model):
    from deeplab_tf.checkpoints import last_layer_scopes

    return {name.split("/")[0] for name in original_variable_map(model)} | set(last_layer_scopes())


def load_weights(model, checkpoint: str, model_config=None) -> LoadReport:
    """Loads all of ``model``'s variables from ``checkpoint`` (original TF1 or this project's).

    Args:
        model: a model from ``build_model``.
        checkpoint: checkpoint prefix or directory.
        model_config: ModelConfig or None. Only quoted in error messages.

    Returns:
        The ``LoadReport``.

    Raises:
        CheckpointError: naming the variables (and shapes) that do not match.
    """
    report = load_checkpoint(model, checkpoint)
    unused = list(report.unused_in_checkpoint)
    if report.kind == "original":
        scopes = _model_scopes(model)
        unused = [name for name in unused if name.split("/")[0] in scopes
                  and name.split("/")[-1] not in _NON_MODEL_SUFFIXES]
    if not report.missing_in_checkpoint and not unused:
        return report
    shapes = tf.train.load_checkpoint(report.path).get_variable_to_shape_map()
    model_shapes = {name: tuple(var.shape) for name, var in original_variable_map(model).items()}
    parts = []
    if report.missing_in_checkpoint:
        parts.append(f"{len(report.missing_in_checkpoint)} model variables are not in the "
                     f"checkpoint: {_describe(report.missing_in_checkpoint, model_shapes)}")
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
    raise CheckpointError(f"Checkpoint {report.path} does not match the model{model_text}: "
                          + "; ".join(parts) + ". Check the model flags (or config.json).")
