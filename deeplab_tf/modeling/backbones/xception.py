"""Modified aligned Xception-41 / -65 / -71 (DeepLabv3+ paper, section 3.2).

Differences from the ImageNet Xception, as in the original DeepLab: more middle-flow units,
every max pooling replaced by a strided separable convolution, and batch norm after each
depthwise convolution. Data flow::

    conv1_1 (3x3/2, 32) -> conv1_2 (3x3, 64)
    -> entry flow blocks (3 or 5, each one unit, 'conv' shortcut)
    -> middle flow (8 or 16 units, 'sum' shortcut)
    -> exit_flow/block1 (728, 1024, 1024; 'conv' shortcut)
    -> exit_flow/block2 (1536, 1536, 2048; no shortcut; ReLU inside the separable convs;
       unit rates = multi_grid)

Each unit holds three separable convolutions; the unit's stride sits on the third. As the
original's ``stack_blocks_dense``: strides accumulate until ``output_stride`` is reached,
after which units run at stride 1 and the atrous rate grows by the stride they skip.

With ``use_bounded_activation`` (the original's option for quantized inference) every ReLU
becomes ReLU6, the separable convolutions clip their batch norms' outputs to [-6, 6] (ReLU6
in exit_flow/block2), a unit adds the clipped residual and shortcut and applies ReLU6, and the
strided separable convolutions pad 'SAME' instead of the fixed padding. No variable changes.
"""

from __future__ import annotations

import keras

from deeplab_tf.modeling.backbones.strides import dilated_units
from deeplab_tf.modeling.layers.conv_bn import ConvBN, scope_to_name
from deeplab_tf.modeling.layers.residual_add import ResidualAdd
from deeplab_tf.modeling.layers.separable_conv_bn import SeparableConvBN

# (block scope, depth_list, skip_connection_type, activation_fn_in_separable_conv,
#  num_units, stride). The exit flow's last block also takes multi_grid unit rates.
_ENTRY_FLOW_3 = (
    ("entry_flow/block1", (128, 128, 128), "conv", False, 1, 2),
    ("entry_flow/block2", (256, 256, 256), "conv", False, 1, 2),
    ("entry_flow/block3", (728, 728, 728), "conv", False, 1, 2),
)
_ENTRY_FLOW_5 = (
    ("entry_flow/block1", (128, 128, 128), "conv", False, 1, 2),
    ("entry_flow/block2", (256, 256, 256), "conv", False, 1, 1),
    ("entry_flow/block3", (256, 256, 256), "conv", False, 1, 2),
    ("entry_flow/block4", (728, 728, 728), "conv", False, 1, 1),
    ("entry_flow/block5", (728, 728, 728), "conv", False, 1, 2),
)
_EXIT_FLOW = (
    ("exit_flow/block1", (728, 1024, 1024), "conv", False, 1, 2),
    ("exit_flow/block2", (1536, 1536, 2048), "none", True, 1, 1),
)


def _middle_flow(num_units):
    return (("middle_flow/block1", (728, 728, 728), "sum", False, num_units, 1),)


BLOCKS = {
    "xception_41": _ENTRY_FLOW_3 + _middle_flow(8) + _EXIT_FLOW,
    "xception_65": _ENTRY_FLOW_3 + _middle_flow(16) + _EXIT_FLOW,
    "xception_71": _ENTRY_FLOW_5 + _middle_flow(16) + _EXIT_FLOW,
}

BATCH_NORM = dict(bn_momentum=0.9997, bn_epsilon=1e-3)
WEIGHTS_STDDEV = 0.09


def _separable_activations(activation_in_separable, bounded):
    """(pre_activation, activation) of a unit's separable convolutions."""
    if activation_in_separable:
        return False, "relu6" if bounded else "relu"
    return ("relu6", "clip6") if bounded else (True, None)


def _xception_module(x, depth_list, skip_connection_type, activation_in_separable, stride,
                     rates, scope, prefix, endpoints, common, bounded=False):
    residual = x
    pre_activation, activation = _separable_activations(activation_in_separable, bounded)
    for i in range(3):
        conv_scope = f"{scope}/separable_conv{i + 1}"
        residual = SeparableConvBN(
            depth_list[i], 3, strides=stride if i == 2 else 1, dilation_rate=rates[i],
            explicit_padding=not bounded, pre_activation=pre_activation, activation=activation,
            depthwise_stddev=WEIGHTS_STDDEV, pointwise_stddev=WEIGHTS_STDDEV,
            scope=f"{prefix}/{conv_scope}", **common)(residual)
        endpoints[f"{conv_scope}_pointwise"] = residual
    if skip_connection_type == "none":
        return residual
    # Bounded, the original clips both terms to [-6, 6] before adding them: the residual
    # already is (its last batch norm is clipped), and so is a 'sum' unit's input (the
    # previous unit's ReLU6), which leaves the shortcut convolution's clip.
    shortcut = x
    if skip_connection_type == "conv":
        shortcut = ConvBN(depth_list[-1], 1, strides=stride,
                          activation="clip6" if bounded else None,
                          kernel_stddev=WEIGHTS_STDDEV, scope=f"{prefix}/{scope}/shortcut",
                          **common)(x)
    x = ResidualAdd(name=scope_to_name(f"{prefix}/{scope}/add"))([residual, shortcut])
    if bounded:
        x = keras.layers.ReLU(6.0, name=scope_to_name(f"{prefix}/{scope}/Relu6"))(x)
    return x


def build(images, config, variant):
    """Adds an aligned Xception to the graph.

    Args:
        images: Keras tensor [batch, height, width, 3], already normalised to [-1, 1].
        config: ``ModelConfig``. Uses output_stride, multi_grid, use_bounded_activation,
            weight_decay and the batch norm options.
        variant: str. "xception_41", "xception_65" or "xception_71"; also the variable scope.

    Returns:
        (features, endpoints): the exit-flow output (2048 channels) at
        ``config.output_stride``, and endpoints keyed by the original's names.
    """
    if variant not in BLOCKS:
        raise ValueError(f"Unknown Xception variant. Received: variant={variant!r}")
    common = dict(weight_decay=config.weight_decay, sync_batch_norm=config.sync_batch_norm,
                  batch_norm_trainable=config.fine_tune_batch_norm, **BATCH_NORM)
    endpoints = {}
    bounded = config.use_bounded_activation
    activation = "relu6" if bounded else "relu"
    x = ConvBN(32, 3, strides=2, kernel_stddev=WEIGHTS_STDDEV, activation=activation,
               scope=f"{variant}/entry_flow/conv1_1", **common)(images)
    x = ConvBN(64, 3, strides=1, kernel_stddev=WEIGHTS_STDDEV, activation=activation,
               scope=f"{variant}/entry_flow/conv1_2", **common)(x)
    endpoints["entry_flow/conv1_2"] = x

    multi_grid = config.multi_grid or (1, 1, 1)
    unit_strides = [stride for *_, num_units, stride in BLOCKS[variant] for _ in range(num_units)]
    # The root block already strides by 2.
    schedule = iter(dilated_units(unit_strides, config.output_stride, input_stride=2))
    for block_scope, depths, skip, act_in_sep, num_units, _ in BLOCKS[variant]:
        unit_rates = multi_grid if block_scope == "exit_flow/block2" else (1, 1, 1)
        for unit in range(num_units):
            unit_stride, base_rate = next(schedule)
            scope = f"{block_scope}/unit_{unit + 1}/xception_module"
            x = _xception_module(x, depths, skip, act_in_sep, unit_stride,
                                 [base_rate * r for r in unit_rates], scope, variant,
                                 endpoints, common, bounded)
            endpoints[scope] = x
        endpoints[block_scope] = x
    return x, endpoints
