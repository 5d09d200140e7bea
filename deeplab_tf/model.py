"""``build_model``: a DeepLabv3 / DeepLabv3+ Keras model from a ``ModelConfig``; ``model_stats``.

Model contract (DESIGN.md): input float32 RGB in [0, 255], NHWC, any height and width; the
backbone's normalisation is applied inside the model. Output: logits at the model's native
output stride (4 with the usual decoder, else ``output_stride``). Use
``deeplab_tf.evaluation.inference`` to upsample them to the input size and take the argmax.

Example:

>>> from deeplab_tf import ModelConfig, build_model
>>> config = ModelConfig(model_variant="mobilenet_v2", num_classes=3, output_stride=16)
>>> model = build_model(config)
>>> model(np.zeros((1, 65, 65, 3), "float32")).shape
TensorShape([1, 5, 5, 3])
"""

from __future__ import annotations

import keras
import tensorflow as tf

from deeplab_tf import heads
from deeplab_tf.backbones import get_backbone
from deeplab_tf.config import ModelConfig
from deeplab_tf.layers import Normalization, iter_original_layers


def build_model(config: ModelConfig, input_shape=(None, None, 3), name=None) -> keras.Model:
    """Builds the DeepLab model described by ``config``.

    Args:
        config: ModelConfig.
        input_shape: (height, width, 3). Height and width may be None (dynamic).
        name: str. Model name; defaults to ``deeplab_<model_variant>``.

    Returns:
        A functional ``keras.Model`` mapping images [B, H, W, 3] to logits.
    """
    if not isinstance(config, ModelConfig):
        raise TypeError(f"config must be a ModelConfig. Received: {type(config).__name__}")
    spec = get_backbone(config.model_variant)
    images = keras.Input(shape=input_shape, name="images", dtype="float32")
    x = Normalization(spec.normalization, name="normalization")(images)
    features, endpoints = spec.builder(x, config, config.model_variant)
    features = heads.aspp(features, config)
    if config.uses_decoder:
        features = heads.decoder(features, endpoints, config, spec.decoder_taps)
    logits = heads.logits(features, config)
    return keras.Model(images, logits, name=name or f"deeplab_{config.model_variant}")


def fold_batch_norm(model: keras.Model) -> keras.Model:
    """Folds every batch norm of ``model`` into its convolution, in place; returns ``model``.

    For inference, benchmarks and exports only: the folded model computes what the original
    computes in inference mode, with one convolution + bias per layer, and no longer trains
    (its batch norms are gone). Load the weights first, then fold.
    """
    for layer in iter_original_layers(model):
        layer.fold_batch_norm()
    return model


def output_stride_of(config: ModelConfig) -> int:
    """Stride of the model's logits relative to its input."""
    if config.uses_decoder:
        return config.decoder_output_stride[-1]
    return config.output_stride


def mean_pixel(model_variant: str):
    """RGB value that the model's normalisation maps to zero (the padding value)."""
    if get_backbone(model_variant).normalization == "subtract_imagenet_mean":
        return Normalization.MEAN_RGB
    return (127.5, 127.5, 127.5)


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


def model_stats(config: ModelConfig, height: int, width: int) -> dict:
    """``{"params": int, "madds": int}`` for ``config`` at ``height`` x ``width``.

    ``params`` counts every variable, batch-norm moving statistics included (as
    ``tf.train.list_variables`` on an original checkpoint would, less ``global_step``);
    ``madds`` is ``count_madds`` of one image.
    """
    model = build_model(config)
    return {"params": int(model.count_params()), "madds": count_madds(model, height, width)}
