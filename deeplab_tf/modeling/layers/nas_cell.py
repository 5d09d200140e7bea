"""``NasCell``: one cell of the NAS backbones (PNASNet-5 and Auto-DeepLab's HNASNet).

Progressive Neural Architecture Search (Liu et al., 2018) and Auto-DeepLab (Liu et al., 2019),
as DeepLab's ``nas_cell.NASBaseCell`` builds them. Inputs ``[net, prev]`` (the two previous
cells' outputs); data flow::

    net  -> [x2 upsample (2h - 1), when the level goes down] -> ReLU -> 1x1 -> beginning_bn = h0
    prev -> resize to h0's size -> ReLU -> prev_1x1 -> prev_bn                             = h1
    for i in 0..4:  h[2 + i] = op[2i](h[idx[2i]]) + op[2i + 1](h[idx[2i + 1]])  (comb_iter_i)
    output = concat of the states not used inside the cell (``used_hiddenstates`` 0)

Operations (``operations``, names as the original's genotypes), each in scope
``comb_iter_i/left`` or ``/right``; the cell's ``stride`` applies to the ops on h0 and h1:

* ``separable_KxK_L``: L times ReLU -> ``FusedSeparableConvBN`` (stride on the first);
* ``atrous_KxK``: ReLU -> (stride 2: resize to ``scale_dimension(h, 0.5)``) -> KxK conv with
  rate 2 (rate 1 after that resize) -> BN;
* ``max_pool_KxK`` / ``avg_pool_KxK``: 'SAME' pooling with the stride;
* ``none``: the identity, or ReLU -> 1x1 conv with the stride -> BN when it strides.

Every operation but ``none`` ends with ``DropPath`` when the cell has one. Each convolution
carries the original's variable names (``cell_3/comb_iter_0/left/separable_5x5_1/
depthwise_weights``, ``.../bn_sep_5x5_1/gamma`` ...). Batch norms are NAS's (decay 0.9997,
epsilon 1e-3), kernels initialised as ``nas_arg_scope`` (variance scaling 1/3, uniform).
"""

from __future__ import annotations

import math
from typing import Sequence

import keras
import tensorflow as tf

from deeplab_tf.modeling.layers.conv_bn import ConvBN, scope_to_name
from deeplab_tf.modeling.layers.drop_path import DropPath, cell_keep_prob
from deeplab_tf.modeling.layers.fused_separable_conv_bn import (NAS_INITIALIZER,
                                                                 FusedSeparableConvBN)
from deeplab_tf.modeling.layers.resize import resize_bilinear, scale_dimension


def _kernel(operation: str) -> int:
    """The kernel size of ``separable_5x5_2``, ``atrous_3x3``, ``max_pool_3x3`` ..."""
    size = next(part for part in operation.split("_") if part[:1].isdigit() and "x" in part)
    return int(size.split("x")[0])


@keras.saving.register_keras_serializable(package="deeplab_tf")
class NasCell(keras.layers.Layer):
    """One NAS cell (see the module docstring).

    Args:
        filters: int. Filters of every operation (the cell outputs ``filters`` times the
            number of unused states).
        operations: sequence of str. Two per combination (left, right).
        hiddenstate_indices: sequence of int. The state each operation reads (0: net,
            1: prev, 2 + i: combination i).
        used_hiddenstates: sequence of 0/1. States left out of the output.
        stride: int. 1 or 2.
        upsample_input: bool. Upsample ``net`` to ``scale_dimension(h, 2)`` first.
        cell_num: int. The cell's index (its drop-path keep probability grows with it).
        total_num_cells: int. Cells in the network.
        drop_path_keep_prob: float. The network's drop-path keep probability (1: none).
        bn_momentum, bn_epsilon, weight_decay: batch norm and L2 options.
        scope: str. The cell's variable scope, e.g. ``"hnasnet/cell_3"``.
        sync_batch_norm, batch_norm_trainable: bool. See ``ConvBN``.
    """

    def __init__(self, filters: int, operations: Sequence[str],
                 hiddenstate_indices: Sequence[int], used_hiddenstates: Sequence[int],
                 stride: int = 1, upsample_input: bool = False, cell_num: int = 0,
                 total_num_cells: int = 12, drop_path_keep_prob: float = 1.0,
                 bn_momentum: float = 0.9997, bn_epsilon: float = 1e-3,
                 weight_decay: float = 0.0, scope: str = "cell_0",
                 sync_batch_norm: bool = False, batch_norm_trainable: bool = True, **kwargs):
        kwargs.setdefault("name", scope_to_name(scope))
        super().__init__(**kwargs)
        if len(operations) != len(hiddenstate_indices) or len(operations) % 2:
            raise ValueError("operations and hiddenstate_indices must be pairs of equal length. "
                             f"Received: {list(operations)}, {list(hiddenstate_indices)}")
        self.filters = int(filters)
        self.operations = tuple(operations)
        self.hiddenstate_indices = tuple(int(i) for i in hiddenstate_indices)
        self.used_hiddenstates = tuple(int(u) for u in used_hiddenstates)
        self.stride = int(stride)
        self.upsample_input = bool(upsample_input)
        self.cell_num = int(cell_num)
        self.total_num_cells = int(total_num_cells)
        self.drop_path_keep_prob = float(drop_path_keep_prob)
        self.bn_momentum = bn_momentum
        self.bn_epsilon = bn_epsilon
        self.weight_decay = weight_decay
        self.scope = scope
        self.sync_batch_norm = sync_batch_norm
        self.batch_norm_trainable = batch_norm_trainable

        self.drop_path = None
        if self.drop_path_keep_prob < 1.0:
            self.drop_path = DropPath(cell_keep_prob(self.drop_path_keep_prob, self.cell_num,
                                                     self.total_num_cells), name="drop_path")
        self.begin = self._conv(1, 1, "1x1", "beginning_bn")
        # Both inputs have ``filters`` channels once past the cell base, so a pooling never
        # needs its 1x1 convolution and ``none`` needs one only when it strides. Each layer
        # is an attribute of its own (``comb_iter_0_left_0`` ...): tf.train.Checkpoint does
        # not see layers held in a list.
        names = []
        for j in range(len(self.operations)):
            names.append([])
            for n, layer in enumerate(self._op_layers(j)):
                name = f"comb_iter_{j // 2}_{'left' if j % 2 == 0 else 'right'}_{n}"
                setattr(self, name, layer)
                names[-1].append(name)
        self._op_layer_names = tuple(tuple(op) for op in names)
        self.prev_1x1 = None

    def _conv(self, kernel_size, stride, name, bn_name, rate=1, prefix=""):
        return ConvBN(self.filters, kernel_size, strides=stride, dilation_rate=rate,
                      activation=None, bn_momentum=self.bn_momentum, bn_epsilon=self.bn_epsilon,
                      weight_decay=self.weight_decay, scope=f"{self.scope}/{prefix}{name}",
                      bn_scope=f"{self.scope}/{prefix}{bn_name}",
                      kernel_initializer=NAS_INITIALIZER, sync_batch_norm=self.sync_batch_norm,
                      batch_norm_trainable=self.batch_norm_trainable, dtype=self.dtype_policy)

    def _op_stride(self, j: int) -> int:
        return self.stride if self.hiddenstate_indices[j] < 2 else 1

    def _op_layers(self, j: int):
        operation, stride = self.operations[j], self._op_stride(j)
        prefix = f"comb_iter_{j // 2}/{'left' if j % 2 == 0 else 'right'}/"
        if operation.startswith("separable"):
            k = _kernel(operation)
            return [FusedSeparableConvBN(
                self.filters, k, strides=stride if n == 0 else 1,
                bn_momentum=self.bn_momentum, bn_epsilon=self.bn_epsilon,
                weight_decay=self.weight_decay,
                scope=f"{self.scope}/{prefix}separable_{k}x{k}_{n + 1}",
                bn_scope=f"{self.scope}/{prefix}bn_sep_{k}x{k}_{n + 1}",
                sync_batch_norm=self.sync_batch_norm,
                batch_norm_trainable=self.batch_norm_trainable, dtype=self.dtype_policy)
                for n in range(int(operation.split("_")[-1]))]
        if operation.startswith("atrous"):
            k = _kernel(operation)
            return [self._conv(k, 1, f"atrous_{k}x{k}", f"bn_atr_{k}x{k}",
                               rate=1 if stride == 2 else 2, prefix=prefix)]
        if operation == "none":
            return [self._conv(1, stride, "1x1", "bn_1", prefix=prefix)] if stride > 1 else []
        if operation.split("_")[0] in ("max", "avg") and "_pool_" in operation:
            return []
        raise ValueError(f"Unknown NAS operation. Received: {operation!r}")

    def build(self, input_shape):
        net_shape, prev_shape = input_shape
        net_shape = self._upsampled_shape(net_shape)
        self.begin.build(net_shape)
        if prev_shape[-1] != self.filters:
            self.prev_1x1 = self._conv(1, 1, "prev_1x1", "prev_bn")
            self.prev_1x1.build(tuple(net_shape[:3]) + (prev_shape[-1],))
        state = tuple(net_shape[:3]) + (self.filters,)
        for j in range(len(self.operations)):
            shape = state
            for layer in self._layers_of(j):
                layer.build(shape)
                shape = layer.compute_output_shape(shape)

    def _layers_of(self, j):
        return [getattr(self, name) for name in self._op_layer_names[j]]

    def _upsampled_shape(self, shape):
        if not self.upsample_input:
            return tuple(shape)
        return (shape[0],) + tuple(None if n is None else 2 * n - 1 for n in shape[1:3]) + (
            shape[3],)

    def _apply(self, j, x, training):
        operation, stride = self.operations[j], self._op_stride(j)
        layers = self._layers_of(j)
        if operation.startswith("separable"):
            for layer in layers:
                x = layer(tf.nn.relu(x), training=training)
        elif operation.startswith("atrous"):
            x = tf.nn.relu(x)
            if stride == 2:
                shape = tf.shape(x)
                x = resize_bilinear(x, [scale_dimension(shape[1], 0.5),
                                        scale_dimension(shape[2], 0.5)])
            x = layers[0](x, training=training)
        elif operation == "none":
            if layers:
                x = layers[0](tf.nn.relu(x), training=training)
            return x
        else:
            pool = tf.nn.max_pool2d if operation.startswith("max") else tf.nn.avg_pool2d
            x = pool(x, _kernel(operation), stride, "SAME")
        if self.drop_path is not None:
            x = self.drop_path(x, training=training)
        return x

    def call(self, inputs, training=None):
        net, prev = inputs
        if self.upsample_input:
            shape = tf.shape(net)
            net = resize_bilinear(net, [scale_dimension(shape[1], 2), scale_dimension(shape[2], 2)])
        shape = tf.shape(net)
        # The original resizes prev when its width differs from net's; an align-corners
        # resize to the same size is the identity, so it is resized always.
        prev = resize_bilinear(prev, [shape[1], shape[2]])
        if self.prev_1x1 is not None:
            prev = self.prev_1x1(tf.nn.relu(prev), training=training)
        states = [self.begin(tf.nn.relu(net), training=training), prev]
        for i in range(len(self.operations) // 2):
            left = self._apply(2 * i, states[self.hiddenstate_indices[2 * i]], training)
            right = self._apply(2 * i + 1, states[self.hiddenstate_indices[2 * i + 1]], training)
            states.append(left + right)
        unused = [state for state, used in zip(states, self.used_hiddenstates) if not used]
        return tf.concat(unused, axis=3)

    def compute_output_shape(self, input_shape):
        net_shape = self._upsampled_shape(input_shape[0])
        spatial = tuple(None if n is None else math.ceil(n / self.stride) for n in net_shape[1:3])
        channels = self.filters * sum(1 for used in self.used_hiddenstates if not used)
        return (net_shape[0],) + spatial + (channels,)

    def get_config(self):
        config = super().get_config()
        config.update(
            filters=self.filters, operations=list(self.operations),
            hiddenstate_indices=list(self.hiddenstate_indices),
            used_hiddenstates=list(self.used_hiddenstates), stride=self.stride,
            upsample_input=self.upsample_input, cell_num=self.cell_num,
            total_num_cells=self.total_num_cells, drop_path_keep_prob=self.drop_path_keep_prob,
            bn_momentum=self.bn_momentum, bn_epsilon=self.bn_epsilon,
            weight_decay=self.weight_decay, scope=self.scope,
            sync_batch_norm=self.sync_batch_norm, batch_norm_trainable=self.batch_norm_trainable)
        return config
