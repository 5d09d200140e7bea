"""The original's scopes of "last layers" and its per-variable gradient multipliers.

The last layers are the ones a new class count re-initialises (``--initialize_last_layer``)
and the ones ``--last_layer_gradient_multiplier`` scales: the logits, plus (unless
``last_layers_contain_logits_only``) image pooling, ASPP, the concat projection, the decoder
and the dense prediction cell (the original's ``model.get_extra_layer_scopes``). Shared by
checkpoint loading, the custom training loop and ``DeepLab.compile``.

Scopes are prefixes, so the head switches' variables fall under them as in the original:
the image-pooling gate (``image_pooling/biases``) and the decoder's sum-merge and logits
convolutions (``decoder/decoder_conv0/biases``, ``decoder/decoder_split_sep_conv0_*``).
With ``decoder_output_is_logits`` there is no ``logits`` scope: under
``last_layers_contain_logits_only`` nothing is a last layer, as in the original.
"""

from __future__ import annotations

from typing import Tuple

from deeplab_tf.modeling.layers.original_layer import original_variable_map

LOGITS_SCOPES = ("logits",)
EXTRA_LAST_LAYER_SCOPES = ("image_pooling", "aspp", "concat_projection", "decoder",
                           "meta_architecture")


def last_layer_scopes(last_layers_contain_logits_only: bool = False) -> Tuple[str, ...]:
    """Scopes of the original's "last layers" (re-initialised for a new class count)."""
    if last_layers_contain_logits_only:
        return LOGITS_SCOPES
    return LOGITS_SCOPES + EXTRA_LAST_LAYER_SCOPES


def in_scopes(name: str, scopes) -> bool:
    """True if the original variable ``name`` lies under one of ``scopes`` (prefix match)."""
    return any(name.startswith(scope) for scope in scopes)


def multiplier_of(name: str, scopes, last_layer_gradient_multiplier: float) -> float:
    """The multiplier of the original variable ``name``: ``last_layer_gradient_multiplier``
    under one of the last-layer ``scopes``, times 2 for biases."""
    value = last_layer_gradient_multiplier if in_scopes(name, scopes) else 1.0
    return float(value * 2.0) if name.endswith("/biases") else float(value)


def gradient_multipliers(model, last_layer_gradient_multiplier: float = 1.0,
                         last_layers_contain_logits_only: bool = False):
    """Per trainable variable, the original's gradient multiplier.

    As ``train_utils.get_model_gradient_multipliers``: ``last_layer_gradient_multiplier``
    for the last layers, and twice as much for biases.

    Returns:
        list of float, aligned with ``model.trainable_variables``.
    """
    scopes = last_layer_scopes(last_layers_contain_logits_only)
    names = {var.path: name for name, var in original_variable_map(model).items()}
    return [multiplier_of(names.get(var.path, ""), scopes, last_layer_gradient_multiplier)
            for var in model.trainable_variables]
