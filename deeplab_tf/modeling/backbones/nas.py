"""The NAS backbones: ``nas_pnasnet`` (PNASNet-5) and ``nas_hnasnet`` (Auto-DeepLab).

Progressive Neural Architecture Search (Liu et al., 2018); Auto-DeepLab: Hierarchical Neural
Architecture Search for Semantic Image Segmentation (Liu et al., 2019). As DeepLab's
``nas_network`` builds them (variable scopes ``pnasnet`` / ``hnasnet``)::

    stem: conv0 (3x3/2, 64) -> BN -> ReLU -> conv1 (3x3, 64) -> BN          = stem output 1
          -> ReLU -> conv2 (3x3/2, 128) -> BN                               = stem output 2 ("Stem")
    12 cells (``NasCell``), cell n reading the outputs of cells n - 1 and n - 2; the
    backbone's level sequence (level l: output stride 2 ** (l + 2)) sets each cell's stride
    (level up: 2, filters doubled), upsampling (level down: x2, filters halved) and width
    ``int(F * scaling)`` with ``F = nas_stem_output_num_conv_filters``
    -> ReLU [-> the classification head: strided / atrous 3x3 convolutions to output stride
    32, 1x1 to 2048]

PNASNet's levels follow ``output_stride`` (8, 16, 32); HNASNet's searched path always ends
at output stride 8. Batch norms are named ``<conv>_bn`` (no ``BatchNorm`` level) and every
convolution is preceded by a ReLU (none between a separable convolution's two parts).
Endpoints: ``Stem`` and ``Cell_0`` .. ``Cell_11`` (cell outputs before the ReLU), keyed
without the network scope as the original's decoder looks them up.
"""

from __future__ import annotations

import keras

from deeplab_tf.modeling.layers.conv_bn import ConvBN, scope_to_name
from deeplab_tf.modeling.layers.fused_separable_conv_bn import NAS_INITIALIZER
from deeplab_tf.modeling.layers.nas_cell import NasCell

BATCH_NORM = dict(bn_momentum=0.9997, bn_epsilon=1e-3)
FILTER_SCALING_RATE = 2.0

# variant -> (variable scope, operations, hiddenstate_indices, used_hiddenstates).
GENOTYPES = {
    "nas_pnasnet": ("pnasnet",
                    ("separable_5x5_2", "max_pool_3x3", "separable_7x7_2", "max_pool_3x3",
                     "separable_5x5_2", "separable_3x3_2", "separable_3x3_2", "max_pool_3x3",
                     "separable_3x3_2", "none"),
                    (1, 1, 0, 0, 0, 0, 4, 0, 1, 0), (1, 1, 0, 0, 0, 0, 0)),
    "nas_hnasnet": ("hnasnet",
                    ("atrous_5x5", "separable_3x3_2", "separable_3x3_2", "atrous_3x3",
                     "separable_3x3_2", "separable_3x3_2", "separable_5x5_2",
                     "separable_5x5_2", "separable_5x5_2", "atrous_5x5"),
                    (1, 0, 1, 0, 3, 1, 4, 2, 3, 5), (1, 1, 0, 0, 0, 0, 0)),
}
_PNASNET_LEVELS = {8: (1,) * 12, 16: (1,) * 4 + (2,) * 8, 32: (1,) * 4 + (2,) * 4 + (3,) * 4}
_HNASNET_LEVELS = (0, 0, 0, 1, 2, 1, 2, 2, 3, 3, 2, 1)
# The classification head's filters by the output stride it reaches.
_HEAD_FILTERS = {8: 256, 16: 512, 32: 1024}


def backbone_levels(variant: str, output_stride: int):
    """The level of each cell (output stride ``2 ** (level + 2)``)."""
    if variant == "nas_hnasnet":
        return _HNASNET_LEVELS
    return _PNASNET_LEVELS[output_stride]


def cell_schedule(levels, remove_os32_stride=False):
    """[(stride, upsample_input, filter_scaling)] of each cell, as ``_build_nas_base``."""
    scaling, schedule = 1.0, []
    for n, level in enumerate(levels):
        stride, upsample = 1, False
        if n == 0 and level == 1:
            stride, scaling = 2, scaling * FILTER_SCALING_RATE
        elif n > 0 and level == levels[n - 1] + 1:
            stride = 1 if (level == 3 and remove_os32_stride) else 2
            scaling *= FILTER_SCALING_RATE
        elif n > 0 and level == levels[n - 1] - 1:
            upsample = not (levels[n - 1] == 3 and remove_os32_stride)
            scaling /= FILTER_SCALING_RATE
        schedule.append((stride, upsample, scaling))
    return schedule


def build(images, config, variant):
    """Adds a NAS backbone to the graph.

    Args:
        images: Keras tensor [batch, height, width, 3], already normalised to [-1, 1].
        config: ``ModelConfig``. Uses output_stride, the nas_* options, drop_path_keep_prob
            (only when fine_tune_batch_norm, as the original), weight_decay and the batch norm
            options.
        variant: str. ``"nas_pnasnet"`` or ``"nas_hnasnet"``.

    Returns:
        (features, endpoints): the last cell's output after ReLU (5 * cell filters channels,
        or 2048 with the classification head) and the endpoints ``Stem``, ``Cell_<n>``.
    """
    if variant not in GENOTYPES:
        raise ValueError(f"Unknown NAS variant. Received: variant={variant!r}")
    scope, operations, indices, used = GENOTYPES[variant]
    common = dict(weight_decay=config.weight_decay, sync_batch_norm=config.sync_batch_norm,
                  batch_norm_trainable=config.fine_tune_batch_norm, **BATCH_NORM)

    def conv(filters, kernel_size, stride, name, activation, rate=1, bn_name=None):
        return ConvBN(filters, kernel_size, strides=stride, dilation_rate=rate,
                      activation=activation, scope=f"{scope}/{name}",
                      bn_scope=f"{scope}/{bn_name or name + '_bn'}",
                      kernel_initializer=NAS_INITIALIZER, **common)

    def relu(x, name):
        return keras.layers.ReLU(name=scope_to_name(f"{scope}/{name}"))(x)

    x = conv(64, 3, 2, "conv0", "relu")(images)
    stem_1 = conv(64, 3, 1, "conv1", None)(x)
    net = conv(128, 3, 2, "conv2", None)(relu(stem_1, "conv1_relu"))
    endpoints = {"Stem": net}
    outputs = [stem_1, net]

    levels = backbone_levels(variant, config.output_stride)
    # Drop path trains only with batch norm (the original's is_training for NAS).
    keep_prob = config.drop_path_keep_prob if config.fine_tune_batch_norm else 1.0
    schedule = cell_schedule(levels, config.nas_remove_os32_stride)
    for n, (stride, upsample, scaling) in enumerate(schedule):
        net = NasCell(int(config.nas_stem_output_num_conv_filters * scaling), operations,
                      indices, used, stride=stride, upsample_input=upsample, cell_num=n,
                      total_num_cells=len(levels), drop_path_keep_prob=keep_prob,
                      scope=f"{scope}/cell_{n}", **common)([net, outputs[-2]])
        endpoints[f"Cell_{n}"] = net
        outputs.append(net)
    net = relu(net, "relu")

    if config.nas_use_classification_head:
        current_scale = 2 + levels[-1]
        remaining, rate = config.output_stride // 2 ** current_scale, 1
        for target_scale in range(current_scale + 1, 6):
            target = 2 ** target_scale
            if remaining != 1:
                stride, remaining = 2, remaining // 2
            else:
                stride, rate = 1, rate * 2
            net = conv(_HEAD_FILTERS[target], 3, stride, f"downsample_os{target}_conv", "relu",
                       rate=rate, bn_name=f"downsample_os{target}_bn")(net)
        net = conv(2048, 1, 1, "classification_head_conv", "relu",
                   bn_name="classification_head_bn")(net)
    return net, endpoints
