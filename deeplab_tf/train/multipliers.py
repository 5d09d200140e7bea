"""The original's per-variable gradient multipliers (train_utils.get_model_gradient_multipliers).

Shared by the custom training loop (``train.loop.Trainer``) and ``DeepLab.compile``.
"""

from __future__ import annotations

from deeplab_tf.checkpoints import in_scopes, last_layer_scopes
from deeplab_tf.layers.conv_bn import original_variable_map


def multiplier_of(name: str, scopes, last_layer_gradient_multiplier: float) -> float:
    """The multiplier of the original variable ``name``: ``last_layer_gradient_multiplier``
    under one of the last-layer ``scopes``, times 2 for biases."""
    value = last_layer_gradient_multiplier if in_scopes(name, scopes) else 1.0
    return float(value * 2.0) if name.endswith("/biases") else float(value)


def gradient_multipliers(model, last_layer_gradient_multiplier: float = 1.0,
                         last_layers_contain_logits_only: bool = False):
    """Per trainable variable, the original's gradient multiplier.

    As ``train_utils.get_model_gradient_multipliers``: ``last_layer_gradient_multiplier``
    for the last layers (logits, plus ASPP, image pooling, concat projection and decoder
    unless ``last_layers_contain_logits_only``), and twice as much for biases.

    Returns:
        list of float, aligned with ``model.trainable_variables``.
    """
    scopes = last_layer_scopes(last_layers_contain_logits_only)
    names = {var.path: name for name, var in original_variable_map(model).items()}
    return [multiplier_of(names.get(var.path, ""), scopes, last_layer_gradient_multiplier)
            for var in model.trainable_variables]
