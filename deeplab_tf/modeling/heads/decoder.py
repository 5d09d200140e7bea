"""The DeepLabv3+ decoder (paper section 3.1), one stage per decoder output stride.

Data flow, for each stride ``s`` of ``decoder_output_stride``::

    endpoint tap at s --> feature_projection0 (1x1, 48)
    concat(resize(features to the tap's size), projection) --> decoder_conv0, decoder_conv1

With ``decoder_use_sum_merge`` a stage is ``conv(resize(features)) + projection`` instead
(MobileNetV3's recipe, with ``decoder_output_is_logits``: two linear 1x1 convolutions with
biases whose sum is the logits).

Variable scopes follow the original (``decoder/feature_projection0``,
``decoder/decoder_conv0_depthwise``, ``decoder/decoder_split_sep_conv0_depthwise`` ...).
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

    ``decoder_use_sum_merge``: the projection has ``decoder_filters`` channels and the stage
    is ``conv(resized features) + projection`` (one split separable 3x3, scope
    ``decoder_split_sep_conv0``, or a plain conv, scope ``decoder_conv0``).
    ``decoder_output_is_logits``: every decoder convolution is linear with a bias (no batch
    norm), plain (not separable), 1x1 under sum merge, and computed in float32 as the logits
    layer is; the result is the logits.
    """
    common = layer_options(config)
    output_is_logits = config.decoder_output_is_logits
    if output_is_logits:
        common = dict(common, use_batch_norm=False, activation=None, dtype="float32")
    separable = config.decoder_use_separable_conv and not output_is_logits
    projected = (config.decoder_filters if config.decoder_use_sum_merge
                 else DECODER_PROJECTION_FILTERS)
    x = features
    for stage, stride in enumerate(config.decoder_output_stride):
        suffix = f"_{stage}" if stage else ""
        low_level = ConvBN(projected, 1, scope=f"decoder/feature_projection0{suffix}",
                           **common)(endpoints[decoder_taps[stride]])
        x = ResizeLike(name=f"decoder.resize{suffix}")([x, low_level])
        if config.decoder_use_sum_merge:
            if separable:
                conv = SeparableConvBN(config.decoder_filters, 3,
                                       scope=f"decoder/decoder_split_sep_conv0{suffix}",
                                       **common)
            else:
                conv = ConvBN(config.decoder_filters, 1 if output_is_logits else 3,
                              scope=f"decoder/decoder_conv0{suffix}", **common)
            x = keras.layers.Add(name=f"decoder.sum{suffix}",
                                 dtype=common.get("dtype"))([conv(x), low_level])
            continue
        x = keras.layers.Concatenate(axis=-1, name=f"decoder.concat{suffix}")([x, low_level])
        if separable:
            for k in range(2):
                x = SeparableConvBN(config.decoder_filters, 3,
                                    scope=f"decoder/decoder_conv{k}{suffix}", **common)(x)
        else:
            repeat_scope = f"decoder_conv0{suffix}"
            for k in range(2):
                x = ConvBN(config.decoder_filters, 3,
                           scope=f"decoder/{repeat_scope}/{repeat_scope}_{k + 1}", **common)(x)
    return x
