"""``ConvBN``: convolution -> batch norm -> activation, as the original's ``slim.conv2d``.

Strided convolutions use the original's *fixed* symmetric padding (pad, then VALID) instead
of 'SAME'. Each ``ConvBN`` carries the original's variable scope (``scope``), so converting a
checkpoint is a name map: ``original_variable_map(model)`` collects it over a whole model,
and ``fold_batch_norm(model)`` folds every batch norm into its convolution for inference.

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

_ACTIVATIONS = {None: None, "relu": tf.nn.relu, "relu6": tf.nn.relu6}


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
class ConvBN(keras.layers.Layer):
    """Convolution (regular or depthwise) -> batch norm -> activation, as slim.conv2d.

    Args:
        filters: int. Output channels (ignored when ``depthwise``: channels are kept).
        kernel_size: int. Square kernel size.
        strides: int. Stride.
        dilation_rate: int. Atrous rate.
        depthwise: bool. Depthwise convolution (channel multiplier 1) instead of regular.
        explicit_padding: bool. If true, strided convolutions pad ``fixed_padding_amounts``
            then run VALID (the original's ``conv2d_same``); otherwise 'SAME'.
        activation: None, "relu" or "relu6". Applied after batch norm.
        use_batch_norm: bool. Batch norm after the convolution; if false a bias is used.
        bn_momentum: float. The original's batch norm ``decay``.
        bn_epsilon: float. Batch norm epsilon.
        weight_decay: float. slim L2 weight decay of the kernel (0 for none).
        kernel_stddev: float or None. Truncated-normal stddev of the kernel initializer;
            None for Glorot uniform (slim's default).
        scope: str. The original's variable scope of this convolution, e.g.
            ``"xception_65/entry_flow/conv1_1"``; also gives the layer name.
        sync_batch_norm: bool. Synchronise batch statistics across replicas.
        batch_norm_trainable: bool. If false, batch norm always runs in inference mode
            (moving statistics, never updated) while gamma and beta stay trainable: the
            original's ``fine_tune_batch_norm=False``.
    """

    def __init__(self, filters, kernel_size=1, strides=1, dilation_rate=1, depthwise=False,
                 explicit_padding=True, activation="relu", use_batch_norm=True,
                 bn_momentum=0.9997, bn_epsilon=1e-5, weight_decay=0.0, kernel_stddev=None,
                 scope="conv", sync_batch_norm=False, batch_norm_trainable=True, **kwargs):
        kwargs.setdefault("name", scope_to_name(scope))
        super().__init__(**kwargs)
        if activation not in _ACTIVATIONS:
            raise ValueError(f"activation must be None, 'relu' or 'relu6'. Received: activation={activation!r}")
        self.filters = filters
        self.kernel_size = kernel_size
        self.strides = strides
        self.dilation_rate = dilation_rate
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

        # A 1x1 kernel needs no padding at any stride ('VALID' then equals 'SAME').
        self._pad = explicit_padding and strides > 1 and kernel_size > 1
        padding = "valid" if (self._pad or kernel_size == 1) else "same"
        common = dict(strides=strides, dilation_rate=dilation_rate, padding=padding,
                      use_bias=not use_batch_norm, dtype=self.dtype_policy)
        if depthwise:
            self.conv = keras.layers.DepthwiseConv2D(
                kernel_size, depthwise_initializer=_kernel_initializer(kernel_stddev),
                depthwise_regularizer=_l2(weight_decay), name="conv", **common)
        else:
            self.conv = keras.layers.Conv2D(
                filters, kernel_size, kernel_initializer=_kernel_initializer(kernel_stddev),
                kernel_regularizer=_l2(weight_decay), name="conv", **common)
        self.bn = None
        if use_batch_norm:
            self.bn = BatchNorm(
                momentum=bn_momentum, epsilon=bn_epsilon, synchronized=sync_batch_norm,
                always_inference=not batch_norm_trainable, name="bn", dtype=self.dtype_policy)
        self._act = _ACTIVATIONS[activation]
        self._folded = None

    def fold_batch_norm(self):
        """Switches this layer to inference only: batch norm folded into the convolution.

        ``y = gamma * (conv(x, w) - mean) / sqrt(var + eps) + beta`` is computed as
        ``conv(x, w * s) + (beta - mean * s)`` with ``s = gamma / sqrt(var + eps)``: one
        convolution with bias (which oneDNN fuses with the ReLU) instead of a convolution and
        two passes over its output. The folded weights are constants captured at this call
        (computed in float32, stored in the layer's compute dtype);
        later changes to the variables are not seen. Outputs equal the unfolded layer in
        inference mode to float rounding.
        """
        kernel = tf.convert_to_tensor(self.conv.kernel, tf.float32)
        if self.bn is None:
            self._folded = (tf.cast(kernel, self.compute_dtype),
                            tf.cast(tf.convert_to_tensor(self.conv.bias, tf.float32),
                                    self.compute_dtype))
            return
        scale = self.bn.gamma / tf.sqrt(self.bn.moving_variance + self.bn.epsilon)
        scale = tf.cast(scale, tf.float32)
        if self.depthwise:  # kernel [kh, kw, channels, 1]
            kernel = kernel * scale[None, None, :, None]
        else:  # kernel [kh, kw, in, out]
            kernel = kernel * scale
        bias = tf.cast(self.bn.beta, tf.float32) - tf.cast(self.bn.moving_mean, tf.float32) * scale
        # Folded in float32, stored in the compute dtype (bfloat16 under mixed_bfloat16).
        self._folded = tuple(tf.cast(tf.constant(t.numpy()), self.compute_dtype)
                             for t in (kernel, bias))

    def _folded_call(self, x):
        kernel, bias = (tf.cast(t, x.dtype) for t in self._folded)
        padding = "VALID" if self._pad else "SAME"
        if self.depthwise:
            x = tf.nn.depthwise_conv2d(x, kernel, [1, self.strides, self.strides, 1], padding,
                                       dilations=[self.dilation_rate, self.dilation_rate])
        else:
            x = tf.nn.conv2d(x, kernel, self.strides, padding, dilations=self.dilation_rate)
        return tf.nn.bias_add(x, bias)

    def _padded_shape(self, input_shape) -> tuple:
        """The shape the convolution sees: ``input_shape`` after the fixed padding."""
        shape = list(input_shape)
        if self._pad:
            begin, end = fixed_padding_amounts(self.kernel_size, self.dilation_rate)
            for axis in (1, 2):
                if shape[axis] is not None:
                    shape[axis] += begin + end
        return tuple(shape)

    def build(self, input_shape):
        shape = self._padded_shape(input_shape)
        self.conv.build(shape)
        if self.bn is not None:
            self.bn.build(self.conv.compute_output_shape(shape))

    def call(self, inputs, training=None):
        x = inputs
        if self._pad:
            begin, end = fixed_padding_amounts(self.kernel_size, self.dilation_rate)
            x = tf.pad(x, [[0, 0], [begin, end], [begin, end], [0, 0]])
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
            for attr in ("gamma", "beta", "moving_mean", "moving_variance"):
                names[f"{self.scope}/BatchNorm/{attr}"] = getattr(self.bn, attr)
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
            batch_norm_trainable=self.batch_norm_trainable)
        return config


def iter_original_layers(model):
    """Yield every layer of ``model`` (recursively) that maps to original variables."""
    for layer in model._flatten_layers(include_self=False, recursive=True):
        if isinstance(layer, ConvBN):
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
