"""``OriginalLayer``: a layer whose weights are variables of the original's checkpoints.

The original network is made of a few kinds of layer that own variables (``ConvBN``: slim's
``conv2d`` with its batch norm under ``<scope>/BatchNorm`` or, for NAS, under a scope of its
own; ``FusedSeparableConvBN``: NAS's ``separable_conv2d`` + batch norm; ``ResidualAdd``:
a block's sum, whose range the quantized graph stores). Each is an ``OriginalLayer`` and
says two things:

* ``original_variables()``: {the original's variable name: this layer's variable}, so that a
  checkpoint of the original loads by name (``original_variable_map`` over a whole model);
* ``fold_batch_norm()``: switches the layer to inference only, its batch norm folded into
  the convolution (``fold_batch_norm`` over a whole model).

Checkpoint loading, the strict inference loading, the gradient multipliers and batch-norm
folding go through ``iter_original_layers``, never through a list of layer classes.
"""

from __future__ import annotations

import keras
import tensorflow as tf


class OriginalLayer(keras.layers.Layer):
    """Base of the layers that map to the original's variables (see the module docstring).

    Subclasses implement ``original_variables`` and ``fold_batch_norm`` and, once folded,
    keep the folded weights in ``_folded`` (None before).
    """

    _folded = None

    @property
    def is_folded(self) -> bool:
        """True once ``fold_batch_norm`` has run (the layer no longer trains)."""
        return self._folded is not None

    def original_variables(self) -> dict:
        """{original checkpoint variable name: this layer's Keras variable}."""
        raise NotImplementedError

    def fold_batch_norm(self) -> None:
        """Switches this layer to inference only, batch norm folded into the convolution."""
        raise NotImplementedError


def iter_original_layers(model):
    """Yield every layer of ``model`` (recursively) that maps to original variables."""
    for layer in model._flatten_layers(include_self=False, recursive=True):
        if isinstance(layer, OriginalLayer):
            yield layer


def original_variable_map(model) -> dict:
    """Map original checkpoint variable name -> Keras variable for a whole model."""
    names = {}
    for layer in iter_original_layers(model):
        for name, variable in layer.original_variables().items():
            if name in names:
                raise ValueError(f"Duplicate original variable name {name!r} in the model")
            names[name] = variable
    return names


def fold_batch_norm(model: keras.Model) -> keras.Model:
    """Folds every batch norm of ``model`` into its convolution, in place; returns ``model``.

    For inference, benchmarks and exports only: the folded model computes what the original
    computes in inference mode, with one convolution + bias per layer, and no longer trains
    (its batch norms are gone). Load the weights first, then fold.
    """
    for layer in iter_original_layers(model):
        layer.fold_batch_norm()
    return model


def batch_norm_scale_and_bias(bn):
    """(scale, bias) float32 tensors with ``bn(x) == x * scale + bias`` in inference mode."""
    scale = tf.cast(bn.gamma / tf.sqrt(bn.moving_variance + bn.epsilon), tf.float32)
    bias = tf.cast(bn.beta, tf.float32) - tf.cast(bn.moving_mean, tf.float32) * scale
    return scale, bias
