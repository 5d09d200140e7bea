"""``SeparableConvBN``: the original's split separable convolution.

Depthwise (with ``dilation_rate``) -> BN -> [act] -> pointwise 1x1 -> BN -> [act], two
``ConvBN`` layers. With ``pre_activation=True`` a ReLU is applied to the input and none
inside, which is the Xception unit's ``activation_fn_in_separable_conv=False`` form; with
``activation='relu'`` it is ASPP/decoder's ``split_separable_conv2d``. The original's bounded
activation is ``pre_activation="relu6"`` with ``activation="clip6"`` (Xception) or
``activation="relu6"`` (ASPP, decoder).
"""

from __future__ import annotations

import keras
import tensorflow as tf

from deeplab_tf.modeling.layers import quantize
from deeplab_tf.modeling.layers.conv_bn import ConvBN, scope_to_name

# Truncated-normal stddevs of the original's split_separable_conv2d (ASPP and decoder).
DEPTHWISE_STDDEV = 0.33
POINTWISE_STDDEV = 0.06


@keras.saving.register_keras_serializable(package="deeplab_tf")
class SeparableConvBN(keras.layers.Layer):
    """The original's split separable convolution (depthwise -> BN -> pointwise -> BN).

    Args:
        filters: int. Pointwise output channels.
        kernel_size: int or (kh, kw). Depthwise kernel size.
        strides: int. Depthwise stride.
        dilation_rate: int or (rate_h, rate_w). Depthwise atrous rate.
        explicit_padding: bool. Fixed padding for strided depthwise convs (see ``ConvBN``).
        pre_activation: bool or "relu6". ReLU (True) or ReLU6 on the input (Xception's
            ``activation_fn_in_separable_conv=False``).
        activation: None, "relu", "relu6" or "clip6". After each of the two batch norms.
        bn_momentum, bn_epsilon: float. Batch norm decay and epsilon.
        weight_decay: float. L2 on the pointwise kernel.
        depthwise_weight_decay: float. L2 on the depthwise kernel (the original: none).
        depthwise_stddev, pointwise_stddev: float. Truncated-normal initializer stddevs.
        scope: str. The original's scope; variables live under ``scope + "_depthwise"`` and
            ``scope + "_pointwise"``.
        sync_batch_norm, batch_norm_trainable: bool. See ``ConvBN``.
        quantization: None, "per_channel", "per_tensor" or "inherit": both convolutions'
            (see ``ConvBN``).
    """

    def __init__(self, filters, kernel_size=3, strides=1, dilation_rate=1,
                 explicit_padding=True, pre_activation=False, activation="relu",
                 bn_momentum=0.9997, bn_epsilon=1e-5, weight_decay=0.0,
                 depthwise_weight_decay=0.0, depthwise_stddev=DEPTHWISE_STDDEV,
                 pointwise_stddev=POINTWISE_STDDEV,
                 scope="separable_conv", sync_batch_norm=False, batch_norm_trainable=True,
                 quantization=quantize.INHERIT, **kwargs):
        kwargs.setdefault("name", scope_to_name(scope))
        super().__init__(**kwargs)
        if pre_activation not in (False, True, "relu6"):
            raise ValueError("pre_activation must be False, True (ReLU) or 'relu6'. "
                             f"Received: pre_activation={pre_activation!r}")
        self.filters = filters
        self.kernel_size = kernel_size
        self.strides = strides
        self.dilation_rate = dilation_rate
        self.explicit_padding = explicit_padding
        self.pre_activation = pre_activation
        self.activation = activation
        self.bn_momentum = bn_momentum
        self.bn_epsilon = bn_epsilon
        self.weight_decay = weight_decay
        self.depthwise_weight_decay = depthwise_weight_decay
        self.depthwise_stddev = depthwise_stddev
        self.pointwise_stddev = pointwise_stddev
        self.scope = scope
        self.sync_batch_norm = sync_batch_norm
        self.batch_norm_trainable = batch_norm_trainable
        self.quantization = quantize.resolve_quantization(quantization)

        bn = dict(bn_momentum=bn_momentum, bn_epsilon=bn_epsilon,
                  sync_batch_norm=sync_batch_norm, batch_norm_trainable=batch_norm_trainable,
                  quantization=self.quantization, dtype=self.dtype_policy)
        self.depthwise = ConvBN(
            None, kernel_size, strides=strides, dilation_rate=dilation_rate, depthwise=True,
            explicit_padding=explicit_padding, activation=activation,
            weight_decay=depthwise_weight_decay, kernel_stddev=depthwise_stddev,
            scope=scope + "_depthwise", name="depthwise", **bn)
        self.pointwise = ConvBN(
            filters, 1, activation=activation, weight_decay=weight_decay,
            kernel_stddev=pointwise_stddev, scope=scope + "_pointwise", name="pointwise", **bn)

    def build(self, input_shape):
        self.depthwise.build(input_shape)
        self.pointwise.build(self.depthwise.compute_output_shape(input_shape))

    def call(self, inputs, training=None):
        x = inputs
        if self.pre_activation == "relu6":
            x = tf.nn.relu6(x)
        elif self.pre_activation and training:
            x = tf.nn.relu(x)  # one ReluGrad in the backward pass (tf.maximum's costs more)
        elif self.pre_activation:
            # tf.maximum, not tf.nn.relu: grappler's remapper otherwise tries to fuse this
            # ReLU with the residual Add that feeds it (and whose output the next residual
            # also uses), fails, and then skips every fusion of the graph. Same values.
            x = tf.maximum(x, tf.zeros([], x.dtype))
        x = self.depthwise(x, training=training)
        return self.pointwise(x, training=training)

    def compute_output_shape(self, input_shape):
        return self.pointwise.compute_output_shape(
            self.depthwise.compute_output_shape(input_shape))

    def original_variables(self) -> dict:
        names = dict(self.depthwise.original_variables())
        names.update(self.pointwise.original_variables())
        return names

    def get_config(self):
        config = super().get_config()
        config.update(
            filters=self.filters, kernel_size=self.kernel_size, strides=self.strides,
            dilation_rate=self.dilation_rate, explicit_padding=self.explicit_padding,
            pre_activation=self.pre_activation, activation=self.activation,
            bn_momentum=self.bn_momentum, bn_epsilon=self.bn_epsilon,
            weight_decay=self.weight_decay, depthwise_weight_decay=self.depthwise_weight_decay,
            depthwise_stddev=self.depthwise_stddev, pointwise_stddev=self.pointwise_stddev,
            scope=self.scope, sync_batch_norm=self.sync_batch_norm,
            batch_norm_trainable=self.batch_norm_trainable, quantization=self.quantization)
        return config
