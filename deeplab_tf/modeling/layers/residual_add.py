"""``ResidualAdd``: the residual sum of a block, quantizable (``keras.layers.Add`` otherwise).

A drop-in for ``keras.layers.Add(name=scope_to_name(f"{scope}/add"))``: the same name and
the same sum. With ``quantization`` set (``layers.quantize``) the sum is fake-quantized with
a moving-average range named as the original's quantized graph names it,
``<block scope>/post_activation_bypass_quant`` (the block scope is the name's, without
``/add``), so the zoo's 8-bit MobileNetV2 checkpoints load by name.

Example:

>>> add = ResidualAdd(name="MobilenetV2.expanded_conv_2.add")
>>> add([tf.ones([1, 3, 3, 8]), tf.ones([1, 3, 3, 8])]).shape
TensorShape([1, 3, 3, 8])
"""

from __future__ import annotations

import keras
import tensorflow as tf

from deeplab_tf.modeling.layers import quantize
from deeplab_tf.modeling.layers.original_layer import OriginalLayer

RANGE_NAME = "post_activation_bypass_quant"


def block_scope(name: str) -> str:
    """The original's block scope of an add layer's name: ``"A.b.add"`` -> ``"A/b"``."""
    scope = name.replace(".", "/")
    return scope.rsplit("/", 1)[0] if "/" in scope else scope


@keras.saving.register_keras_serializable(package="deeplab_tf")
class ResidualAdd(OriginalLayer):
    """The sum of two tensors; fake-quantized when the network is quantization-aware.

    Args:
        quantization: None, "per_channel" or "per_tensor" (``layers.quantize``); "inherit"
            (default): the enclosing ``quantization_scope``'s.
        scope: str or None. The block's original scope; default from the name
            (``block_scope``).
        **kwargs: Layer arguments; ``name`` as given to ``keras.layers.Add``.
    """

    def __init__(self, quantization=quantize.INHERIT, scope=None, **kwargs):
        super().__init__(**kwargs)
        self.quantization = quantize.resolve_quantization(quantization)
        self.scope = scope or block_scope(self.name)
        self.range_quant = None
        if self.quantization:
            self.range_quant = quantize.RangeQuantizer(
                "moving_average", scope=f"{self.scope}/{RANGE_NAME}", name=RANGE_NAME)

    def build(self, input_shape):
        if self.range_quant is not None:
            self.range_quant.build(input_shape[0])

    def call(self, inputs, training=None):
        total = inputs[0]
        for other in inputs[1:]:  # as keras.layers.Add
            total = total + other
        if self.range_quant is None:
            return total
        return tf.cast(self.range_quant(total, training=training), total.dtype)

    def compute_output_shape(self, input_shape):
        return input_shape[0]

    def original_variables(self) -> dict:
        """The range of the sum when quantization-aware; no variables otherwise."""
        return {} if self.range_quant is None else self.range_quant.original_variables()

    def fold_batch_norm(self) -> None:
        """Nothing to fold: the sum has no batch norm."""

    def get_config(self):
        config = super().get_config()
        config.update(quantization=self.quantization, scope=self.scope)
        return config
