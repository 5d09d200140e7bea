"""Multiply-adds of a model's forward pass, counted on its traced inference graph."""

from __future__ import annotations

import keras
import tensorflow as tf

_CONV_OPS = ("Conv2D", "DepthwiseConv2dNative", "MatMul", "BatchMatMulV2")


def _op_madds(op) -> int:
    out_shape = op.outputs[0].shape
    if op.type == "Conv2D":
        kh, kw, cin, _ = op.inputs[1].shape
        return int(out_shape.num_elements()) * int(kh) * int(kw) * int(cin)
    if op.type == "DepthwiseConv2dNative":
        kh, kw, _, _ = op.inputs[1].shape
        return int(out_shape.num_elements()) * int(kh) * int(kw)
    # MatMul / BatchMatMul: every output element costs the contracted dimension.
    a_shape = op.inputs[0].shape
    transpose_a = op.get_attr("transpose_a") if op.type == "MatMul" else op.get_attr("adj_x")
    contracted = a_shape[-2] if transpose_a else a_shape[-1]
    return int(out_shape.num_elements()) * int(contracted)


def count_madds(model: keras.Model, height: int, width: int) -> int:
    """Multiply-adds of one forward pass at ``height`` x ``width`` (batch 1).

    Counts the convolutions (regular and depthwise) and matrix multiplications of the traced
    inference graph: a convolution costs output elements x kernel height x kernel width
    (x input channels for a regular one). Batch norm, bias, activations, pooling and resizes
    are not counted, as in the published figures.
    """
    spec = tf.TensorSpec([1, height, width, 3], tf.float32)
    graph = tf.function(lambda x: model(x, training=False)).get_concrete_function(spec).graph
    total = 0
    for op in graph.get_operations():
        if op.type in _CONV_OPS:
            if not op.outputs[0].shape.is_fully_defined():
                raise ValueError(f"Cannot count {op.type} {op.name}: unknown static shape")
            total += _op_madds(op)
    return total
