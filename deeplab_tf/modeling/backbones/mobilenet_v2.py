"""MobileNetV2 up to ``layer_18``, as DeepLab's feature extractor builds it.

MobileNetV2: Inverted Residuals and Linear Bottlenecks (Sandler et al., 2018); slim's
``V2_DEF`` without its final 1x1x1280 convolution. Data flow::

    layer_1:  Conv (3x3/2, 32, ReLU6)
    layer_2:  expanded_conv      (expansion factor 1, so no 'expand' conv; 16)
    layer_3.. layer_18: expanded_conv_1 .. expanded_conv_16 (expansion factor 6):
              24 (s2), 24, 32 (s2), 32, 32, 64 (s2), 64, 64, 64, 96, 96, 96,
              160 (s2), 160, 160, 320

Expanded conv (inverted residual, ``mobilenet_blocks.expanded_conv``): ``expand`` (1x1,
ReLU6; only when the expansion is wider than the input) -> ``depthwise`` (3x3, stride, rate,
ReLU6) -> ``project`` (1x1, linear), plus the input when the layer's stride is 1 and its input
and output depths match. Every convolution pads 'SAME' and is followed by batch norm.

Channels are ``_make_divisible(depth * depth_multiplier, divisible_by, min_depth)`` with the
original's defaults (divisible_by 8 and min_depth 8 for depth_multiplier 1.0, else 1 and 1);
expansion sizes are ``_make_divisible(input_depth * factor, 8)`` whatever the multiplier
(``expand_input_by_factor``'s own default), except layer_2's (factor 1, divisible by 1).

As slim's ``mobilenet_base``: strides accumulate until ``output_stride`` is reached; after
that layers run at stride 1 and the atrous rate (applied to the depthwise convolutions)
grows by the stride they skip. Endpoints, keyed relative to the network scope as the
original collects them: ``layer_N`` (the layer's output), and for expanded convs
``layer_N/output``, ``layer_N/depthwise_output`` (after the depthwise conv's BN + ReLU6) and
``layer_N/expansion_output`` (where there is an expansion).

Example:

>>> import keras
>>> from deeplab_tf import ModelConfig
>>> config = ModelConfig(model_variant="mobilenet_v2", output_stride=16)
>>> images = keras.Input((65, 65, 3))
>>> features, endpoints = build(images, config, "mobilenet_v2")
>>> features.shape, endpoints["layer_4/depthwise_output"].shape
((None, 5, 5, 320), (None, 17, 17, 144))
"""

from __future__ import annotations

from deeplab_tf.modeling.backbones.mobilenet_blocks import (  # noqa: F401 (BATCH_NORM)
    BATCH_NORM, conv_options, expanded_conv, make_divisible)
from deeplab_tf.modeling.backbones.strides import dilated_units
from deeplab_tf.modeling.layers.conv_bn import ConvBN

SCOPE = "MobilenetV2"

# layer_1: (kernel size, stride, depth) of the first convolution, scope "Conv".
FIRST_CONV = (3, 2, 32)
# layer_2 .. layer_18: (stride, depth, expansion factor, expansion divisible_by).
EXPANDED_CONVS = (
    (1, 16, 1, 1),
    (2, 24, 6, 8), (1, 24, 6, 8),
    (2, 32, 6, 8), (1, 32, 6, 8), (1, 32, 6, 8),
    (2, 64, 6, 8), (1, 64, 6, 8), (1, 64, 6, 8), (1, 64, 6, 8),
    (1, 96, 6, 8), (1, 96, 6, 8), (1, 96, 6, 8),
    (2, 160, 6, 8), (1, 160, 6, 8), (1, 160, 6, 8),
    (1, 320, 6, 8),
)

def build(images, config, variant):
    """Adds MobileNetV2 (up to layer_18) to the graph.

    Args:
        images: Keras tensor [batch, height, width, 3], already normalised to [-1, 1].
        config: ``ModelConfig``. Uses output_stride, depth_multiplier, divisible_by,
            weight_decay and the batch norm options.
        variant: str. "mobilenet_v2".

    Returns:
        (features, endpoints): the layer_18 output (320 channels at depth multiplier 1.0)
        at ``config.output_stride``, and endpoints keyed by the original's names relative to
        the network scope.
    """
    if variant != "mobilenet_v2":
        raise ValueError(f"Unknown MobileNet variant. Received: variant={variant!r}")
    multiplier = config.depth_multiplier
    divisible_by = config.divisible_by
    if divisible_by is None:
        divisible_by = 8 if multiplier == 1.0 else 1
    min_depth = 8 if multiplier == 1.0 else 1

    def depth(d):
        return make_divisible(d * multiplier, divisible_by, min_depth)

    common = conv_options(config)
    endpoints = {}
    # mobilenet_base: once output_stride is reached, stride 1 and a growing rate (unchecked).
    schedule = iter(dilated_units([FIRST_CONV[1]] + [conv[0] for conv in EXPANDED_CONVS],
                                  config.output_stride, check=False))

    kernel_size, _, filters = FIRST_CONV
    stride, layer_rate = next(schedule)
    x = ConvBN(depth(filters), kernel_size, strides=stride, dilation_rate=layer_rate,
               activation="relu6", weight_decay=config.weight_decay, scope=f"{SCOPE}/Conv",
               **common)(images)
    endpoints["layer_1"] = x

    for index, (_, filters, factor, factor_divisible_by) in enumerate(EXPANDED_CONVS):
        stride, layer_rate = next(schedule)
        scope = f"{SCOPE}/expanded_conv" + (f"_{index}" if index else "")
        layer = f"layer_{index + 2}"
        x = expanded_conv(x, depth(filters), make_divisible(x.shape[-1] * factor,
                                                            factor_divisible_by),
                          stride, layer_rate, scope, layer, endpoints, common,
                          config.weight_decay)
        endpoints[layer] = x
    return x, endpoints
