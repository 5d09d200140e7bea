"""The Dense Prediction Cell (DPC): a searched multi-branch head in place of ASPP.

Searching for Efficient Multi-Scale Architectures for Dense Image Prediction (Chen et al.,
2018), as DeepLab's ``dense_prediction_cell.DensePredictionCell`` builds it from the cell's
JSON (``ModelConfig.dense_prediction_cell``). Data flow, for the original's Cityscapes cell::

    features -> branch0 (3x3 separable, rate (1, 6))
    branch0  -> branch1 (rate (18, 15)) -> branch2 (rate (6, 3))
    branch0  -> branch3 (rate (1, 1)), branch4 (rate (6, 21))
    concat(branch0..4) -> dropout(0.1) -> concat_projection (1x1, 256)

Every branch has 256 channels; a separable branch is depthwise -> BN -> ReLU -> pointwise ->
BN -> ReLU, its (anisotropic) rates multiplied by ``16 // output_stride``. The cell's
activation is ReLU whatever ``use_bounded_activation`` says, and it has no image-level branch.
Variables live under ``meta_architecture/`` (``branch0_depthwise/depthwise_weights``,
``concat_projection/weights`` ...).
"""

from __future__ import annotations

import keras

from deeplab_tf.modeling.heads.aspp import ImagePooling
from deeplab_tf.modeling.heads.common import layer_options
from deeplab_tf.modeling.layers.conv_bn import ConvBN, scope_to_name
from deeplab_tf.modeling.layers.resize import scale_dimension
from deeplab_tf.modeling.layers.separable_conv_bn import SeparableConvBN

SCOPE = "meta_architecture"
BRANCH_FILTERS = 256  # the original's reduction_size
CONCAT_FILTERS = 256  # the original's concat_channels
DROPOUT_RATE = 0.1  # the original keeps 0.9 of the concatenated features


def rate_multiplier(output_stride: int) -> int:
    """The original's ``conv_rate_multiplier``: the cell's rates are for output stride 16."""
    return 16 // output_stride


def _pyramid_pooling(branch, config, scope, common):
    pool_size = tuple(scale_dimension(size, 1.0 / (config.output_stride * grid))
                      for size, grid in zip(config.image_pooling_crop_size, branch.grid_size))
    return ImagePooling(BRANCH_FILTERS, pool_size, (1, 1), scope=scope, conv_kwargs=common,
                        name=scope_to_name(scope))


def dense_prediction_cell(features, config):
    """The cell of ``config.dense_prediction_cell`` on the backbone's ``features``.

    Returns:
        The projected concatenation of the branches: 256 channels at the features' size.
    """
    common = dict(layer_options(config), activation="relu")
    multiplier = rate_multiplier(config.output_stride)
    outputs = []
    for index, branch in enumerate(config.dense_prediction_cell):
        source = features if branch.input < 0 else outputs[branch.input]
        scope = f"{SCOPE}/branch{index}"
        if branch.op == "pyramid_pooling":
            layer = _pyramid_pooling(branch, config, scope, common)
        elif branch.kernel == (1, 1):
            layer = ConvBN(BRANCH_FILTERS, 1, scope=scope, **common)
        else:
            layer = SeparableConvBN(BRANCH_FILTERS, branch.kernel,
                                    dilation_rate=tuple(r * multiplier for r in branch.rate),
                                    scope=scope, **common)
        outputs.append(layer(source))
    x = outputs[0]
    if len(outputs) > 1:
        x = keras.layers.Concatenate(axis=-1, name=f"{SCOPE}.concat")(outputs)
    x = keras.layers.Dropout(DROPOUT_RATE, name=f"{SCOPE}.concat_projection_dropout")(x)
    return ConvBN(CONCAT_FILTERS, 1, scope=f"{SCOPE}/concat_projection", **common)(x)
