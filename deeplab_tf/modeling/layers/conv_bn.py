"""``ConvBN``: convolution -> batch norm -> activation, as the original's ``slim.conv2d``.

Strided convolutions use the original's *fixed* symmetric padding (pad, then VALID) instead
of 'SAME'. Each ``ConvBN`` carries the original's variable scope (``scope``), so converting a
checkpoint is a name map: ``original_layer.original_variable_map(model)`` collects it over a
whole model, and ``original_layer.fold_batch_norm(model)`` folds every batch norm into its
convolution for inference.

With ``quantization`` set (``layers.quantize``), the layer is the original's quantized
convolution (tf.contrib.quantize's rewrite): batch norm folded into the kernel
(``w * gamma / sqrt(moving_var + eps)``), the folded kernel fake-quantized
(``<scope>/weights_quant``), the activation's output fake-quantized (``<scope>/act_quant``).
Training with batch statistics computes the float convolution once more for them and
corrects the output as the original does: ``conv(x, Q(w_folded)) * sigma_moving / sigma_batch
+ (beta - mean_batch * gamma / sigma_batch)``, i.e. batch norm of the quantized-weight
convolution, while the quantized kernel always sees the moving statistics.

Example:

>>> import numpy as np
>>> layer = ConvBN(8, 3, strides=2, scope="net/conv1")
>>> layer(np.zeros((1, 65, 65, 3), "float32")).shape
TensorShape([1, 33, 33, 8])
"""

from __future__ import annotations

import keras
import tensorflow as tf

from deeplab_tf.modeling.layers import quantize
from deeplab_tf.modeling.layers.activations import ACTIVATIONS
from deeplab_tf.modeling.layers.batch_norm import BatchNorm
from deeplab_tf.modeling.layers.original_layer import OriginalLayer, batch_norm_scale_and_bias

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
        activation: None or a name of ``ACTIVATIONS``: "relu", "relu6", "hard_swish",
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
        quantization: None, "per_channel" or "per_tensor": the quantization-aware layer
            (see the module docstring and ``layers.quantize``); "inherit" (default): the
            enclosing ``quantize.quantization_scope``'s, None outside any.
    """

    def __init__(self, filters, kernel_size=1, strides=1, dilation_rate=1, depthwise=False,
                 explicit_padding=True, activation="relu", use_batch_norm=True,
                 bn_momentum=0.9997, bn_epsilon=1e-5, weight_decay=0.0, kernel_stddev=None,
                 scope="conv", sync_batch_norm=False, batch_norm_trainable=True,
                 bn_scope=None, kernel_initializer=None, quantization=quantize.INHERIT,
                 **kwargs):
        kwargs.setdefault("name", scope_to_name(scope))
        super().__init__(**kwargs)
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {list(ACTIVATIONS)}. "
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
        self.quantization = quantize.resolve_quantization(quantization)
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
        self._act = ACTIVATIONS[activation]
        self.weights_quant = self.act_quant = None
        if self.quantization:
            self.weights_quant = quantize.weights_quantizer(scope, self.quantization)
            self.act_quant = quantize.RangeQuantizer(
                "moving_average", scope=f"{scope}/act_quant", init_min=0.0, init_max=6.0,
                name="act_quant")

    def fold_batch_norm(self):
        """Switches this layer to inference only: batch norm folded into the convolution.

        ``y = gamma * (conv(x, w) - mean) / sqrt(var + eps) + beta`` is computed as
        ``conv(x, w * s) + (beta - mean * s)`` with ``s = gamma / sqrt(var + eps)``: one
        convolution with bias (which oneDNN fuses with the ReLU) instead of a convolution and
        two passes over its output. The folded weights are constants captured at this call
        (computed in float32, stored in the layer's compute dtype);
        later changes to the variables are not seen. Outputs equal the unfolded layer in
        inference mode to float rounding. A quantization-aware layer computes the folded form
        already (from its variables, as its ranges require): nothing to do.
        """
        if self.quantization:
            return
        kernel = tf.convert_to_tensor(self.conv.kernel, tf.float32)
        if self.bn is None:
            self._folded = (tf.cast(kernel, self.compute_dtype),
                            tf.cast(tf.convert_to_tensor(self.conv.bias, tf.float32),
                                    self.compute_dtype))
            return
        scale, bias = batch_norm_scale_and_bias(self.bn)
        kernel = self._scaled_kernel(kernel, scale)
        # Folded in float32, stored in the compute dtype (bfloat16 under mixed_bfloat16).
        self._folded = tuple(tf.cast(tf.constant(t.numpy()), self.compute_dtype)
                             for t in (kernel, bias))

    def _convolve(self, x, kernel):
        """The layer's convolution of (padded) ``x`` with ``kernel``, no bias."""
        padding = "VALID" if self._pad else "SAME"
        dilations = list(pair(self.dilation_rate))
        if self.depthwise:
            return tf.nn.depthwise_conv2d(x, kernel, [1, self.strides, self.strides, 1], padding,
                                          dilations=dilations)
        return tf.nn.conv2d(x, kernel, self.strides, padding, dilations=dilations)

    def _folded_call(self, x):
        kernel, bias = (tf.cast(t, x.dtype) for t in self._folded)
        return tf.nn.bias_add(self._convolve(x, kernel), bias)

    def _scaled_kernel(self, kernel, scale):
        if self.depthwise:  # kernel [kh, kw, channels, 1]
            return kernel * scale[None, None, :, None]
        return kernel * scale  # kernel [kh, kw, in, out]

    def _quantized_kernel(self, kernel, training):
        """``weights_quant`` on the kernel, ranges along its output channels (a depthwise
        kernel [kh, kw, C, 1] is seen as [kh, kw, 1, C])."""
        if not self.depthwise:
            return self.weights_quant(kernel, training=training)
        height, width, channels, _ = kernel.shape
        kernel = self.weights_quant(tf.reshape(kernel, [height, width, 1, channels]),
                                    training=training)
        return tf.reshape(kernel, [height, width, channels, 1])

    def _moving_scale(self):
        """(gamma / sqrt(moving_var + eps), sqrt(moving_var + eps)) in float32."""
        deviation = tf.sqrt(tf.cast(self.bn.moving_variance, tf.float32) + self.bn.epsilon)
        return tf.cast(self.bn.gamma, tf.float32) / deviation, deviation

    def _quantized_call(self, x, training):
        """The quantization-aware forward pass (``x`` padded); see the module docstring."""
        dtype = x.dtype
        x = tf.cast(x, tf.float32)
        kernel = tf.cast(self.conv.kernel, tf.float32)
        if self.bn is None:
            y = tf.nn.bias_add(self._convolve(x, self._quantized_kernel(kernel, training)),
                               tf.cast(self.conv.bias, tf.float32))
        else:
            bn = self.bn
            scale, moving_deviation = self._moving_scale()
            beta = tf.cast(bn.beta, tf.float32)
            y = self._convolve(x, self._quantized_kernel(self._scaled_kernel(kernel, scale),
                                                         training))
            if training and bn.trainable and not bn.always_inference:
                mean, variance, count = bn.batch_moments(self._convolve(x, kernel))
                bn.update_moving_statistics(mean, variance * count / tf.maximum(count - 1.0, 1.0))
                inverse_deviation = tf.math.rsqrt(variance + bn.epsilon)
                y = y * (moving_deviation * inverse_deviation)
                y = y + (beta - mean * tf.cast(bn.gamma, tf.float32) * inverse_deviation)
            else:
                y = y + (beta - tf.cast(bn.moving_mean, tf.float32) * scale)
        if self._act is not None:
            y = self._act(y)
        return tf.cast(self.act_quant(y, training=training), dtype)

    def _float_call_tracking_ranges(self, x, training):
        """Training before the quantization delay: the float layer's own computation, with
        the ranges tracked beside it (the folded kernel's and the output's)."""
        kernel = tf.cast(self.conv.kernel, tf.float32)
        if self.bn is not None:
            kernel = self._scaled_kernel(kernel, self._moving_scale()[0])
        self._quantized_kernel(kernel, training)  # inactive: observes the range only
        y = self.conv(x)
        if self.bn is not None:
            y = self.bn(y, training=training)
        if self._act is not None:
            y = self._act(y)
        return self.act_quant(y, training=training)

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
        if self.quantization:
            kernel_shape = tuple(self.conv.kernel.shape)
            if self.depthwise:
                kernel_shape = kernel_shape[:2] + (1, kernel_shape[2])
            self.weights_quant.build(kernel_shape)
            self.act_quant.build(self.conv.compute_output_shape(shape))

    def call(self, inputs, training=None):
        x = inputs
        if self._pad:
            x = tf.pad(x, [[0, 0], *self._padding(), [0, 0]])
        if self.quantization:
            if training and not self.act_quant.quantization_active:
                return self._float_call_tracking_ranges(x, training)
            return self._quantized_call(x, training)
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
        if self.quantization:
            names.update(self.weights_quant.original_variables())
            names.update(self.act_quant.original_variables())
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
            kernel_initializer=self.kernel_initializer, quantization=self.quantization)
        return config
