"""The original's DeepLabv3+ training graph, written TF1 style: a same-machine speed peer.

``build_training_graph`` builds in a fresh ``tf.Graph``, with ``tf.compat.v1`` and raw
``tf.nn`` ops (no Keras, no slim), the Xception DeepLabv3+ training graph of the original
(tensorflow/models research/deeplab, TF1 + slim), formulated as the original formulates it:
``get_variable`` reference variables named as its checkpoints; ``Conv2D`` /
``DepthwiseConv2dNative`` (dilated through ``nn.depthwise_conv2d``'s space-to-batch, as slim)
with fixed padding before strided 3x3 convolutions; ``FusedBatchNormV3`` in training mode,
the moving averages updated by ops in ``UPDATE_OPS``; slim's L2 ``wd * sum(w**2) / 2`` on
regular, pointwise and logits kernels (not depthwise ones), summed into the loss; logits
upsampled (align corners) to the labels, softmax cross-entropy on one-hot labels weighted 0
at the ignore label, over the kept pixels; ``compute_gradients``, the one clone's average
(stack + mean), biases' gradients doubled and the last layers' multiplied,
``MomentumOptimizer`` (``ApplyMomentum``) at the poly rate. One step: one ``Session.run`` of
``identity(total_loss)`` under the control dependency of every update.

The network's facts (blocks, strides and rates, taps, batch norm, initialisers) are this
project's (``backbones.xception``, ``heads``); ``tests/test_bench_original_graph.py`` checks
the variables against the original's list and logits and loss against the Keras model.
Left out: summaries, the loss print op, hooks, the input pipeline (a fixed batch, repeated).

Example:

>>> peer = build_training_graph(ModelConfig(model_variant="xception_65",
...     atrous_rates=(6, 12, 18), decoder_output_stride=(4,)), 65, 65, 1)
>>> peer.step_fn()()["cross_entropy"]
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Dict, List, Optional

import tensorflow as tf

from deeplab_tf.modeling.backbones import get_backbone, xception
from deeplab_tf.modeling.backbones.strides import dilated_units
from deeplab_tf.bench.train import IGNORE_LABEL, synthetic_batch
from deeplab_tf.config import ModelConfig, TrainConfig
from deeplab_tf.modeling.heads.common import HEAD_BATCH_NORM
from deeplab_tf.modeling.heads.decoder import DECODER_PROJECTION_FILTERS
from deeplab_tf.modeling.heads.logits import LOGITS_STDDEV
from deeplab_tf.modeling.layers.conv_bn import fixed_padding_amounts
from deeplab_tf.modeling.layers.resize import scale_dimension
from deeplab_tf.modeling.layers.separable_conv_bn import DEPTHWISE_STDDEV, POINTWISE_STDDEV
from deeplab_tf.modeling.scopes import last_layer_scopes, multiplier_of

v1 = tf.compat.v1
# split_separable_conv2d's initialiser stddevs (ASPP, decoder): SeparableConvBN's defaults.
HEAD_SEPARABLE_STDDEVS = (DEPTHWISE_STDDEV, POINTWISE_STDDEV)
_XCEPTION_BN = (xception.BATCH_NORM["bn_momentum"], xception.BATCH_NORM["bn_epsilon"])
_HEAD_BN = (HEAD_BATCH_NORM["bn_momentum"], HEAD_BATCH_NORM["bn_epsilon"])


@dataclasses.dataclass
class _Layers:
    """slim's conv2d / split separable conv / batch_norm as raw ops on ``get_variable``s."""

    is_training: bool
    bn_training: bool
    weight_decay: float
    use_resource: bool
    model_variables: List = dataclasses.field(default_factory=list)

    def variable(self, name, shape, initializer, trainable=True):
        collections = [v1.GraphKeys.GLOBAL_VARIABLES, v1.GraphKeys.MODEL_VARIABLES]
        if not trainable:
            collections.append(v1.GraphKeys.MOVING_AVERAGE_VARIABLES)
        var = v1.get_variable(name, shape, tf.float32, initializer, trainable=trainable,
                              collections=collections, use_resource=self.use_resource)
        self.model_variables.append(var)
        return var

    def batch_norm(self, x, decay, epsilon):
        channels = int(x.shape[-1])
        with v1.variable_scope("BatchNorm"):
            beta = self.variable("beta", [channels], v1.zeros_initializer())
            gamma = self.variable("gamma", [channels], v1.ones_initializer())
            mean = self.variable("moving_mean", [channels], v1.zeros_initializer(), False)
            variance = self.variable("moving_variance", [channels], v1.ones_initializer(),
                                     False)
            if not self.bn_training:
                return v1.nn.fused_batch_norm(x, gamma, beta, mean, variance, epsilon,
                                              is_training=False)[0]
            y, batch_mean, batch_variance = v1.nn.fused_batch_norm(
                x, gamma, beta, epsilon=epsilon, is_training=True)
            for moving, batch in ((mean, batch_mean), (variance, batch_variance)):
                # assign_moving_average(zero_debias=False): moving -= (moving - batch)(1 - d)
                update = v1.assign_sub(moving, (moving - batch) * (1.0 - decay))
                v1.add_to_collection(v1.GraphKeys.UPDATE_OPS, update)
            return y

    @staticmethod
    def _padding(x, kernel, stride, rate, fixed):
        if not (fixed and stride > 1 and kernel > 1):
            return x, "SAME"
        begin, end = fixed_padding_amounts(kernel, rate)
        return tf.pad(x, [[0, 0], [begin, end], [begin, end], [0, 0]]), "VALID"

    def conv2d(self, x, filters, kernel, scope, stride=1, stddev=None, bn=None, relu=True,
               fixed_padding=False):
        """slim.conv2d: batch norm (``bn`` = (decay, epsilon)) or, without, a bias."""
        x, padding = self._padding(x, kernel, stride, 1, fixed_padding)
        with v1.variable_scope(scope):
            initializer = (v1.truncated_normal_initializer(stddev=stddev) if stddev
                           else v1.glorot_uniform_initializer())
            weights = self.variable("weights", [kernel, kernel, int(x.shape[-1]), filters],
                                    initializer)
            if self.weight_decay:  # slim.l2_regularizer
                with tf.name_scope("Regularizer"):
                    v1.add_to_collection(v1.GraphKeys.REGULARIZATION_LOSSES, tf.multiply(
                        self.weight_decay, tf.nn.l2_loss(weights), name="l2_regularizer"))
            y = tf.nn.conv2d(x, weights, [1, stride, stride, 1], padding)
            if bn:
                y = self.batch_norm(y, *bn)
            else:
                y = tf.nn.bias_add(y, self.variable("biases", [filters], v1.zeros_initializer()))
        return tf.nn.relu(y) if relu else y

    def separable(self, x, filters, scope, stddevs, bn, relu, stride=1, rate=1,
                  fixed_padding=False):
        """The split separable conv: 3x3 depthwise (not regularised) + BN [+ ReLU], then a
        1x1 ``conv2d`` + BN [+ ReLU] (scopes ``<scope>_depthwise`` / ``<scope>_pointwise``)."""
        x, padding = self._padding(x, 3, stride, rate, fixed_padding)
        with v1.variable_scope(scope + "_depthwise"):
            weights = self.variable("depthwise_weights", [3, 3, int(x.shape[-1]), 1],
                                    v1.truncated_normal_initializer(stddev=stddevs[0]))
            y = v1.nn.depthwise_conv2d(x, weights, [1, stride, stride, 1], padding,
                                       rate=[rate, rate])
            y = self.batch_norm(y, *bn)
        if relu:
            y = tf.nn.relu(y)
        return self.conv2d(y, filters, 1, scope + "_pointwise", stddev=stddevs[1], bn=bn,
                           relu=relu)


def _xception(layers: _Layers, images, config: ModelConfig, variant: str):
    """(features, endpoints keyed relative to the network scope) of the aligned Xception."""
    std, bn = xception.WEIGHTS_STDDEV, _XCEPTION_BN
    blocks = xception.BLOCKS[variant]
    endpoints = {}
    with v1.variable_scope(variant):
        net = layers.conv2d(images, 32, 3, "entry_flow/conv1_1", stride=2, stddev=std,
                            bn=bn, fixed_padding=True)
        net = layers.conv2d(net, 64, 3, "entry_flow/conv1_2", stddev=std, bn=bn)
        strides = [stride for *_, count, stride in blocks for _ in range(count)]
        units = iter(dilated_units(strides, config.output_stride, input_stride=2))
        for index, (block, depths, skip, relu_inside, count, _) in enumerate(blocks):
            # The last block (exit_flow/block2) takes the multi-grid unit rates.
            grid = (config.multi_grid or (1, 1, 1)) if index == len(blocks) - 1 else (1, 1, 1)
            for unit in range(count):
                stride, rate = next(units)
                scope = f"{block}/unit_{unit + 1}/xception_module"
                residual = net
                for i in range(3):
                    if not relu_inside:  # pre-activation module
                        residual = tf.nn.relu(residual)
                    residual = layers.separable(
                        residual, depths[i], f"{scope}/separable_conv{i + 1}", (std, std), bn,
                        relu_inside, stride=stride if i == 2 else 1, rate=rate * grid[i],
                        fixed_padding=True)
                    endpoints[f"{scope}/separable_conv{i + 1}_pointwise"] = residual
                if skip == "conv":
                    residual += layers.conv2d(net, depths[-1], 1, f"{scope}/shortcut",
                                              stride=stride, stddev=std, bn=bn, relu=False)
                elif skip == "sum":
                    residual += net
                net = residual
    return net, endpoints


def _heads(layers: _Layers, features, endpoints, config: ModelConfig, height, width,
           dropout_keep_prob):
    """ASPP (image pooling, 1x1, separable atrous), decoder and logits at logits size."""
    depth, stds = config.aspp_convs_filters, HEAD_SEPARABLE_STDDEVS
    size = lambda stride: [scale_dimension(d, 1.0 / stride) for d in (height, width)]  # noqa: E731
    branches = []
    if config.add_image_level_feature:
        crop = config.image_pooling_crop_size or (height, width)
        pool = [scale_dimension(d, 1.0 / config.output_stride) for d in crop]
        stride = list(config.image_pooling_stride)
        pooled = v1.nn.avg_pool(features, [1, *pool, 1], [1, *stride, 1], "VALID")
        pooled = layers.conv2d(pooled, depth, 1, "image_pooling", bn=_HEAD_BN)
        branches.append(v1.image.resize_bilinear(pooled, size(config.output_stride),
                                                 align_corners=True))
    branches.append(layers.conv2d(features, depth, 1, "aspp0", bn=_HEAD_BN))
    for i, rate in enumerate(config.atrous_rates, start=1):
        branches.append(layers.separable(features, depth, f"aspp{i}", stds, _HEAD_BN, True,
                                         rate=rate))
    net = layers.conv2d(tf.concat(branches, 3), depth, 1, "concat_projection", bn=_HEAD_BN)
    if layers.is_training and dropout_keep_prob < 1.0:
        net = tf.nn.dropout(net, rate=1.0 - dropout_keep_prob)
    taps = get_backbone(config.model_variant).decoder_taps
    for stage, stride in enumerate(config.decoder_output_stride):
        suffix = f"_{stage}" if stage else ""
        with v1.variable_scope("decoder"):
            low = layers.conv2d(endpoints[taps[stride]], DECODER_PROJECTION_FILTERS, 1,
                                f"feature_projection0{suffix}", bn=_HEAD_BN)
            # The original resizes both inputs to the decoder size (the tap's: identity).
            net = tf.concat([v1.image.resize_bilinear(t, size(stride), align_corners=True)
                             for t in (net, low)], 3)
            for k in range(2):
                net = layers.separable(net, config.decoder_filters, f"decoder_conv{k}{suffix}",
                                       stds, _HEAD_BN, True)
    logits = layers.conv2d(net, config.num_classes, 1, "logits/semantic",
                           stddev=LOGITS_STDDEV, relu=False)
    stride = config.decoder_output_stride[-1] if config.decoder_output_stride \
        else config.output_stride
    return v1.image.resize_bilinear(logits, size(stride), align_corners=True)


def _check(model_config: ModelConfig, train_config: Optional[TrainConfig] = None):
    """ValueError naming the option when the peer does not build what is asked."""
    wanted = {"model_variant": (model_config.model_variant, tuple(xception.BLOCKS)),
              "aspp_with_separable_conv": (model_config.aspp_with_separable_conv, (True,)),
              "decoder_use_separable_conv": (model_config.decoder_use_separable_conv, (True,))}
    if train_config is not None:
        wanted.update(learning_policy=(train_config.learning_policy, ("poly",)),
                      optimizer=(train_config.optimizer, ("momentum",)),
                      upsample_logits=(train_config.upsample_logits, (True,)),
                      top_k_percent_pixels=(train_config.top_k_percent_pixels, (1.0,)),
                      label_weights=(train_config.label_weights, ((),)))
    for name, (value, allowed) in wanted.items():
        if value not in allowed:
            raise ValueError(f"The original-graph peer builds {name} in "
                             f"{', '.join(map(repr, allowed))} only. Received: {name}={value!r}")


def build_network(images, model_config: ModelConfig, height: int, width: int,
                  is_training: bool = False, use_resource: bool = False,
                  dropout_keep_prob: float = 0.9):
    """(logits at the logits size, model variables) of ``images`` (float32 [b, height,
    width, 3] in [0, 255]), added to the default graph; ``is_training=False``: batch norm
    on the moving statistics, no dropout."""
    _check(model_config)
    layers = _Layers(is_training, is_training and model_config.fine_tune_batch_norm,
                     model_config.weight_decay, use_resource)
    normalised = (2.0 / 255.0) * tf.cast(images, tf.float32) - 1.0  # zero_mean_unit_range
    features, endpoints = _xception(layers, normalised, model_config,
                                    model_config.model_variant)
    logits = _heads(layers, features, endpoints, model_config, height, width,
                    dropout_keep_prob)
    return logits, layers.model_variables


@dataclasses.dataclass
class TrainingGraph:
    """``step_fn`` runs it. ``fetches``: ``loss`` (``identity(total_loss)`` under every
    update), ``cross_entropy``, ``regularization``, ``learning_rate`` and ``logits`` (those
    upsampled to the labels, float32 [pixels, classes])."""

    graph: tf.Graph
    fetches: Dict[str, tf.Tensor]
    global_step: object
    model_variables: List

    def session(self, checkpoint: Optional[str] = None) -> "v1.Session":
        """A session with every variable initialised (model variables from ``checkpoint``,
        a TF1 checkpoint prefix, when given)."""
        session = v1.Session(graph=self.graph)
        with self.graph.as_default():
            restored = set(self.model_variables) if checkpoint else set()
            session.run(v1.variables_initializer(
                [v for v in v1.global_variables() if v not in restored]))
            if checkpoint:
                v1.train.Saver(self.model_variables).restore(session, checkpoint)
        return session

    def step_fn(self, session=None, fetch_logits=False) -> Callable[[], Dict[str, object]]:
        """callable() -> the ``fetches`` (values before the update; ``logits`` only with
        ``fetch_logits``): one ``Session.run`` of the training step."""
        session = session or self.session()
        fetches = {k: v for k, v in self.fetches.items() if fetch_logits or k != "logits"}
        return lambda: session.run(fetches)


def _softmax_cross_entropy(logits, labels, num_classes: int, ignore_label: int):
    """The loss of train_utils (upsample_logits, no hard mining): (loss, upsampled logits)."""
    logits = v1.image.resize_bilinear(logits, tf.shape(labels)[1:3], align_corners=True)
    labels = tf.reshape(labels, [-1])
    keep = tf.cast(tf.not_equal(labels, ignore_label), tf.float32)
    one_hot = tf.one_hot(labels, num_classes, on_value=1.0, off_value=0.0)
    logits = tf.reshape(logits, [-1, num_classes])
    pixel_losses = tf.nn.softmax_cross_entropy_with_logits(
        labels=tf.stop_gradient(one_hot), logits=logits)
    total, present = tf.reduce_sum(pixel_losses * keep), tf.reduce_sum(keep)
    loss = tf.cast(present > 0, tf.float32) * tf.math.divide(total, tf.maximum(1e-5, present))
    v1.losses.add_loss(loss)
    return loss, logits


def _multipliers(variables, train_config: TrainConfig) -> Dict[str, float]:
    """train_utils' gradient multipliers by variable name (``deeplab_tf.modeling.scopes``' rule)."""
    scopes = last_layer_scopes(train_config.last_layers_contain_logits_only)
    return {var.op.name: multiplier_of(var.op.name, scopes,
                                       train_config.last_layer_gradient_multiplier)
            for var in variables}


def build_training_graph(model_config: ModelConfig, height: int, width: int,
                         batch_size: int, train_config: Optional[TrainConfig] = None, *,
                         images=None, labels=None, ignore_label: int = IGNORE_LABEL,
                         dropout_keep_prob: float = 0.9, use_resource: bool = False,
                         seed: int = 0) -> TrainingGraph:
    """The original's training graph (see the module docstring) on one fixed batch.

    Args:
        model_config: ModelConfig of an Xception DeepLab (separable ASPP and decoder).
        height, width, batch_size: int. The training crop and batch.
        train_config: TrainConfig or None (the defaults): base_learning_rate,
            training_number_of_steps, learning_power, slow start, momentum and the gradient
            multipliers are read (poly policy, momentum optimizer only).
        images, labels: numpy float32 [b, h, w, 3] / int32 [b, h, w, 1], or None for
            ``bench.train.synthetic_batch`` (uniform images, ~5 % ignore pixels).
        ignore_label: int. Label value weighted 0.
        dropout_keep_prob: float. The ASPP projection's dropout (1.0: none).
        use_resource: bool. Resource variables instead of TF1's reference variables.
        seed: int. Graph-level seed (initialisers, dropout).
    """
    train_config = train_config or TrainConfig(train_batch_size=batch_size)
    _check(model_config, train_config)
    if images is None or labels is None:
        images, labels = synthetic_batch(batch_size, height, width, model_config.num_classes)
    graph = tf.Graph()
    with graph.as_default():
        v1.set_random_seed(seed)
        global_step = v1.get_variable(
            "global_step", [], tf.int64, v1.zeros_initializer(), trainable=False,
            collections=[v1.GraphKeys.GLOBAL_VARIABLES, v1.GraphKeys.GLOBAL_STEP],
            use_resource=use_resource)
        dataset = v1.data.Dataset.from_tensors((images, labels)).repeat()
        batch_images, batch_labels = v1.data.make_one_shot_iterator(dataset).get_next()
        logits, variables = build_network(batch_images, model_config, height, width, True,
                                          use_resource, dropout_keep_prob)
        cross_entropy, pixel_logits = _softmax_cross_entropy(
            logits, batch_labels, model_config.num_classes, ignore_label)
        regularization = v1.losses.get_regularization_loss()
        tower_loss = tf.add_n([tf.add_n(v1.losses.get_losses()), regularization])

        tc, slow = train_config, train_config.slow_start_step
        rate = v1.train.polynomial_decay(tc.base_learning_rate, tf.maximum(global_step - slow, 0),
                                         tc.training_number_of_steps - slow,
                                         end_learning_rate=0.0, power=tc.learning_power)
        learning_rate = tf.where(global_step < slow, tc.slow_start_learning_rate, rate)
        optimizer = v1.train.MomentumOptimizer(learning_rate, tc.momentum)
        grads = optimizer.compute_gradients(tower_loss)
        # _average_gradients over the clones (one here): stack, then mean.
        grads = [(tf.reduce_mean(tf.stack([g], axis=0), axis=0), v) for g, v in grads]
        multipliers = _multipliers(variables, tc)
        grads = [(g * multipliers[v.op.name] if multipliers[v.op.name] != 1.0 else g, v)
                 for g, v in grads]
        grad_updates = optimizer.apply_gradients(grads, global_step=global_step)
        update_op = tf.group(*v1.get_collection(v1.GraphKeys.UPDATE_OPS), grad_updates)
        total_loss = v1.losses.get_total_loss(add_regularization_losses=True)
        with tf.control_dependencies([update_op]):
            train_tensor = tf.identity(total_loss, name="train_op")
    fetches = {"loss": train_tensor, "cross_entropy": cross_entropy,
               "regularization": regularization, "learning_rate": learning_rate,
               "logits": pixel_logits}
    return TrainingGraph(graph, fetches, global_step, variables)
