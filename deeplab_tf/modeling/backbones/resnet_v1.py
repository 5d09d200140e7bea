"""ResNet-v1-18 / -50 / -101 and their "beta" variants, as DeepLab's ``resnet_v1_beta`` builds them.

Deep Residual Learning for Image Recognition (He et al., 2016), bottleneck units with batch
norm after every convolution; the "beta" root and the multi-grid last block are DeepLab's
(Rethinking Atrous Convolution for Semantic Image Segmentation, Chen et al., 2017). Data flow::

    root: conv1 (7x7/2, 64)                               resnet_v1_50, resnet_v1_101
       or conv1_1 (3x3/2, 64) -> conv1_2 (3x3, 64) -> conv1_3 (3x3, 128)   the *_beta variants
    -> pool1 (3x3/2 max pool, 'SAME')
    -> block1 .. block3: bottleneck units of depth 4 * (64, 128, 256); the block's stride 2
       sits on its LAST unit
    -> block4: three units of depth 2048, stride 1, unit rates = multi_grid (default 1, 1, 1)

Bottleneck unit (scope ``blockN/unit_M/bottleneck_v1``)::

    residual = conv1 (1x1, ReLU) -> conv2 (3x3, stride, rate, ReLU) -> conv3 (1x1, no ReLU)
    shortcut = shortcut (1x1 conv with stride, no ReLU) if the depth changes, else the input
               subsampled by a 1x1 max pool with the stride
    output   = relu(shortcut + residual)

ResNet-v1-18 (``resnet_v1_18``, ``resnet_v1_18_beta``; scope ``resnet_v1_18``) has two
``lite_bottleneck_v1`` units per block, of depth 64, 128, 256 and 512 (block4: unit rates =
a two-value multi_grid, default 1, 1)::

    residual = conv1 (3x3, rate, ReLU) -> conv2 (3x3, stride, rate, no ReLU)
    output   = relu(shortcut + residual)

and its beta root is DeepLab's with a root depth multiplier of 0.25 (conv1_1 16, conv1_2 16,
conv1_3 32 channels).

Strided convolutions pad explicitly (the original's ``conv2d_same``). As slim's
``stack_blocks_dense``, with the root counting for a stride of 4: strides accumulate until
``output_stride`` is reached, after which units run at stride 1 and the atrous rate grows by
the stride they skip. Endpoints are keyed as the original collects them, relative to the
network scope: every convolution (``.../bottleneck_v1/conv3`` is conv + BN, before the residual
add), every unit output (``.../bottleneck_v1``) and every block output (``blockN``).

Example:

>>> import keras
>>> from deeplab_tf import ModelConfig
>>> config = ModelConfig(model_variant="resnet_v1_50_beta", output_stride=16)
>>> images = keras.Input((65, 65, 3))
>>> features, endpoints = build(images, config, "resnet_v1_50_beta")
>>> features.shape, endpoints["block1/unit_2/bottleneck_v1/conv3"].shape
((None, 5, 5, 2048), (None, 17, 17, 256))
"""

from __future__ import annotations

import math

import keras

from deeplab_tf.modeling.backbones.strides import dilated_units
from deeplab_tf.modeling.layers.conv_bn import ConvBN, scope_to_name
from deeplab_tf.modeling.layers.residual_add import ResidualAdd

# variant -> (variable scope of the original checkpoints, units per block, beta root).
VARIANTS = {
    "resnet_v1_18": ("resnet_v1_18", (2, 2, 2, 2), False),
    "resnet_v1_18_beta": ("resnet_v1_18", (2, 2, 2, 2), True),
    "resnet_v1_50": ("resnet_v1_50", (3, 4, 6, 3), False),
    "resnet_v1_50_beta": ("resnet_v1_50", (3, 4, 6, 3), True),
    "resnet_v1_101": ("resnet_v1_101", (3, 4, 23, 3), False),
    "resnet_v1_101_beta": ("resnet_v1_101", (3, 4, 23, 3), True),
}
# The ResNet-18 variants: lite_bottleneck units, a quarter-width beta root, two block4 units.
_LITE = ("resnet_v1_18", "resnet_v1_18_beta")
_LITE_ROOT_MULTIPLIER = 0.25

# DeepLab's feature extractor overrides the resnet arg scope's batch norm decay (0.997).
BATCH_NORM = dict(bn_momentum=0.95, bn_epsilon=1e-5)
DEFAULT_MULTI_GRID = (1, 1, 1)


def he_stddev(kernel_size: int, in_channels: int) -> float:
    """Stddev of slim's ``variance_scaling_initializer()`` (factor 2, FAN_IN, truncated).

    slim draws from a normal truncated at two standard deviations with
    ``stddev = sqrt(1.3 * factor / fan_in)``.
    """
    return math.sqrt(1.3 * 2.0 / (kernel_size * kernel_size * in_channels))


def block_units(num_units, multi_grid=DEFAULT_MULTI_GRID, lite=False):
    """The four blocks as ``(scope, [(depth, depth_bottleneck, stride, unit_rate), ...])``
    (``lite``: ResNet-18's units, whose depth_bottleneck is None)."""
    expansion = 1 if lite else 4
    blocks = []
    for index, (base_depth, units) in enumerate(zip((64, 128, 256), num_units[:3])):
        bottleneck_depth = None if lite else base_depth
        unit = (base_depth * expansion, bottleneck_depth, 1, 1)
        last = (base_depth * expansion, bottleneck_depth, 2, 1)
        blocks.append((f"block{index + 1}", [unit] * (units - 1) + [last]))
    if len(multi_grid) != num_units[3]:
        raise ValueError(f"multi_grid must have {num_units[3]} values. "
                         f"Received: multi_grid={list(multi_grid)}")
    blocks.append(("block4", [(512 * expansion, None if lite else 512, 1, rate)
                              for rate in multi_grid]))
    return blocks


def _conv(x, filters, kernel_size, stride, rate, activation, scope, common):
    return ConvBN(filters, kernel_size, strides=stride, dilation_rate=rate,
                  explicit_padding=True, activation=activation,
                  kernel_stddev=he_stddev(kernel_size, x.shape[-1]), scope=scope, **common)(x)


def bottleneck(x, depth, depth_bottleneck, stride, rate, scope, prefix, endpoints, common):
    """One ``bottleneck_v1`` unit; adds its endpoints (keys relative to ``prefix``).

    Args:
        x: Keras tensor [batch, height, width, channels].
        depth: int. Output channels.
        depth_bottleneck: int. Channels of conv1 and conv2.
        stride: int. Stride of conv2 and of the shortcut.
        rate: int. Atrous rate of conv2 (the block rate times the unit rate).
        scope: str. Unit scope relative to the network, e.g.
            ``"block1/unit_1/bottleneck_v1"``.
        prefix: str. The network's variable scope, e.g. ``"resnet_v1_101"``.
        endpoints: dict. Receives the unit's endpoints.
        common: dict. ``ConvBN`` keyword arguments shared by every convolution.

    Returns:
        The unit's output, ``relu(shortcut + residual)``.
    """
    shortcut = _shortcut(x, depth, stride, scope, prefix, endpoints, common)
    residual = _conv(x, depth_bottleneck, 1, 1, 1, "relu", f"{prefix}/{scope}/conv1", common)
    endpoints[f"{scope}/conv1"] = residual
    residual = _conv(residual, depth_bottleneck, 3, stride, rate, "relu",
                     f"{prefix}/{scope}/conv2", common)
    endpoints[f"{scope}/conv2"] = residual
    residual = _conv(residual, depth, 1, 1, 1, None, f"{prefix}/{scope}/conv3", common)
    endpoints[f"{scope}/conv3"] = residual
    return _merge(shortcut, residual, scope, prefix, endpoints)


def _shortcut(x, depth, stride, scope, prefix, endpoints, common):
    if x.shape[-1] == depth:
        if stride == 1:
            return x
        return keras.layers.MaxPooling2D(1, strides=stride, padding="same",
                                         name=scope_to_name(f"{prefix}/{scope}/shortcut"))(x)
    shortcut = _conv(x, depth, 1, stride, 1, None, f"{prefix}/{scope}/shortcut", common)
    endpoints[f"{scope}/shortcut"] = shortcut
    return shortcut


def _merge(shortcut, residual, scope, prefix, endpoints):
    x = ResidualAdd(name=scope_to_name(f"{prefix}/{scope}/add"))([shortcut, residual])
    x = keras.layers.ReLU(name=scope_to_name(f"{prefix}/{scope}/Relu"))(x)
    endpoints[scope] = x
    return x


def lite_bottleneck(x, depth, stride, rate, scope, prefix, endpoints, common):
    """One ``lite_bottleneck_v1`` unit (ResNet-18): two 3x3 convolutions; see ``bottleneck``."""
    shortcut = _shortcut(x, depth, stride, scope, prefix, endpoints, common)
    residual = _conv(x, depth, 3, 1, rate, "relu", f"{prefix}/{scope}/conv1", common)
    endpoints[f"{scope}/conv1"] = residual
    residual = _conv(residual, depth, 3, stride, rate, None, f"{prefix}/{scope}/conv2", common)
    endpoints[f"{scope}/conv2"] = residual
    return _merge(shortcut, residual, scope, prefix, endpoints)


def build(images, config, variant):
    """Adds a ResNet-v1 (beta) backbone to the graph.

    Args:
        images: Keras tensor [batch, height, width, 3], already normalised (mean-RGB
            subtraction for resnet_v1_50/101, [-1, 1] for the beta variants).
        config: ``ModelConfig``. Uses output_stride, multi_grid, weight_decay and the batch
            norm options.
        variant: str. One of ``VARIANTS``.

    Returns:
        (features, endpoints): the block4 output (2048 channels; 512 for ResNet-18) at
        ``config.output_stride``, and endpoints keyed by the original's names relative to
        the network scope.
    """
    if variant not in VARIANTS:
        raise ValueError(f"Unknown ResNet variant. Received: variant={variant!r}")
    if config.output_stride % 4:
        raise ValueError(f"output_stride must be a multiple of 4. "
                         f"Received: output_stride={config.output_stride}")
    prefix, num_units, beta = VARIANTS[variant]
    lite = variant in _LITE
    common = dict(weight_decay=config.weight_decay, sync_batch_norm=config.sync_batch_norm,
                  batch_norm_trainable=config.fine_tune_batch_norm, **BATCH_NORM)
    endpoints = {}

    x = images
    if beta:
        multiplier = _LITE_ROOT_MULTIPLIER if lite else 1.0
        for name, filters, stride in (("conv1_1", 64, 2), ("conv1_2", 64, 1),
                                      ("conv1_3", 128, 1)):
            x = _conv(x, int(filters * multiplier), 3, stride, 1, "relu", f"{prefix}/{name}",
                      common)
            endpoints[name] = x
    else:
        x = _conv(x, 64, 7, 2, 1, "relu", f"{prefix}/conv1", common)
        endpoints["conv1"] = x
    x = keras.layers.MaxPooling2D(3, strides=2, padding="same",
                                  name=scope_to_name(f"{prefix}/pool1"))(x)

    blocks = block_units(num_units, config.multi_grid or DEFAULT_MULTI_GRID[:num_units[3]],
                         lite=lite)
    # The root block strides by 4.
    schedule = iter(dilated_units([unit[2] for _, units in blocks for unit in units],
                                  config.output_stride, input_stride=4))
    for block_scope, units in blocks:
        for index, (depth, depth_bottleneck, _, unit_rate) in enumerate(units):
            unit_stride, block_rate = next(schedule)
            if lite:
                x = lite_bottleneck(x, depth, unit_stride, block_rate * unit_rate,
                                    f"{block_scope}/unit_{index + 1}/lite_bottleneck_v1",
                                    prefix, endpoints, common)
                continue
            scope = f"{block_scope}/unit_{index + 1}/bottleneck_v1"
            x = bottleneck(x, depth, depth_bottleneck, unit_stride, block_rate * unit_rate,
                           scope, prefix, endpoints, common)
        endpoints[block_scope] = x
    return x, endpoints
