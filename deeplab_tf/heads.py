"""DeepLab heads: ASPP with image pooling, the DeepLabv3+ decoder, and the logits.

Data flow (``build_model`` wires these)::

    features (output_stride) --> ASPP: [image_pooling, aspp0 (1x1), aspp1..N (3x3 atrous)]
        --> concat --> concat_projection (1x1, 256) --> dropout(0.1)
    [decoder, for each decoder_output_stride s]:
        endpoint tap at s --> feature_projection0 (1x1, 48)
        concat(resize(features to the tap's size), projection) --> decoder_conv0, decoder_conv1
    --> logits/semantic (1x1 with bias): logits at the model's native output stride.

Variable scopes follow the original (``aspp1_depthwise``, ``decoder/feature_projection0``,
``logits/semantic`` ...). Batch norm in the heads uses decay 0.9997 and epsilon 1e-5, as the
original's ``extract_features`` and ``refine_by_decoder``.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from deeplab_tf.layers.conv_bn import ConvBN
from deeplab_tf.layers.resize import ResizeLike, scale_dimension, resize_bilinear
from deeplab_tf.layers.separable_conv_bn import SeparableConvBN

HEAD_BATCH_NORM = dict(bn_momentum=0.9997, bn_epsilon=1e-5)
DECODER_PROJECTION_FILTERS = 48
LOGITS_STDDEV = 0.01


def _common(config):
    return dict(weight_decay=config.weight_decay, sync_batch_norm=config.sync_batch_norm,
                batch_norm_trainable=config.fine_tune_batch_norm, **HEAD_BATCH_NORM)


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
        **conv_kwargs: passed to the inner ``ConvBN`` (batch norm, weight decay options).
    """

    def __init__(self, filters=256, pool_size=None, pool_stride=(1, 1), scope="image_pooling",
                 conv_kwargs=None, **kwargs):
        kwargs.setdefault("name", scope)
        super().__init__(**kwargs)
        self.filters = filters
        self.pool_size = tuple(pool_size) if pool_size else None
        self.pool_stride = tuple(pool_stride)
        self.scope = scope
        self.conv_kwargs = dict(conv_kwargs or {})
        self.conv = ConvBN(filters, 1, scope=scope, name="conv", dtype=self.dtype_policy,
                           **self.conv_kwargs)

    def build(self, input_shape):
        self.conv.build((input_shape[0], 1, 1, input_shape[-1]))

    def call(self, features, training=None):
        shape = tf.shape(features)
        if self.pool_size is None:
            pooled = tf.reduce_mean(features, axis=[1, 2], keepdims=True)
            pooled = self.conv(pooled, training=training)
            return tf.broadcast_to(pooled, tf.concat([shape[:3], [self.filters]], axis=0))
        pooled = tf.nn.avg_pool2d(features, self.pool_size, self.pool_stride, "VALID")
        pooled = self.conv(pooled, training=training)
        return resize_bilinear(pooled, [shape[1], shape[2]])

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:3]) + (self.filters,)

    def get_config(self):
        config = super().get_config()
        config.update(filters=self.filters, pool_size=self.pool_size,
                      pool_stride=self.pool_stride, scope=self.scope,
                      conv_kwargs=self.conv_kwargs)
        return config


def aspp(features, config):
    """Atrous spatial pyramid pooling with the image-level branch (DeepLabv3, section 3.3)."""
    common = _common(config)
    depth = config.aspp_convs_filters
    branches = []
    if config.add_image_level_feature:
        pool_size = None
        if config.image_pooling_crop_size is not None:
            pool_size = tuple(scale_dimension(d, 1.0 / config.output_stride)
                              for d in config.image_pooling_crop_size)
        branches.append(ImagePooling(depth, pool_size, config.image_pooling_stride,
                                     conv_kwargs=common)(features))
    branches.append(ConvBN(depth, 1, scope="aspp0", **common)(features))
    for i, rate in enumerate(config.atrous_rates, start=1):
        if config.aspp_with_separable_conv:
            branch = SeparableConvBN(depth, 3, dilation_rate=rate, scope=f"aspp{i}", **common)
        else:
            branch = ConvBN(depth, 3, dilation_rate=rate, scope=f"aspp{i}", **common)
        branches.append(branch(features))
    x = keras.layers.Concatenate(axis=-1, name="aspp_concat")(branches)
    x = ConvBN(depth, 1, scope="concat_projection", **common)(x)
    return keras.layers.Dropout(0.1, name="concat_projection_dropout")(x)


def decoder(features, endpoints, config, decoder_taps):
    """The DeepLabv3+ decoder (paper section 3.1), one stage per decoder output stride.

    The original resizes both the encoder features and the projected low-level features to
    ``scale_dimension(input_size, 1 / stride)``. Every stride-2 operation of the backbones
    produces ``ceil(n / 2)`` outputs (fixed padding and 'SAME' alike), so the tap already has
    exactly that size and its align-corners resize is the identity: only the encoder features
    are resized here, to the tap's size.
    """
    common = _common(config)
    x = features
    for stage, stride in enumerate(config.decoder_output_stride):
        suffix = f"_{stage}" if stage else ""
        low_level = ConvBN(DECODER_PROJECTION_FILTERS, 1,
                           scope=f"decoder/feature_projection0{suffix}",
                           **common)(endpoints[decoder_taps[stride]])
        x = ResizeLike(name=f"decoder.resize{suffix}")([x, low_level])
        x = keras.layers.Concatenate(axis=-1, name=f"decoder.concat{suffix}")([x, low_level])
        if config.decoder_use_separable_conv:
            for k in range(2):
                x = SeparableConvBN(config.decoder_filters, 3,
                                    scope=f"decoder/decoder_conv{k}{suffix}", **common)(x)
        else:
            repeat_scope = f"decoder_conv0{suffix}"
            for k in range(2):
                x = ConvBN(config.decoder_filters, 3,
                           scope=f"decoder/{repeat_scope}/{repeat_scope}_{k + 1}", **common)(x)
    return x


def logits(features, config):
    """1x1 convolution with bias to ``num_classes`` (scope ``logits/semantic``).

    Always computed in float32, also under a mixed-precision policy: logits rounded to
    bfloat16 (8 significant bits) would flip the argmax wherever two classes are close, and
    this convolution costs under 0.2 % of the model.
    """
    return ConvBN(config.num_classes, 1, use_batch_norm=False, activation=None,
                  weight_decay=config.weight_decay, kernel_stddev=LOGITS_STDDEV,
                  scope="logits/semantic", dtype="float32")(features)
