"""MobileNetV3 (large and small, segmentation variants) and EdgeTPU-MobileNet backbones.

Searching for MobileNetV3 (Howard et al., 2019), as DeepLab's feature extractor builds them
from slim's ``V3_LARGE``, ``V3_SMALL`` and ``V3_EDGETPU`` (``model_variant``
``mobilenet_v3_large_seg``, ``mobilenet_v3_small_seg``, ``mobilenet_edgetpu``):

* the ``_seg`` variants stop before the classifier (pooling and the last 1x1 convolution are
  not built: ``layer_17`` / ``layer_13``) and halve the stride-32 stage: its three blocks
  and the final 1x1 convolution ``Conv_1`` have half the filters, with expansions of
  336/480/480 (large) and 144/288/288 (small) channels;
* EdgeTPU-MobileNet is ``V3_EDGETPU`` unchanged up to ``layer_24`` (``Conv_1``, 1280
  channels): its early blocks are *fused* (a kxk expansion convolution at the block's stride,
  no depthwise), it has no squeeze-and-excitation and uses ReLU throughout.

Each spec entry ``i`` is endpoint ``layer_{i+1}``: a plain convolution (scopes ``Conv``,
``Conv_1``) or an expanded conv (``expanded_conv``, ``expanded_conv_1``, ...; see
``mobilenet_blocks.expanded_conv``), with hard-swish ``x * relu6(x + 3) / 6`` or ReLU and
squeeze-and-excitation where the table says. Every convolution pads 'SAME' and has batch
norm (decay 0.997, epsilon 1e-3; the SE convolutions have biases instead).

Channels: ``make_divisible(filters * depth_multiplier, 8, 8)`` for every output and
``make_divisible(input channels * expansion factor, 8)`` for the expansions, the original's
rounding for these families whatever ``ModelConfig.divisible_by`` says (the original
discards ``--divisible_by`` here, and so does this module). Output stride as MobileNetV2's
``mobilenet_base``: strides accumulate until ``output_stride``, then stride 1 and a growing
depthwise rate (``strides.dilated_units(..., check=False)``); a block whose stride is removed
may gain its residual (small_seg's ``expanded_conv_8`` at output stride 16 or 8).

Example:

>>> import keras
>>> from deeplab_tf import ModelConfig
>>> config = ModelConfig(model_variant="mobilenet_v3_small_seg", output_stride=32)
>>> features, endpoints = build(keras.Input((65, 65, 3)), config, "mobilenet_v3_small_seg")
>>> features.shape, endpoints["layer_4/depthwise_output"].shape
((None, 3, 3, 288), (None, 9, 9, 88))
"""

from __future__ import annotations

import dataclasses
from typing import Optional

from deeplab_tf.modeling.backbones.mobilenet_blocks import (conv_options, expanded_conv,
                                                            make_divisible)
from deeplab_tf.modeling.backbones.strides import dilated_units
from deeplab_tf.modeling.layers.conv_bn import ConvBN


@dataclasses.dataclass(frozen=True)
class Unit:
    """One entry of a network's spec.

    Attributes:
        kernel: int. Kernel size (an expanded conv's depthwise, a fused block's expansion).
        stride: int. Nominal stride.
        outputs: int. Output channels at depth multiplier 1.
        factor: float or None. Expansion factor of an expanded conv; None for a plain
            convolution + batch norm.
        activation: str. ``ConvBN`` activation ("relu" or "hard_swish").
        squeeze_excite: bool. Squeeze-and-excitation after the depthwise.
        fused: bool. EdgeTPU's fused block (kxk expansion at the stride, no depthwise).
        residual: bool. Whether the block may add its input.
    """

    kernel: int
    stride: int
    outputs: int
    factor: Optional[float] = None
    activation: str = "relu"
    squeeze_excite: bool = False
    fused: bool = False
    residual: bool = True


_HS = "hard_swish"


def _conv(kernel, stride, outputs, activation="relu"):
    return Unit(kernel, stride, outputs, activation=activation)


def _block(kernel, stride, factor, outputs, activation="relu", se=False, **kwargs):
    return Unit(kernel, stride, outputs, factor, activation, se, **kwargs)


# V3_LARGE up to layer_17 with FE's segmentation changes (entries 13-16 halved; expansion
# factors 336/112, 480/80, 480/80).
LARGE_SEG = (
    _conv(3, 2, 16, _HS),
    _block(3, 1, 1, 16), _block(3, 2, 4, 24), _block(3, 1, 3, 24),
    _block(5, 2, 3, 40, se=True), _block(5, 1, 3, 40, se=True), _block(5, 1, 3, 40, se=True),
    _block(3, 2, 6, 80, _HS), _block(3, 1, 2.5, 80, _HS),
    _block(3, 1, 184 / 80, 80, _HS), _block(3, 1, 184 / 80, 80, _HS),
    _block(3, 1, 6, 112, _HS, se=True), _block(3, 1, 6, 112, _HS, se=True),
    _block(5, 2, 336 / 112, 80, _HS, se=True), _block(5, 1, 480 / 80, 80, _HS, se=True),
    _block(5, 1, 480 / 80, 80, _HS, se=True),
    _conv(1, 1, 480, _HS),
)
# V3_SMALL up to layer_13 with FE's segmentation changes (entries 9-12 halved; expansion
# factors 144/48, 288/48, 288/48).
SMALL_SEG = (
    _conv(3, 2, 16, _HS),
    _block(3, 2, 1, 16, se=True), _block(3, 2, 72 / 16, 24), _block(3, 1, 88 / 24, 24),
    _block(5, 2, 4, 40, _HS, se=True), _block(5, 1, 6, 40, _HS, se=True),
    _block(5, 1, 6, 40, _HS, se=True), _block(5, 1, 3, 48, _HS, se=True),
    _block(5, 1, 3, 48, _HS, se=True), _block(5, 2, 144 / 48, 48, _HS, se=True),
    _block(5, 1, 288 / 48, 48, _HS, se=True), _block(5, 1, 288 / 48, 48, _HS, se=True),
    _conv(1, 1, 288, _HS),
)
# V3_EDGETPU, all of it (layer_24): ReLU, no squeeze-and-excitation.
EDGETPU = (
    (_conv(3, 2, 32), _block(3, 1, 1, 16, fused=True), _block(3, 2, 8, 32, fused=True))
    + (_block(3, 1, 4, 32, fused=True),) * 3
    + (_block(3, 2, 8, 48, fused=True),) + (_block(3, 1, 4, 48, fused=True),) * 3
    + (_block(3, 2, 8, 96),) + (_block(3, 1, 4, 96),) * 3
    + (_block(3, 1, 8, 96, residual=False),) + (_block(3, 1, 4, 96),) * 3
    + (_block(5, 2, 8, 160),) + (_block(5, 1, 4, 160),) * 3
    + (_block(3, 1, 8, 192), _conv(1, 1, 1280))
)
# model_variant -> (variable scope, spec).
VARIANTS = {
    "mobilenet_v3_large_seg": ("MobilenetV3", LARGE_SEG),
    "mobilenet_v3_small_seg": ("MobilenetV3", SMALL_SEG),
    "mobilenet_edgetpu": ("MobilenetEdgeTPU", EDGETPU),
}


def build(images, config, variant):
    """Adds the variant's network to the graph.

    Args:
        images: Keras tensor [batch, height, width, 3], already normalised to [-1, 1].
        config: ``ModelConfig``. Uses output_stride, depth_multiplier, weight_decay and the
            batch norm options (not divisible_by: see the module docstring).
        variant: str. A key of ``VARIANTS``.

    Returns:
        (features, endpoints): the last layer's output at ``config.output_stride``, and the
        endpoints ``layer_N``, ``layer_N/output``, ``layer_N/expansion_output`` and
        ``layer_N/depthwise_output`` as the original names them (without the scope).
    """
    if variant not in VARIANTS:
        raise ValueError(f"Unknown MobileNetV3 variant. Received: variant={variant!r}")
    scope, units = VARIANTS[variant]
    common = conv_options(config)
    schedule = dilated_units([unit.stride for unit in units], config.output_stride,
                             check=False)
    endpoints, x, convs, blocks = {}, images, 0, 0
    for index, (unit, (stride, rate)) in enumerate(zip(units, schedule)):
        layer = f"layer_{index + 1}"
        outputs = make_divisible(unit.outputs * config.depth_multiplier, 8, 8)
        if unit.factor is None:
            x = ConvBN(outputs, unit.kernel, strides=stride,
                       dilation_rate=rate if unit.kernel > 1 else 1,
                       activation=unit.activation, weight_decay=config.weight_decay,
                       scope=f"{scope}/Conv" + (f"_{convs}" if convs else ""), **common)(x)
            convs += 1
        else:
            expansion = make_divisible(x.shape[-1] * unit.factor, 8)
            squeeze = None
            if unit.squeeze_excite:  # of the depthwise's channels
                squeeze = make_divisible(max(expansion, x.shape[-1]) / 4, 8)
            if unit.fused:
                # slim fixes a fused block's stride when the spec is written and gives its
                # 1x1-kernel op no rate: it never dilates (only reachable below stride 8).
                stride, rate = unit.stride, 1
            x = expanded_conv(x, outputs, expansion, stride, rate,
                              f"{scope}/expanded_conv" + (f"_{blocks}" if blocks else ""),
                              layer, endpoints, common, config.weight_decay,
                              kernel_size=unit.kernel, activation=unit.activation,
                              squeeze_channels=squeeze, fused=unit.fused,
                              residual=unit.residual)
            blocks += 1
        endpoints[layer] = x
    return x, endpoints
