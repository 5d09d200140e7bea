"""How the Trainer builds the model it trains: the dtype policy and the batch-norm decay."""

from __future__ import annotations

import keras

from deeplab_tf.modeling.precision import POLICIES, dtype_policy  # noqa: F401 (the Trainer's)


def set_batch_norm_decay(model, decay: float):
    """Sets the moving-average decay (Keras ``momentum``) of every batch norm of ``model``."""
    for layer in model._flatten_layers(include_self=False, recursive=True):
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = float(decay)
