"""The training loss: pixel-wise softmax cross-entropy, as the original's train_utils.

``softmax_cross_entropy`` follows ``add_softmax_cross_entropy_loss_for_each_scale``:

* logits are upsampled (align-corners bilinear) to the label size, or with
  ``upsample_logits=False`` the labels are downsampled (align-corners nearest) to the logits;
* pixels labelled ``ignore_label`` weigh 0; ``label_weights`` weighs the others per class;
* the loss is the sum of the weighted pixel losses over the number of non-ignored pixels;
* top-k hard pixel mining keeps the ``top_k_percent_pixels`` largest weighted losses
  (annealed from all pixels over ``hard_example_mining_step`` steps) and divides by the
  number of non-zero ones.

It returns the sum and the count separately: ``global_mean_loss`` divides by the count over
the global batch (summed over the replicas), so that one distributed update equals one
device's on the global batch, in deeplab-train's loop and in Keras' ``fit`` alike. Label
values ``>= num_classes`` (other than the ignore label) weigh 0 here and are counted by
``invalid_labels``: the training loop stops with an error naming the step instead of
training on them (the original produced NaNs or silently ignored them).

``SegmentationLoss`` is the same loss as a ``keras.losses.Loss`` for ``compile``. Weight decay
is not part of it: it is the model's ``losses`` (``ModelConfig.weight_decay``).

Example:

>>> total, count = softmax_cross_entropy(logits, labels, num_classes=21, ignore_label=255)
>>> loss = global_mean_loss(total, count)
>>> model.compile(optimizer="sgd", loss=SegmentationLoss(num_classes=3, ignore_label=255))
"""

from __future__ import annotations

from typing import Optional, Sequence, Tuple

import keras
import tensorflow as tf

from deeplab_tf.errors import ConfigError
from deeplab_tf.modeling.layers.resize import resize_bilinear


def mean_loss(total, count):
    """``total / count``, 0 when ``count`` is 0 (the original's ``_div_maybe_zero``)."""
    count = tf.cast(count, tf.float32)
    return tf.cast(count > 0, tf.float32) * tf.math.divide(total, tf.maximum(count, 1e-5))


def check_label_weights(label_weights: Sequence[float], num_classes: int) -> None:
    """ConfigError unless ``label_weights`` is empty or holds one weight per class."""
    if label_weights and len(label_weights) != int(num_classes):
        raise ConfigError(
            f"label_weights needs one weight per class ({num_classes}). Received "
            f"{len(label_weights)}: label_weights={list(label_weights)}")


def global_mean_loss(total, count):
    """``mean_loss`` over the pixels of the global batch: in a replica context of a
    distribution strategy with several replicas, ``count`` is summed over the replicas first
    (outside the gradient), so that the replicas' summed gradients are one device's on the
    global batch. Call it inside the gradient tape: gradients that cross replicas
    (synchronised batch norm) then carry every replica's weight."""
    context = tf.distribute.get_replica_context()
    replicas = tf.distribute.get_strategy().num_replicas_in_sync
    if replicas > 1 and context is not None:
        count = tf.stop_gradient(context.all_reduce(tf.distribute.ReduceOp.SUM, count))
    return mean_loss(total, count)


def _is_ignored(labels, ignore_label):
    if ignore_label is None:
        return tf.zeros_like(labels, dtype=tf.bool)
    return tf.equal(labels, ignore_label)


def invalid_labels(labels, num_classes: int, ignore_label: Optional[int]):
    """(count int32, largest value int32) of label values outside ``[0, num_classes)`` that
    are not ``ignore_label``; the largest value is -1 when there are none."""
    labels = tf.cast(tf.reshape(labels, [-1]), tf.int32)
    bad = tf.logical_and(tf.logical_or(labels < 0, labels >= num_classes),
                         tf.logical_not(_is_ignored(labels, ignore_label)))
    count = tf.reduce_sum(tf.cast(bad, tf.int32))
    largest = tf.reduce_max(tf.where(bad, labels, -1))
    return count, largest


def label_weight_mask(labels, num_classes: int, ignore_label: Optional[int],
                      label_weights: Sequence[float] = ()):
    """float32 weight of each label: ``label_weights[label]`` (1 if empty), 0 for the ignore
    label and for values outside ``[0, num_classes)``."""
    labels = tf.cast(labels, tf.int32)
    valid = tf.logical_and(tf.logical_and(labels >= 0, labels < num_classes),
                           tf.logical_not(_is_ignored(labels, ignore_label)))
    if label_weights:
        check_label_weights(label_weights, num_classes)
        table = tf.constant(label_weights, tf.float32)
        weights = tf.gather(table, tf.clip_by_value(labels, 0, num_classes - 1))
    else:
        weights = tf.ones_like(labels, tf.float32)
    return tf.where(valid, weights, 0.0), valid


def softmax_cross_entropy(logits, labels, *, num_classes: int, ignore_label: Optional[int],
                          label_weights: Sequence[float] = (), upsample_logits: bool = True,
                          top_k_percent_pixels: float = 1.0, hard_example_mining_step: int = 0,
                          step=0) -> Tuple[tf.Tensor, tf.Tensor]:
    """Sum of the weighted pixel losses and the number of pixels it is averaged over.

    Args:
        logits: float [B, h, w, num_classes] at the model's output stride (any float dtype;
            the loss is computed in float32).
        labels: int [B, H, W, 1] or [B, H, W].
        num_classes: int.
        ignore_label: int or None. Pixels with this label do not count.
        label_weights: sequence of float. Per-class weights; empty for all 1.
        upsample_logits: bool. Upsample logits to the labels (else downsample labels).
        top_k_percent_pixels: float in (0, 1]. Fraction of pixels kept by hard mining.
        hard_example_mining_step: int. Steps over which that fraction anneals from 1.
        step: int or int tensor. Current training step (for the annealing).

    Returns:
        (total, count): float32 scalars; the loss is ``mean_loss(total, count)``.
    """
    logits = tf.cast(logits, tf.float32)
    labels = tf.convert_to_tensor(labels)
    if labels.shape.rank == 3:
        labels = labels[..., tf.newaxis]
    labels = tf.cast(labels, tf.int32)
    if upsample_logits:
        logits = resize_bilinear(logits, tf.shape(labels)[1:3])
    else:
        labels = tf.compat.v1.image.resize_nearest_neighbor(
            labels, tf.shape(logits)[1:3], align_corners=True)
    labels = tf.reshape(labels, [-1])
    logits = tf.reshape(logits, [-1, num_classes])
    weights, valid = label_weight_mask(labels, num_classes, ignore_label, label_weights)
    pixel_losses = tf.nn.sparse_softmax_cross_entropy_with_logits(
        labels=tf.clip_by_value(labels, 0, num_classes - 1), logits=logits)
    weighted = pixel_losses * weights
    if top_k_percent_pixels == 1.0:
        return tf.reduce_sum(weighted), tf.reduce_sum(tf.cast(valid, tf.float32))

    num_pixels = tf.cast(tf.shape(logits)[0], tf.float32)
    if hard_example_mining_step == 0:
        fraction = tf.constant(top_k_percent_pixels, tf.float32)
    else:
        ratio = tf.minimum(1.0, tf.cast(step, tf.float32) / float(hard_example_mining_step))
        fraction = ratio * top_k_percent_pixels + (1.0 - ratio)
    k = tf.cast(fraction * num_pixels, tf.int32)
    top_losses, _ = tf.nn.top_k(weighted, k=k, sorted=False)
    return (tf.reduce_sum(top_losses),
            tf.reduce_sum(tf.cast(tf.not_equal(top_losses, 0.0), tf.float32)))


def sum_over_scales(logits_by_scale: dict, labels, **kwargs) -> tf.Tensor:
    """The training loss of an image pyramid: ``global_mean_loss`` of
    ``softmax_cross_entropy(logits, labels, **kwargs)`` for each entry of ``logits_by_scale``
    (each scale's logits and the merged ones, ``DeepLab.logits_by_scale``), summed with weight
    1, as the original's ``add_softmax_cross_entropy_loss_for_each_scale``. One entry (no
    pyramid): that entry's loss."""
    return tf.add_n([global_mean_loss(*softmax_cross_entropy(logits, labels, **kwargs))
                     for logits in logits_by_scale.values()])


@keras.saving.register_keras_serializable(package="deeplab_tf")
class SegmentationLoss(keras.losses.Loss):
    """Pixel-wise softmax cross-entropy of DeepLab logits against label images.

    ``y_true``: int labels [B, H, W, 1] or [B, H, W] at the image size; ``y_pred``: logits
    [B, h, w, num_classes] at the model's output stride.

    Args:
        num_classes: int. Number of classes (logits channels).
        ignore_label: int or None. Pixels with this label do not count.
        label_weights: sequence of float. Per-class weights; empty for all 1.
        upsample_logits: bool. Upsample logits to the labels (else downsample the labels).
        top_k_percent_pixels: float in (0, 1]. Fraction of the hardest pixels kept.
        hard_example_mining_step: int. Steps over which that fraction anneals from 1; the
            step is the optimizer's ``iterations`` (``DeepLab.compile`` binds it; else
            call ``bind_step``).
        name: str.
    """

    def __init__(self, num_classes: int, ignore_label: Optional[int] = 255,
                 label_weights: Sequence[float] = (), upsample_logits: bool = True,
                 top_k_percent_pixels: float = 1.0, hard_example_mining_step: int = 0,
                 name: str = "segmentation_loss", **kwargs):
        kwargs.pop("reduction", None)
        super().__init__(name=name, reduction="sum", **kwargs)
        if int(num_classes) < 1:
            raise ConfigError(f"num_classes must be >= 1. Received: num_classes={num_classes}")
        if not 0.0 < float(top_k_percent_pixels) <= 1.0:
            raise ConfigError("top_k_percent_pixels must be in (0, 1]. Received: "
                             f"top_k_percent_pixels={top_k_percent_pixels}")
        check_label_weights(label_weights, num_classes)
        self.num_classes = int(num_classes)
        self.ignore_label = None if ignore_label is None else int(ignore_label)
        self.label_weights = tuple(float(w) for w in label_weights)
        self.upsample_logits = bool(upsample_logits)
        self.top_k_percent_pixels = float(top_k_percent_pixels)
        self.hard_example_mining_step = int(hard_example_mining_step)
        self._step = None

    def bind_step(self, step_variable) -> None:
        """Reads the training step (for the top-k annealing) from ``step_variable``."""
        self._step = step_variable

    def _current_step(self):
        if self.top_k_percent_pixels == 1.0 or self.hard_example_mining_step == 0:
            return 0
        if self._step is None:
            raise ConfigError(
                "SegmentationLoss with hard_example_mining_step="
                f"{self.hard_example_mining_step} needs the training step: compile a "
                "deeplab_tf.DeepLab with it, or call loss.bind_step(optimizer.iterations)")
        return self._step

    def call(self, y_true, y_pred):
        total, count = softmax_cross_entropy(
            y_pred, y_true, num_classes=self.num_classes, ignore_label=self.ignore_label,
            label_weights=self.label_weights, upsample_logits=self.upsample_logits,
            top_k_percent_pixels=self.top_k_percent_pixels,
            hard_example_mining_step=self.hard_example_mining_step,
            step=self._current_step())
        # Keras leaves a scalar loss unscaled and sums the replicas' gradients.
        return global_mean_loss(total, count)

    def get_config(self):
        config = super().get_config()
        config.pop("reduction", None)
        config.update({"num_classes": self.num_classes, "ignore_label": self.ignore_label,
                       "label_weights": list(self.label_weights),
                       "upsample_logits": self.upsample_logits,
                       "top_k_percent_pixels": self.top_k_percent_pixels,
                       "hard_example_mining_step": self.hard_example_mining_step})
        return config
