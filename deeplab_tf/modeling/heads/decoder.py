"""The DeepLabv3+ decoder (paper section 3.1), one stage per decoder output stride.

Data flow, for each stride ``s`` of ``decoder_output_stride``::

    endpoint tap at s --> feature_projection0 (1x1, 48)
    concat(resize(features to the tap's size), projection) --> decoder_conv0, decoder_conv1

Variable scopes follow the original (``decoder/feature_projection0``,
``decoder/decoder_conv0_depthwise`` ...).
"""

from __future__ import annotations

import keras

from deeplab_tf.modeling.heads.common import layer_options
from deeplab_tf.modeling.layers.conv_bn import ConvBN
from deeplab_tf.modeling.layers.resize import ResizeLike
from deeplab_tf.modeling.layers.separable_conv_bn import SeparableConvBN

DECODER_PROJECTION_FILTERS = 48


def decoder(features, endpoints, config, decoder_taps):
    """The DeepLabv3+ decoder (paper section 3.1), one stage per decoder output stride.

    The original resizes both the encoder features and the projected low-level features to
    ``scale_dimension(input_size, 1 / stride)``. Every stride-2 operation of the backbones
    produces ``ceil(n / 2)`` outputs (fixed padding and 'SAME' alike), so the tap already has
    exactly that size and its align-corners resize is the identity: only the encoder features
    are resized here, to the tap's size.
    """
    common = layer_options(config)
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
