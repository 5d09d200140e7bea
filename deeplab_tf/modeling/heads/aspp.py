"""ASPP: atrous spatial pyramid pooling with the image-level branch (DeepLabv3, section 3.3).

Data flow::

    features (output_stride) --> [image_pooling, aspp0 (1x1), aspp1..N (3x3 atrous)]
        --> concat --> concat_projection (1x1, 256) --> dropout(0.1)

With ``aspp_with_squeeze_and_excitation`` (the MobileNetV3 recipe) the image-level branch is a
gate instead of a branch: its 1x1 convolution has a bias and no batch norm, then a sigmoid
(or with ``image_se_uses_qsigmoid`` the q-sigmoid ``relu6(x + 3) * 0.16667``), and it
multiplies the output of the concat (projection) elementwise. ``aspp_with_concat_projection=
False`` drops the projection and its dropout.

Variable scopes follow the original (``image_pooling``, ``aspp0``, ``aspp1_depthwise`` ...).
"""

from __future__ import annotations

import keras
import tensorflow as tf

from deeplab_tf.modeling.heads.common import layer_options
from deeplab_tf.modeling.layers import quantize
from deeplab_tf.modeling.layers.conv_bn import ConvBN
from deeplab_tf.modeling.layers.resize import resize_bilinear, scale_dimension
from deeplab_tf.modeling.layers.separable_conv_bn import SeparableConvBN


@keras.saving.register_keras_serializable(package="deeplab_tf")
class ImagePooling(keras.layers.Layer):
    """ASPP's image-level branch: pool, 1x1 conv + BN + ReLU, back to the feature size.

    Args:
        filters: int. Output channels.
        pool_size: (h, w) or None. None: global average pooling over the whole feature map
            (valid at any input size). Otherwise the original's average pooling with this
            kernel (the crop's feature size) and ``pool_stride``, VALID, followed by an
            align-corners resize back to the feature size.
        pool_stride: (h, w). Stride of that pooling.
        scope: str. Variable scope of the conv ("image_pooling").
        conv_kwargs: dict. Passed to the inner ``ConvBN`` (batch norm, weight decay options;
            ``use_batch_norm=False`` and a gate ``activation`` for the squeeze-and-excitation
            form).
        quantization: None, "per_channel", "per_tensor" or "inherit": the inner ``ConvBN``'s.
            Quantized, inference brings the pooled features back to the feature size by
            the (align-corners) bilinear resize in both pooling modes, which equals the
            broadcast of global pooling exactly and is an integer TFLite (and Edge TPU)
            operation, where a broadcast is not.
    """

    def __init__(self, filters=256, pool_size=None, pool_stride=(1, 1), scope="image_pooling",
                 conv_kwargs=None, quantization=quantize.INHERIT, **kwargs):
        kwargs.setdefault("name", scope)
        super().__init__(**kwargs)
        self.filters = filters
        self.pool_size = tuple(pool_size) if pool_size else None
        self.pool_stride = tuple(pool_stride)
        self.scope = scope
        self.conv_kwargs = dict(conv_kwargs or {})
        self.quantization = quantize.resolve_quantization(quantization)
        self.conv = ConvBN(filters, 1, scope=scope, name="conv", dtype=self.dtype_policy,
                           quantization=self.quantization, **self.conv_kwargs)

    def build(self, input_shape):
        self.conv.build((input_shape[0], 1, 1, input_shape[-1]))

    def call(self, features, training=None, pool_size=None):
        """``pool_size`` (h, w) replaces the layer's own for this call (the image pyramid's
        scaled crops, ``modeling.pyramid``)."""
        shape = tf.shape(features)
        pool_size = self.pool_size if pool_size is None else tuple(pool_size)
        if pool_size is None:
            pooled = tf.reduce_mean(features, axis=[1, 2], keepdims=True)
            pooled = self.conv(pooled, training=training)
            if self.quantization and not training:
                return resize_bilinear(pooled, [shape[1], shape[2]])
            return tf.broadcast_to(pooled, tf.concat([shape[:3], [self.filters]], axis=0))
        pooled = tf.nn.avg_pool2d(features, pool_size, self.pool_stride, "VALID")
        pooled = self.conv(pooled, training=training)
        return resize_bilinear(pooled, [shape[1], shape[2]])

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:3]) + (self.filters,)

    def get_config(self):
        config = super().get_config()
        config.update(filters=self.filters, pool_size=self.pool_size,
                      pool_stride=self.pool_stride, scope=self.scope,
                      conv_kwargs=self.conv_kwargs, quantization=self.quantization)
        return config


def image_pooling_size(config, scale: float = 1.0):
    """The image pooling kernel (h, w): the feature size of ``image_pooling_crop_size``
    scaled by ``scale`` (as the original's image pyramid scales it); None for global pooling."""
    if config.image_pooling_crop_size is None:
        return None
    return tuple(scale_dimension(scale_dimension(d, scale), 1.0 / config.output_stride)
                 for d in config.image_pooling_crop_size)


def _image_pooling(features, config, common):
    """The image-level branch (a branch, or the squeeze-and-excitation gate)."""
    # The original's image pooling keeps ReLU with use_bounded_activation.
    conv_kwargs = dict(common, activation="relu")
    if config.aspp_with_squeeze_and_excitation:
        conv_kwargs.update(use_batch_norm=False, activation=(
            "q_sigmoid" if config.image_se_uses_qsigmoid else "sigmoid"))
    return ImagePooling(config.aspp_convs_filters, image_pooling_size(config),
                        config.image_pooling_stride, conv_kwargs=conv_kwargs)(features)


def aspp(features, config):
    """Atrous spatial pyramid pooling with the image-level branch (DeepLabv3, section 3.3)."""
    common = layer_options(config)
    depth = config.aspp_convs_filters
    branches, gate = [], None
    if config.add_image_level_feature:
        image_feature = _image_pooling(features, config, common)
        if config.aspp_with_squeeze_and_excitation:
            gate = image_feature
        else:
            branches.append(image_feature)
    branches.append(ConvBN(depth, 1, scope="aspp0", **common)(features))
    for i, rate in enumerate(config.atrous_rates, start=1):
        if config.aspp_with_separable_conv:
            branch = SeparableConvBN(depth, 3, dilation_rate=rate, scope=f"aspp{i}", **common)
        else:
            branch = ConvBN(depth, 3, dilation_rate=rate, scope=f"aspp{i}", **common)
        branches.append(branch(features))
    x = keras.layers.Concatenate(axis=-1, name="aspp_concat")(branches)
    if config.aspp_with_concat_projection:
        x = ConvBN(depth, 1, scope="concat_projection", **common)(x)
        x = keras.layers.Dropout(0.1, name="concat_projection_dropout")(x)
    if gate is not None:
        x = keras.layers.Multiply(name="aspp_image_gate")([x, gate])
    return x
