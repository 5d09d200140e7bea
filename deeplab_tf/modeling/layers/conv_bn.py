"""``ConvBN``: convolution -> batch norm -> activation, as the original's ``slim.conv2d``.

Strided convolutions use the original's *fixed* symmetric padding (pad, then VALID) instead
of 'SAME'. Each ``ConvBN`` carries the original's variable scope (``scope``), so converting a
checkpoint is a name map: ``original_variable_map(model)`` collects it over a whole model,
and ``fold_batch_norm(model)`` folds every batch norm into its convolution for inference
(both from ``original_layer``, re-exported here).

Example:

>>> import numpy as np
>>> layer = ConvBN(8, 3, strides=2, scope="net/conv1")
>>> layer(np.zeros((1, 65, 65, 3), "float32")).shape
TensorShape([1, 33, 33, 8])
"""

from __future__ import annotations

import keras
import tensorflow as tf

from deeplab_tf.modeling.layers.batch_norm import BatchNorm
from deeplab_tf.modeling.layers.original_layer import (  # noqa: F401 (re-exported)
    OriginalLayer, batch_norm_scale_and_bias, fold_batch_norm, iter_original_layers,
    original_variable_map)

CLIP_CAP = 6.0  # the original's bounded activation clips to [-6, 6]


def hard_swish(x):
    """MobileNetV3's hard-swish, as the original writes it: ``x * relu6(x + 3) * (1/6)``."""
    return x * tf.nn.relu6(x + 3.0) * (1.0 / 6.0)


def q_sigmoid(x):
    """The original's quantization-friendly sigmoid: ``relu6(x + 3) * 0.16667``.

    The gate of MobileNetV3's squeeze-and-excitation and of the image-pooling branch under
    ``image_se_uses_qsigmoid``; the literal 0.16667 (not 1/6) is the original's.
    """
    return tf.nn.relu6(x + 3.0) * 0.16667


def clip6(x):
    """The original's bounded activation without a floor: ``x`` clipped to [-6, 6]."""
    return tf.clip_by_value(x, -CLIP_CAP, CLIP_CAP)


# The activations a ConvBN applies after batch norm (or its bias), by name.
_ACTIVATIONS = {None: None, "relu": tf.nn.relu, "relu6": tf.nn.relu6,
                "hard_swish": hard_swish, "q_sigmoid": q_sigmoid, "sigmoid": tf.nn.sigmoid,
                "clip6": clip6}


def pair(value):
    """(a, b) of an int or a pair (a dilation rate that may differ per axis)."""
    if isinstance(value, (int, float)):
        return int(value), int(value)
    first, second = value
    return int(first), int(second)


def fixed_padding_amounts(kernel_size: int, rate: int = 1):
    """(begin, end) padding the original applies before a strided VALID convolution."""
    effective = kernel_size + (kernel_size - 1) * (rate - 1)
    total = effective - 1
    return total // 2, total - total // 2


def _kernel_initializer(stddev):
    if stddev is None:
        return keras.initializers.GlorotUniform()  # slim's default (xavier)
    return keras.initializers.TruncatedNormal(stddev=stddev)


def _l2(weight_decay):
    # slim.l2_regularizer(wd) is wd * sum(w**2) / 2; Keras' L2(l) is l * sum(w**2).
    return keras.regularizers.L2(weight_decay / 2.0) if weight_decay else None


def scope_to_name(scope: str) -> str:
    """Keras layer names cannot hold '/': the original scope with '/' written as '.'."""
    return scope.replace("/", ".")


@keras.saving.register_keras_serializable(package="deeplab_tf")
class ConvBN(OriginalLayer):
    """Convolution (regular or depthwise) -> batch norm -> activation, as slim.conv2d.

    Args:
        filters: int. Output channels (ignored when ``depthwise``: channels are kept).
        kernel_size: int or (kh, kw). Kernel size.
        strides: int. Stride.
        dilation_rate: int or (rate_h, rate_w). Atrous rate.
        depthwise: bool. Depthwise convolution (channel multiplier 1) instead of regular.
        explicit_padding: bool. If true, strided convolutions pad ``fixed_padding_amounts``
            then run VALID (the original's ``conv2d_same``); otherwise 'SAME'.
        activation: None or a name of ``_ACTIVATIONS``: "relu", "relu6", "hard_swish",
            "q_sigmoid", "sigmoid" or "clip6" (clip to [-6, 6], the original's bounded
            activation). Applied after batch norm (or the bias).
        use_batch_norm: bool. Batch norm after the convolution; if false a bias is used.
        bn_momentum: float. The original's batch norm ``decay``.
        bn_epsilon: float. Batch norm epsilon.
        weight_decay: float. slim L2 weight decay of the kernel (0 for none).
        kernel_stddev: float or None. Truncated-normal stddev of the kernel initializer;
            None for Glorot uniform (slim's default).
        kernel_initializer: a Keras initializer (or its config) instead of the one
            ``kernel_stddev`` gives, or None.
        scope: str. The original's variable scope of this convolution, e.g.
            ``"xception_65/entry_flow/conv1_1"``; also gives the layer name.
        bn_scope: str or None. The scope of the batch norm's variables; None for
            ``scope + "/BatchNorm"`` (slim's normalizer_fn). NAS names its batch norms apart
            (``pnasnet/conv0`` -> ``pnasnet/conv0_bn``).
        sync_batch_norm: bool. Synchronise batch statistics across replicas.
        batch_norm_trainable: bool. If false, batch norm always runs in inference mode
            (moving statistics, never updated) while gamma and beta stay trainable: the
            original's ``fine_tune_batch_norm=False``.
    """

    def __init__(self, filters, kernel_size=1, strides=1, dilation_rate=1, depthwise=False,
                 explicit_padding=True, activation="relu", use_batch_norm=True,
                 bn_momentum=0.9997, bn_epsilon=1e-5, weight_decay=0.0, kernel_stddev=None,
                 scope="conv", sync_batch_norm=False, batch_norm_trainable=True,
                 bn_scope=None, kernel_initializer=None, **kwargs):
        kwargs.setdefault("name", scope_to_name(scope))
        super().__init__(**kwargs)
        if activation not in _ACTIVATIONS:
            raise ValueError(f"activation must be one of {list(_ACTIVATIONS)}. "
                             f"Received: activation={activation!r}")
        self.filters = filters
        self.kernel_size = kernel_size if isinstance(kernel_size, int) else pair(kernel_size)
        self.strides = strides
        self.dilation_rate = (dilation_rate if isinstance(dilation_rate, int)
                              else pair(dilation_rate))
        self.depthwise = depthwise
        self.explicit_padding = explicit_padding
        self.activation = activation
        self.use_batch_norm = use_batch_norm
        self.bn_momentum = bn_momentum
        self.bn_epsilon = bn_epsilon
        self.weight_decay = weight_decay
        self.kernel_stddev = kernel_stddev
        self.scope = scope
        self.sync_batch_norm = sync_batch_norm
        self.batch_norm_trainable = batch_norm_trainable
        self.bn_scope = bn_scope
        self.kernel_initializer = (None if kernel_initializer is None else
                                   keras.initializers.serialize(
                                       keras.initializers.get(kernel_initializer)))
        initializer = (keras.initializers.get(kernel_initializer) if kernel_initializer
                       else _kernel_initializer(kernel_stddev))

        # A 1x1 kernel needs no padding at any stride ('VALID' then equals 'SAME').
        self._pad = explicit_padding and strides > 1 and max(pair(kernel_size)) > 1
        padding = "valid" if (self._pad or pair(kernel_size) == (1, 1)) else "same"
        common = dict(strides=strides, dilation_rate=dilation_rate, padding=padding,
                      use_bias=not use_batch_norm, dtype=self.dtype_policy)
        if depthwise:
            self.conv = keras.layers.DepthwiseConv2D(
                kernel_size, depthwise_initializer=initializer,
                depthwise_regularizer=_l2(weight_decay), name="conv", **common)
        else:
            self.conv = keras.layers.Conv2D(
                filters, kernel_size, kernel_initializer=initializer,
                kernel_regularizer=_l2(weight_decay), name="conv", **common)
        self.bn = None
        if use_batch_norm:
            self.bn = BatchNorm(
                momentum=bn_momentum, epsilon=bn_epsilon, synchronized=sync_batch_norm,
                always_inference=not batch_norm_trainable, name="bn", dtype=self.dtype_policy)
        self._act = _ACTIVATIONS[activation]

    def fold_batch_norm(self):
        """Switches this layer to inference only: batch norm folded into the convolution.

        ``y = gamma * (conv(x, w) - mean) / sqrt(var + eps) + beta`` is computed as
        ``conv(x, w * s) + (beta - mean * s)`` with ``s = gamma / sqrt(var + eps)``: one
        convolution with bias (which oneDNN fuses with the ReLU) instead of a convolution and
        two passes over its output. The folded weights are constants captured at this call;
        later changes to the variables are not seen. Outputs equal the unfolded layer in
        inference mode to float rounding.
        """
        kernel = tf.convert_to_tensor(self.conv.kernel, tf.float32)
        if self.bn is None:
            self._folded = (kernel, tf.convert_to_tensor(self.conv.bias, tf.float32))
            return
        scale, bias = batch_norm_scale_and_bias(self.bn)
        if self.depthwise:  # kernel [kh, kw, channels, 1]
            kernel = kernel * scale[None, None, :, None]
        else:  # kernel [kh, kw, in, out]
            kernel = kernel * scale
        self._folded = (tf.constant(kernel.numpy()), tf.constant(bias.numpy()))

    def _folded_call(self, x):
        kernel, bias = (tf.cast(t, x.dtype) for t in self._folded)
        padding = "VALID" if self._pad else "SAME"
        dilations = list(pair(self.dilation_rate))
        if self.depthwise:
            x = tf.nn.depthwise_conv2d(x, kernel, [1, self.strides, self.strides, 1], padding,
                                       dilations=dilations)
        else:
            x = tf.nn.conv2d(x, kernel, self.strides, padding, dilations=dilations)
        return tf.nn.bias_add(x, bias)

    def _padded_shape(self, input_shape) -> tuple:
        """The shape the convolution sees: ``input_shape`` after the fixed padding."""
        shape = list(input_shape)
        if self._pad:
            for axis, (begin, end) in zip((1, 2), self._padding()):
                if shape[axis] is not None:
                    shape[axis] += begin + end
        return tuple(shape)

    def _padding(self):
        """[(begin, end) of the height, of the width]: the fixed padding."""
        return [fixed_padding_amounts(size, rate)
                for size, rate in zip(pair(self.kernel_size), pair(self.dilation_rate))]

    def build(self, input_shape):
        shape = self._padded_shape(input_shape)
        self.conv.build(shape)
        if self.bn is not None:
            self.bn.build(self.conv.compute_output_shape(shape))

    def call(self, inputs, training=None):
        x = inputs
        if self._pad:
            x = tf.pad(x, [[0, 0], *self._padding(), [0, 0]])
        if self._folded is not None:
            x = self._folded_call(x)
        else:
            x = self.conv(x)
            if self.bn is not None:
                x = self.bn(x, training=training)
        if self._act is not None:
            x = self._act(x)
        return x

    def compute_output_shape(self, input_shape):
        return self.conv.compute_output_shape(self._padded_shape(input_shape))

    def original_variables(self) -> dict:
        """Map from the original checkpoint's variable names to this layer's variables."""
        kernel_name = "depthwise_weights" if self.depthwise else "weights"
        kernel = self.conv.kernel
        names = {f"{self.scope}/{kernel_name}": kernel}
        if self.bn is None:
            names[f"{self.scope}/biases"] = self.conv.bias
        else:
            bn_scope = self.bn_scope or f"{self.scope}/BatchNorm"
            for attr in ("gamma", "beta", "moving_mean", "moving_variance"):
                names[f"{bn_scope}/{attr}"] = getattr(self.bn, attr)
        return names

    def get_config(self):
        config = super().get_config()
        config.update(
            filters=self.filters, kernel_size=self.kernel_size, strides=self.strides,
            dilation_rate=self.dilation_rate, depthwise=self.depthwise,
            explicit_padding=self.explicit_padding, activation=self.activation,
            use_batch_norm=self.use_batch_norm, bn_momentum=self.bn_momentum,
            bn_epsilon=self.bn_epsilon, weight_decay=self.weight_decay,
            kernel_stddev=self.kernel_stddev, scope=self.scope,
            sync_batch_norm=self.sync_batch_norm,
            batch_norm_trainable=self.batch_norm_trainable, bn_scope=self.bn_scope,
            kernel_initializer=self.kernel_initializer)
        return config

