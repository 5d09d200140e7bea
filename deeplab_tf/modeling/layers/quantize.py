"""Quantization-aware training: the range-holding ``RangeQuantizer`` and the network's switch.

The original trains 8-bit models with ``tf.contrib.quantize``, a rewrite of the TF1 graph:
batch norm folded into each convolution, the folded weights and each layer's output passed
through FakeQuant ops (8 bits) whose ranges are non-trainable variables beside the layer. Here
the building blocks have a quantization-aware mode instead (no graph rewrite, no
tensorflow-model-optimization, which does not take Keras 3 models):

* ``RangeQuantizer`` (this module) holds one tensor's range (``min``, ``max``) and
  fake-quantizes it with ``keras.quantizers.fake_quant_with_min_max_vars`` (TF's FakeQuant
  ops, which the TFLite converter turns into integer ops). Two kinds, as the original's:
  ``"last_value"`` for weights (the range of the tensor at each training call) and
  ``"moving_average"`` for activations (the bias-corrected moving average, decay 0.999, of
  each batch's range; the first batch's range exactly after one step).
* ``ConvBN`` (and so ``SeparableConvBN``) with ``quantization`` set folds its batch norm into
  the kernel, quantizes the folded kernel (``<scope>/weights_quant``) and its output
  (``<scope>/act_quant``); ``ResidualAdd`` quantizes the sum
  (``<block>/post_activation_bypass_quant``); ``Normalization`` quantizes the pixels and the
  normalised input with fixed ranges. These names are the original's quantized-graph
  variable names (``original_variables``), so the zoo's 8-bit checkpoints load by name.

``quantization`` is ``None`` (the float network, unchanged), ``"per_channel"`` or
``"per_tensor"``: how weights are quantized. ``"per_channel"``: one symmetric range per output
channel (TFLite's int8 specification, Model Garden's QAT; converts to an int8 model).
``"per_tensor"``: one asymmetric range per kernel, the original's contrib.quantize scheme (its
8-bit zoo checkpoints; converts to an all-uint8 model as the original's). Activations are
always quantized per tensor, asymmetric, 8 bits.

``quantization_scope(value)`` gives every block built inside it (``quantization="inherit"``,
their default) that setting: ``modeling.network.build_network`` opens it from
``ModelConfig.quantization``, so backbones need no quantization argument of their own.

In training, the ranges are updated by every forward pass. ``set_quantization_active(model,
False)`` makes the quantizing blocks train exactly as the float network (the ranges are still
tracked, as the original tracked them before its delay): the trainer does so before
``--quantize_delay_step``. Inference always runs quantized (the original's eval graph).

Example:

>>> quantizer = RangeQuantizer("moving_average", scope="net/act_quant")
>>> y = quantizer(tf.random.uniform([2, 5, 5, 3]), training=True)  # range = this batch's
"""

from __future__ import annotations

import contextlib

import keras
import tensorflow as tf

from deeplab_tf.config import QUANTIZATIONS
INHERIT = "inherit"
EMA_DECAY = 0.999  # the original's moving-average decay of activation ranges
NUM_BITS = 8
_KINDS = ("last_value", "moving_average")
_SCOPE = [None]  # the enclosing quantization_scope's setting


@contextlib.contextmanager
def quantization_scope(quantization):
    """Blocks built inside take ``quantization`` (None, "per_channel" or "per_tensor")."""
    check_quantization(quantization)
    previous = _SCOPE[0]
    _SCOPE[0] = quantization
    try:
        yield
    finally:
        _SCOPE[0] = previous


def check_quantization(quantization):
    if quantization is not None and quantization not in QUANTIZATIONS:
        raise ValueError(f"quantization must be None or one of {', '.join(QUANTIZATIONS)}. "
                         f"Received: quantization={quantization!r}")
    return quantization


def resolve_quantization(quantization):
    """A block's ``quantization`` argument: ``"inherit"`` -> the enclosing scope's."""
    if quantization == INHERIT:
        return _SCOPE[0]
    return check_quantization(quantization)


def fake_quant(x, min_value, max_value, narrow_range=False, per_channel=False):
    """8-bit fake quantization of ``x`` (per tensor, or per channel of the last axis).

    Call it on concrete or traced tensors only (inside a layer's ``call``): on functional-API
    KerasTensors Keras records its defaults instead of ``narrow_range`` and ``axis``.
    """
    return keras.quantizers.fake_quant_with_min_max_vars(
        x, min_value, max_value, num_bits=NUM_BITS, narrow_range=narrow_range,
        axis=-1 if per_channel else None)


def tensor_range(x, per_channel=False, symmetric=False):
    """(min, max) of ``x`` (over all but the last axis when ``per_channel``), widened to hold
    0; made symmetric (``-m, m``) when asked, as the original's quantizers."""
    axes = list(range(x.shape.rank - 1)) if per_channel else None
    low = tf.minimum(tf.reduce_min(x, axis=axes), 0.0)
    high = tf.maximum(tf.reduce_max(x, axis=axes), 0.0)
    if symmetric:
        high = tf.maximum(-low, high)
        low = -high
    return low, high


@keras.saving.register_keras_serializable(package="deeplab_tf")
class RangeQuantizer(keras.layers.Layer):
    """The range of one tensor (variables ``min``, ``max``) and its 8-bit fake quantization.

    In training (``training=True``) the range is updated from the input first and the
    updated range quantizes it; in inference the stored range is used as it is.

    Args:
        kind: str. ``"last_value"``: the range becomes the input's (weights);
            ``"moving_average"``: the bias-corrected moving average of the inputs' ranges
            (activations), kept with a step ``count``.
        scope: str. The original's name of the quantizer, e.g.
            ``"MobilenetV2/Conv/act_quant"``: its variables are ``<scope>/min`` and
            ``<scope>/max`` in the original's checkpoints (``original_variables``).
        per_channel: bool. One range per channel of the last axis (created at build).
        symmetric: bool. Ranges ``[-m, m]``.
        narrow_range: bool. Quantized values 1..255 instead of 0..255 (the weights').
        init_min, init_max: float. Initial range (the original's: weights [-6, 6],
            activations [0, 6], residual sums [-6, 6]).
        ema_decay: float. Decay of the moving average.
    """

    def __init__(self, kind="moving_average", scope="quant", per_channel=False, symmetric=False,
                 narrow_range=False, init_min=-6.0, init_max=6.0, ema_decay=EMA_DECAY,
                 **kwargs):
        kwargs.setdefault("name", scope.rsplit("/", 1)[-1])
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        if kind not in _KINDS:
            raise ValueError(f"kind must be one of {', '.join(_KINDS)}. Received: kind={kind!r}")
        self.kind = kind
        self.scope = scope
        self.per_channel = bool(per_channel)
        self.symmetric = bool(symmetric)
        self.narrow_range = bool(narrow_range)
        self.init_min = float(init_min)
        self.init_max = float(init_max)
        self.ema_decay = float(ema_decay)
        self.quantization_active = True  # see set_quantization_active

    def build(self, input_shape):
        shape = (int(input_shape[-1]),) if self.per_channel else ()
        # MEAN: under several replicas each computes its batch's range; the assignment
        # averages them, so every replica quantizes with the same range.
        common = dict(shape=shape, trainable=False, aggregation="mean")
        self.min = self.add_weight(name="min", initializer=keras.initializers.Constant(
            self.init_min), **common)
        self.max = self.add_weight(name="max", initializer=keras.initializers.Constant(
            self.init_max), **common)
        self.count = None
        if self.kind == "moving_average":
            self.count = self.add_weight(name="count", shape=(), initializer="zeros",
                                         trainable=False, aggregation="only_first_replica")

    def observe(self, x):
        """Updates the range from ``x`` (a training step) and returns the new (min, max)."""
        x = tf.stop_gradient(tf.cast(x, tf.float32))
        low, high = tensor_range(x, self.per_channel, self.symmetric)
        if self.kind == "moving_average":
            # The original's zero-debiased average: biased_t = d * biased_{t-1} + (1 - d) *
            # value, range_t = biased_t / (1 - d^t). With biased_{t-1} = range_{t-1} *
            # (1 - d^(t-1)) this is range_t = range_{t-1} + (value - range_{t-1}) * (1 - d) /
            # (1 - d^t): only the step count t is kept.
            count = tf.cast(self.count, tf.float32) + 1.0
            decay = tf.constant(self.ema_decay, tf.float32)  # so that weight_1 is exactly 1
            weight = (1.0 - decay) / (1.0 - tf.pow(decay, count))
            old_low, old_high = (tf.cast(v, tf.float32) for v in (self.min, self.max))
            low = old_low + (low - old_low) * weight
            high = old_high + (high - old_high) * weight
            self.count.assign(count)
        self.min.assign(low)
        self.max.assign(high)
        return low, high

    def fake_quantize(self, x, low=None, high=None):
        """``x`` fake-quantized with (``low``, ``high``), by default the stored range."""
        low = tf.cast(self.min, tf.float32) if low is None else low
        high = tf.cast(self.max, tf.float32) if high is None else high
        y = fake_quant(tf.cast(x, tf.float32), low, high, self.narrow_range, self.per_channel)
        return tf.cast(y, x.dtype)

    def call(self, inputs, training=None):
        if not training:
            return self.fake_quantize(inputs)
        low, high = self.observe(inputs)
        return self.fake_quantize(inputs, low, high) if self.quantization_active else inputs

    def original_variables(self) -> dict:
        """The original's names of the range: ``<scope>/min``, ``<scope>/max``."""
        return {f"{self.scope}/min": self.min, f"{self.scope}/max": self.max}

    def get_config(self):
        config = super().get_config()
        config.update(kind=self.kind, scope=self.scope, per_channel=self.per_channel,
                      symmetric=self.symmetric, narrow_range=self.narrow_range,
                      init_min=self.init_min, init_max=self.init_max, ema_decay=self.ema_decay)
        return config


def weights_quantizer(scope: str, quantization: str) -> RangeQuantizer:
    """The ``<scope>/weights_quant`` of a convolution for ``quantization``."""
    per_channel = quantization == "per_channel"
    return RangeQuantizer("last_value", scope=f"{scope}/weights_quant", per_channel=per_channel,
                          symmetric=per_channel, narrow_range=True, name="weights_quant")


def _switchable(model):
    """The layers whose training passes quantize or not (``quantization_active``)."""
    return [layer for layer in model._flatten_layers(include_self=False, recursive=True)
            if hasattr(layer, "quantization_active")]


def is_quantized(model) -> bool:
    """Whether ``model`` holds quantization-aware blocks."""
    return hasattr(model, "_flatten_layers") and bool(_switchable(model))


def set_quantization_active(model, active: bool) -> bool:
    """Switches the fake quantization of ``model``'s training passes on or off.

    Off, training computes exactly what the float network computes (ranges still tracked);
    inference is quantized either way. A traced training step must be traced again after a
    change. Returns whether anything changed.
    """
    changed = False
    for layer in _switchable(model):
        changed |= layer.quantization_active != bool(active)
        layer.quantization_active = bool(active)
    return changed
