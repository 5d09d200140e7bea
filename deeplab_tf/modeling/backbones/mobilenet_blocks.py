"""The MobileNet building blocks shared by MobileNetV2, MobileNetV3 and EdgeTPU-MobileNet.

slim's ``conv_blocks.expanded_conv`` (the inverted residual) and ``squeeze_excite``, and the
channel rounding ``make_divisible``. Every convolution is a ``ConvBN`` with 'SAME' padding
(the caller's ``common`` options), carrying the original's scope. Data flow of a block::

    input -> [expand: 1x1 conv (fused: kxk conv at the block's stride) -> BN -> act]
          -> [depthwise: kxk, stride, rate -> BN -> act]        (none in a fused block)
          -> [squeeze_excite: mean over H, W -> 1x1 + bias, ReLU -> 1x1 + bias, q-sigmoid
              -> times the features]
          -> project: 1x1 conv -> BN (linear)
          -> [+ input, when the block allows it, runs at stride 1 and keeps the depth]
"""

from __future__ import annotations

import keras

from deeplab_tf.modeling.layers.conv_bn import ConvBN, scope_to_name
from deeplab_tf.modeling.layers.residual_add import ResidualAdd

# FE's mobilenet_v2_arg_scope, for all three families: batch norm decay 0.997 with slim's
# default epsilon (1e-3); truncated-normal weights (stddev 0.09); L2 on regular convolutions
# only; 'SAME' padding everywhere.
BATCH_NORM = dict(bn_momentum=0.997, bn_epsilon=1e-3)
WEIGHTS_STDDEV = 0.09


def conv_options(config) -> dict:
    """``ConvBN`` keyword arguments every MobileNet convolution of ``config`` shares."""
    return dict(explicit_padding=False, kernel_stddev=WEIGHTS_STDDEV,
                sync_batch_norm=config.sync_batch_norm,
                batch_norm_trainable=config.fine_tune_batch_norm, **BATCH_NORM)


def make_divisible(value, divisor, min_value=None):
    """The original's ``_make_divisible``: round to a multiple of ``divisor``, at least
    ``min_value`` (default ``divisor``), never more than 10% below ``value``."""
    if min_value is None:
        min_value = divisor
    rounded = max(min_value, int(value + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * value:
        rounded += divisor
    return rounded


def squeeze_excite(x, squeeze_channels, scope, common, weight_decay):
    """slim's ``squeeze_excite`` as MobileNetV3 configures it: ``x * gate(x)``.

    The gate: global mean over height and width, a 1x1 convolution with bias to
    ``squeeze_channels`` and ReLU (scope ``squeeze_excite/Conv``), a 1x1 convolution with bias
    back to the input's channels and the q-sigmoid ``relu6(x + 3) * 0.16667``
    (``squeeze_excite/Conv_1``). No batch norm.

    Args:
        x: Keras tensor [batch, height, width, channels].
        squeeze_channels: int. Channels of the inner convolution.
        scope: str. The block's scope, e.g. ``"MobilenetV3/expanded_conv_3"``.
        common: dict. ``ConvBN`` keyword arguments shared by every convolution.
        weight_decay: float. L2 of both kernels.
    """
    gate = keras.layers.GlobalAveragePooling2D(
        keepdims=True, name=scope_to_name(f"{scope}/squeeze_excite/mean"))(x)
    options = dict(common, use_batch_norm=False, weight_decay=weight_decay)
    gate = ConvBN(squeeze_channels, 1, activation="relu",
                  scope=f"{scope}/squeeze_excite/Conv", **options)(gate)
    gate = ConvBN(x.shape[-1], 1, activation="q_sigmoid",
                  scope=f"{scope}/squeeze_excite/Conv_1", **options)(gate)
    return keras.layers.Multiply(name=scope_to_name(f"{scope}/squeeze_excite/mul"))([x, gate])


def expanded_conv(x, num_outputs, expansion_size, stride, rate, scope, layer, endpoints,
                  common, weight_decay, kernel_size=3, activation="relu6",
                  squeeze_channels=None, fused=False, residual=True):
    """One inverted residual block; adds its endpoints under ``layer`` (e.g. "layer_4").

    Args:
        x: Keras tensor [batch, height, width, channels].
        num_outputs: int. Output channels of ``project``.
        expansion_size: int. Channels of the expansion; no ``expand`` conv unless it is
            larger than the input's channels.
        stride: int. Stride the block runs at (the depthwise's; a fused block's ``expand``).
        rate: int. Depthwise atrous rate.
        scope: str. Full variable scope, e.g. ``"MobilenetV2/expanded_conv_2"``.
        layer: str. Endpoint name of the layer, e.g. ``"layer_4"``.
        endpoints: dict. Receives ``layer/expansion_output`` (if there is an expansion),
            ``layer/depthwise_output`` (after the depthwise's activation, before
            squeeze-and-excitation; none in a fused block) and ``layer/output``.
        common: dict. ``ConvBN`` keyword arguments shared by every convolution.
        weight_decay: float. L2 of the regular kernels (the depthwise kernel has none).
        kernel_size: int. Depthwise kernel size (a fused block's ``expand`` kernel size).
        activation: str. ``ConvBN`` activation of ``expand`` and ``depthwise``.
        squeeze_channels: int or None. Squeeze-and-excitation after the depthwise, with this
            inner width; None for none.
        fused: bool. The EdgeTPU block: a kxk ``expand`` at ``stride`` and no depthwise.
        residual: bool. Whether the block may add its input (the original's ``residual``).

    Returns:
        The block's output.
    """
    inputs = x
    if expansion_size > x.shape[-1]:
        size, expand_stride = (kernel_size, stride) if fused else (1, 1)
        x = ConvBN(expansion_size, size, strides=expand_stride, activation=activation,
                   weight_decay=weight_decay, scope=f"{scope}/expand", **common)(x)
        endpoints[f"{layer}/expansion_output"] = x
    if not fused:
        x = ConvBN(None, kernel_size, strides=stride, dilation_rate=rate, depthwise=True,
                   activation=activation, weight_decay=0.0, scope=f"{scope}/depthwise",
                   **common)(x)
        endpoints[f"{layer}/depthwise_output"] = x
    if squeeze_channels:
        x = squeeze_excite(x, squeeze_channels, scope, common, weight_decay)
    x = ConvBN(num_outputs, 1, activation=None, weight_decay=weight_decay,
               scope=f"{scope}/project", **common)(x)
    if residual and stride == 1 and num_outputs == inputs.shape[-1]:
        x = ResidualAdd(name=scope_to_name(f"{scope}/add"))([x, inputs])
    endpoints[f"{layer}/output"] = x
    return x
