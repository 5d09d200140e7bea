"""How the Trainer builds the model it trains: the precision and dtype policy, the optimizer,
the batch-norm decay and when quantization-aware training quantizes."""

from __future__ import annotations

import keras
from absl import logging

from deeplab_tf.modeling.layers.quantize import set_quantization_active
from deeplab_tf.runtime.hardware import resolve_mixed_precision

from deeplab_tf.modeling.precision import POLICIES, dtype_policy  # noqa: F401 (the Trainer's)


def training_precision(train_config):
    """(dtype, reason): ``train_config.mixed_precision`` with ``auto`` resolved for this
    machine (``runtime.hardware``); quantization-aware training computes in float32."""
    if train_config.mixed_precision == "auto" and train_config.quantizes:
        return "float32", "quantization-aware training"
    return resolve_mixed_precision(train_config.mixed_precision)


def make_optimizer(train_config, learning_rate):
    """The Keras optimizer of ``train_config`` (SGD with momentum or Adam; float16 wrapped in
    loss scaling); ``learning_rate`` is a callable read at every update.

    Momentum SGD is Keras' (``v = m v - lr g``), which equals the original's TF1 momentum
    optimizer (``a = m a + g; w -= lr a``) at a constant rate and differs only by the rate's
    change over the momentum's horizon (negligible for the slowly decaying policies).
    """
    if train_config.optimizer == "adam":
        optimizer = keras.optimizers.Adam(learning_rate=learning_rate,
                                          epsilon=train_config.adam_epsilon)
    else:
        optimizer = keras.optimizers.SGD(learning_rate=learning_rate,
                                         momentum=train_config.momentum)
    if train_config.mixed_precision == "float16":
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    return optimizer


def set_batch_norm_decay(model, decay: float):
    """Sets the moving-average decay (Keras ``momentum``) of every batch norm of ``model``."""
    for layer in model._flatten_layers(include_self=False, recursive=True):
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = float(decay)


def update_quantization(model, train_config, step: int) -> bool:
    """Before optimiser step ``step`` (1-based): the model's fake quantization on from
    ``train_config.quantize_delay_step`` on, off before. Every replica and worker decides
    alike (same step). Returns True when it changed: the training step must be traced again.
    """
    if not train_config.quantizes:
        return False
    active = train_config.quantization_active(step)
    if not set_quantization_active(model, active):
        return False
    delay = train_config.quantize_delay_step
    if active:
        logging.info("Step %d: quantization-aware training (quantize_delay_step=%d).", step,
                     delay)
    else:
        logging.info("Steps %d..%d train the float network (ranges tracked); quantized from "
                     "step %d.", step, delay - 1, delay)
    return True
