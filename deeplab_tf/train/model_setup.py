"""How the Trainer builds the model it trains: the dtype policy and the batch-norm decay."""

from __future__ import annotations

import contextlib

import keras

# TrainConfig.mixed_precision -> Keras dtype policy.
POLICIES = {"float32": "float32", "bfloat16": "mixed_bfloat16", "float16": "mixed_float16"}


@contextlib.contextmanager
def dtype_policy(mixed_precision: str):
    """Sets Keras' global dtype policy while layers are built, then restores it."""
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(POLICIES[mixed_precision])
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy(previous)


def set_batch_norm_decay(model, decay: float):
    """Sets the moving-average decay (Keras ``momentum``) of every batch norm of ``model``."""
    for layer in model._flatten_layers(include_self=False, recursive=True):
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = float(decay)
