"""``FusedSeparableConvBN``: NAS's separable convolution (one slim ``separable_conv2d``) + BN.

Unlike ``SeparableConvBN`` (DeepLab's split separable convolution, batch norm after the
depthwise and after the pointwise part), the NAS cells run slim's fused
``separable_conv2d``: depthwise -> pointwise 1x1 with nothing between, no bias, then one
batch norm in a scope of its own. Variables, as the original names them::

    <scope>/depthwise_weights   [k, k, in, 1]
    <scope>/pointwise_weights   [1, 1, in, filters]
    <bn_scope>/{gamma, beta, moving_mean, moving_variance}   [filters]

Strided layers pad as the original's ``separable_conv2d_same``: (k - 1) / 2 on each side,
then VALID (so the output is ceil(n / 2)); stride 1 is 'SAME'.

Example:

>>> layer = FusedSeparableConvBN(20, 5, strides=2, scope="cell_0/comb_iter_0/left/separable_5x5_1",
...                              bn_scope="cell_0/comb_iter_0/left/bn_sep_5x5_1")
>>> layer(np.zeros((1, 33, 33, 20), "float32")).shape
TensorShape([1, 17, 17, 20])
"""

from __future__ import annotations

import keras
import tensorflow as tf

from deeplab_tf.modeling.layers.batch_norm import BatchNorm
from deeplab_tf.modeling.layers.conv_bn import fixed_padding_amounts, scope_to_name
from deeplab_tf.modeling.layers.original_layer import OriginalLayer, batch_norm_scale_and_bias

# nas_arg_scope's initializer: variance scaling, factor 1/3, FAN_IN, uniform.
NAS_INITIALIZER = dict(class_name="VarianceScaling",
                       config=dict(scale=1.0 / 3.0, mode="fan_in", distribution="uniform"))


@keras.saving.register_keras_serializable(package="deeplab_tf")
class FusedSeparableConvBN(OriginalLayer):
    """Depthwise -> pointwise 1x1 (no bias, nothing between) -> batch norm, as NAS's
    ``separable_conv2d`` + ``batch_norm``.

    Args:
        filters: int. Pointwise output channels.
        kernel_size: int. Depthwise kernel size.
        strides: int. Depthwise stride.
        bn_momentum, bn_epsilon: float. Batch norm decay and epsilon.
        weight_decay: float. slim L2 of both kernels.
        scope: str. The original's scope of the two kernels.
        bn_scope: str. The original's scope of the batch norm.
        sync_batch_norm, batch_norm_trainable: bool. See ``ConvBN``.
    """

    def __init__(self, filters, kernel_size=3, strides=1, bn_momentum=0.9997, bn_epsilon=1e-3,
                 weight_decay=0.0, scope="separable", bn_scope="bn_sep", sync_batch_norm=False,
                 batch_norm_trainable=True, **kwargs):
        kwargs.setdefault("name", scope_to_name(scope))
        super().__init__(**kwargs)
        self.filters = filters
        self.kernel_size = kernel_size
        self.strides = strides
        self.bn_momentum = bn_momentum
        self.bn_epsilon = bn_epsilon
        self.weight_decay = weight_decay
        self.scope = scope
        self.bn_scope = bn_scope
        self.sync_batch_norm = sync_batch_norm
        self.batch_norm_trainable = batch_norm_trainable

        self._pad = strides > 1 and kernel_size > 1
        regularizer = keras.regularizers.L2(weight_decay / 2.0) if weight_decay else None
        common = dict(use_bias=False, dtype=self.dtype_policy)
        self.depthwise = keras.layers.DepthwiseConv2D(
            kernel_size, strides=strides, padding="valid" if self._pad else "same",
            depthwise_initializer=keras.initializers.get(NAS_INITIALIZER),
            depthwise_regularizer=regularizer, name="depthwise", **common)
        self.pointwise = keras.layers.Conv2D(
            filters, 1, kernel_initializer=keras.initializers.get(NAS_INITIALIZER),
            kernel_regularizer=regularizer, name="pointwise", **common)
        self.bn = BatchNorm(momentum=bn_momentum, epsilon=bn_epsilon, synchronized=sync_batch_norm,
                            always_inference=not batch_norm_trainable, name="bn",
                            dtype=self.dtype_policy)

    def _padded_shape(self, input_shape):
        shape = list(input_shape)
        if self._pad:
            begin, end = fixed_padding_amounts(self.kernel_size)
            shape[1:3] = [None if n is None else n + begin + end for n in shape[1:3]]
        return tuple(shape)

    def build(self, input_shape):
        shape = self._padded_shape(input_shape)
        self.depthwise.build(shape)
        shape = self.depthwise.compute_output_shape(shape)
        self.pointwise.build(shape)
        self.bn.build(self.pointwise.compute_output_shape(shape))

    def call(self, inputs, training=None):
        x = inputs
        if self._pad:
            begin, end = fixed_padding_amounts(self.kernel_size)
            x = tf.pad(x, [[0, 0], [begin, end], [begin, end], [0, 0]])
        if self._folded is not None:
            depthwise, pointwise, bias = (tf.cast(t, x.dtype) for t in self._folded)
            x = tf.nn.depthwise_conv2d(x, depthwise, [1, self.strides, self.strides, 1],
                                       "VALID" if self._pad else "SAME")
            return tf.nn.bias_add(tf.nn.conv2d(x, pointwise, 1, "VALID"), bias)
        x = self.depthwise(x)
        return self.bn(self.pointwise(x), training=training)

    def compute_output_shape(self, input_shape):
        shape = self.depthwise.compute_output_shape(self._padded_shape(input_shape))
        return self.pointwise.compute_output_shape(shape)

    def fold_batch_norm(self):
        """Folds the batch norm into the pointwise convolution (see ``ConvBN``); both
        kernels become constants."""
        scale, bias = batch_norm_scale_and_bias(self.bn)
        depthwise = tf.convert_to_tensor(self.depthwise.kernel, tf.float32)
        pointwise = tf.convert_to_tensor(self.pointwise.kernel, tf.float32) * scale
        # Folded in float32, stored in the compute dtype (bfloat16 under mixed_bfloat16).
        self._folded = tuple(tf.cast(tf.constant(t.numpy()), self.compute_dtype)
                             for t in (depthwise, pointwise, bias))

    def original_variables(self) -> dict:
        names = {f"{self.scope}/depthwise_weights": self.depthwise.kernel,
                 f"{self.scope}/pointwise_weights": self.pointwise.kernel}
        for attr in ("gamma", "beta", "moving_mean", "moving_variance"):
            names[f"{self.bn_scope}/{attr}"] = getattr(self.bn, attr)
        return names

    def get_config(self):
        config = super().get_config()
        config.update(
            filters=self.filters, kernel_size=self.kernel_size, strides=self.strides,
            bn_momentum=self.bn_momentum, bn_epsilon=self.bn_epsilon,
            weight_decay=self.weight_decay, scope=self.scope, bn_scope=self.bn_scope,
            sync_batch_norm=self.sync_batch_norm,
            batch_norm_trainable=self.batch_norm_trainable)
        return config
