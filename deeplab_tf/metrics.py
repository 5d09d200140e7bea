"""Segmentation metrics: confusion matrices (TF, streaming), IoU / mIoU / pixel accuracy, trimaps.

The confusion matrix is the one sufficient statistic: rows are ground-truth classes, columns
predicted classes, entry ``[i, j]`` the number of pixels of class ``i`` predicted as ``j``.
Pixels whose ground truth is ``ignore_label`` (or outside ``mask``) are not counted, as the
original eval.py does with zero weights.

* ``confusion_matrix(labels, predictions, num_classes, ...)``: pure TF function, usable in a
  ``tf.function``; ``ConfusionMatrix`` accumulates it over a dataset in a variable.
* ``iou_per_class``, ``mean_iou``, ``pixel_accuracy``: NumPy functions of a confusion matrix.
  ``mean_iou`` is the original's ``tf.metrics.mean_iou``: IoU = TP / (TP + FP + FN) averaged
  over the classes whose denominator is non-zero, i.e. classes that occur in the ground truth
  *or* in the predictions. A class that is predicted but absent from the ground truth
  therefore counts with IoU 0; a class absent from both is left out of the mean (its
  ``iou_per_class`` entry is NaN).
* ``boundary_mask`` / ``trimap_mask``: the narrow bands around label boundaries in which
  DeepLab measures boundary accuracy ("trimap", DeepLabv3+ paper section 4.4, following
  DeepLab v1/v2).
* ``MeanIoU``: the same mean IoU as a ``keras.metrics.Metric`` for ``compile``: it
  accumulates ``confusion_matrix`` over the batches of an epoch (logits at the model's output
  stride upsampled, align corners, to the labels and arg-maxed).

Example:

>>> cm = confusion_matrix([[0, 1, 255]], [[0, 0, 1]], num_classes=2, ignore_label=255)
>>> cm.numpy().tolist()
[[1, 0], [1, 0]]
>>> float(mean_iou(cm))   # class 0: 1/2, class 1: 0/1
0.25
"""

from __future__ import annotations

from typing import Optional

import keras
import numpy as np
import tensorflow as tf

from deeplab_tf.inference.multiscale import upsample_logits


def _valid_mask(labels, ignore_label, mask):
    valid = tf.ones_like(labels, dtype=tf.bool)
    if ignore_label is not None:
        valid = tf.not_equal(labels, ignore_label)
    if mask is not None:
        valid = tf.logical_and(valid, tf.cast(mask, tf.bool))
    return valid


def confusion_matrix(labels, predictions, num_classes: int, *, ignore_label: Optional[int] = None,
                     mask=None) -> tf.Tensor:
    """The [num_classes, num_classes] int64 confusion matrix of one batch.

    Args:
        labels: int tensor, any shape (e.g. [B, H, W] or [B, H, W, 1]). Ground truth.
        predictions: int tensor with the same number of elements as ``labels``.
        num_classes: int. Number of classes.
        ignore_label: int or None. Ground-truth value that is not evaluated.
        mask: bool tensor shaped like ``labels`` or None. Only pixels where it is true count.

    Returns:
        int64 tensor [num_classes, num_classes]; rows ground truth, columns prediction.

    Raises:
        tf.errors.InvalidArgumentError: (when run) a counted label or prediction lies outside
            [0, num_classes), e.g. a wrong ``ignore_label`` or class count.
    """
    labels = tf.reshape(tf.cast(labels, tf.int32), [-1])
    predictions = tf.reshape(tf.cast(predictions, tf.int32), [-1])
    valid = _valid_mask(labels, ignore_label, None if mask is None else tf.reshape(mask, [-1]))
    labels = tf.boolean_mask(labels, valid)
    predictions = tf.boolean_mask(predictions, valid)
    checks = [
        tf.debugging.assert_non_negative(
            labels, message="ground-truth label below 0 (not the ignore label)"),
        tf.debugging.assert_less(
            labels, num_classes,
            message=(f"ground-truth label >= num_classes={num_classes} and not the ignore label "
                     f"{ignore_label}: check the dataset's class count and ignore label")),
        tf.debugging.assert_non_negative(predictions, message="prediction below 0"),
        tf.debugging.assert_less(
            predictions, num_classes, message=f"prediction >= num_classes={num_classes}"),
    ]
    with tf.control_dependencies(checks):
        index = labels * num_classes + predictions
    counts = tf.math.bincount(index, minlength=num_classes * num_classes,
                              maxlength=num_classes * num_classes, dtype=tf.int64)
    return tf.reshape(counts, [num_classes, num_classes])


class ConfusionMatrix(tf.Module):
    """A confusion matrix accumulated over batches (streaming evaluation).

    Args:
        num_classes: int. Number of classes.
        ignore_label: int or None. Ground-truth value that is not evaluated.

    Example:

    >>> metric = ConfusionMatrix(num_classes=3, ignore_label=255)
    >>> metric.update(labels, predictions)          # inside or outside a tf.function
    >>> mean_iou(metric.result())
    """

    def __init__(self, num_classes: int, ignore_label: Optional[int] = None, name=None):
        super().__init__(name=name)
        if int(num_classes) < 1:
            raise ValueError(f"num_classes must be >= 1. Received: num_classes={num_classes}")
        self.num_classes = int(num_classes)
        self.ignore_label = ignore_label
        self.total = tf.Variable(tf.zeros([self.num_classes, self.num_classes], tf.int64),
                                 trainable=False, name="total_confusion_matrix")

    def update(self, labels, predictions, mask=None):
        """Adds one batch; returns the assign op (graph mode) or the updated variable."""
        return self.total.assign_add(confusion_matrix(
            labels, predictions, self.num_classes, ignore_label=self.ignore_label, mask=mask))

    def reset(self):
        self.total.assign(tf.zeros_like(self.total))

    def result(self) -> np.ndarray:
        """The accumulated matrix as a NumPy int64 array."""
        return self.total.numpy()


def iou_per_class(cm) -> np.ndarray:
    """IoU = TP / (TP + FP + FN) of every class; NaN where TP + FP + FN is 0.

    Args:
        cm: [C, C] confusion matrix (array or tensor), rows ground truth.

    A class predicted somewhere but absent from the ground truth has IoU 0 (and counts so in
    ``mean_iou``, as in ``tf.metrics.mean_iou``); the original eval.py's per-class summaries
    showed NaN for it instead.

    Returns:
        float64 array [C].
    """
    cm = np.asarray(cm, dtype=np.float64)
    tp = np.diag(cm)
    denominator = cm.sum(axis=0) + cm.sum(axis=1) - tp
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denominator > 0, tp / np.maximum(denominator, 1), np.nan)


def mean_iou(cm) -> float:
    """Mean IoU over classes present in the ground truth or the predictions (as the original's
    ``tf.metrics.mean_iou``); 0.0 for an empty matrix."""
    iou = iou_per_class(cm)
    valid = ~np.isnan(iou)
    return float(iou[valid].mean()) if valid.any() else 0.0


def pixel_accuracy(cm) -> float:
    """Fraction of counted pixels predicted correctly; 0.0 for an empty matrix."""
    cm = np.asarray(cm, dtype=np.float64)
    total = cm.sum()
    return float(np.trace(cm) / total) if total > 0 else 0.0


def boundary_mask(labels, ignore_label: Optional[int] = None) -> tf.Tensor:
    """Pixels on a label boundary.

    A pixel is a boundary pixel if its label differs from that of one of its 4-neighbours
    (so both sides of an edge are marked), or if its label is ``ignore_label`` (void regions,
    e.g. PASCAL VOC's void outlines around objects, are boundaries, as in DeepLab v1/v2's
    trimap). The image border is not a boundary.

    Args:
        labels: int tensor [B, H, W] (or [B, H, W, 1]).
        ignore_label: int or None.

    Returns:
        bool tensor [B, H, W].
    """
    labels = tf.convert_to_tensor(labels)
    if labels.shape.rank == 4:
        labels = tf.squeeze(labels, axis=3)
    labels = tf.cast(labels, tf.int32)
    vertical = tf.cast(tf.not_equal(labels[:, 1:, :], labels[:, :-1, :]), tf.int32)
    horizontal = tf.cast(tf.not_equal(labels[:, :, 1:], labels[:, :, :-1]), tf.int32)
    # Mark both pixels of every differing pair (padding puts each pair's flag on either side).
    edge = (tf.pad(vertical, [[0, 0], [0, 1], [0, 0]]) + tf.pad(vertical, [[0, 0], [1, 0], [0, 0]])
            + tf.pad(horizontal, [[0, 0], [0, 0], [0, 1]])
            + tf.pad(horizontal, [[0, 0], [0, 0], [1, 0]])) > 0
    if ignore_label is not None:
        edge = tf.logical_or(edge, tf.equal(labels, ignore_label))
    return edge


def trimap_mask(labels, width: int, ignore_label: Optional[int] = None) -> tf.Tensor:
    """The trimap band of ``width``: evaluated pixels near a label boundary.

    A pixel is in the band if its label is not ``ignore_label`` and a boundary pixel
    (``boundary_mask``) lies within ``width`` pixels of it in chessboard distance
    (``max(|dy|, |dx|) <= width``; a (2 width + 1)-square dilation of the boundary).
    Width 0 is the boundary pixels themselves.

    Args:
        labels: int tensor [B, H, W] (or [B, H, W, 1]); crop away any padding first, or the
            padding's edge counts as a boundary.
        width: int >= 0. Band half-width in pixels.
        ignore_label: int or None.

    Returns:
        bool tensor [B, H, W].
    """
    width = int(width)
    if width < 0:
        raise ValueError(f"width must be >= 0. Received: width={width}")
    labels = tf.convert_to_tensor(labels)
    if labels.shape.rank == 4:
        labels = tf.squeeze(labels, axis=3)
    band = tf.cast(boundary_mask(labels, ignore_label), tf.float32)[..., tf.newaxis]
    if width > 0:
        size = 2 * width + 1  # square dilation, done separably
        band = tf.nn.max_pool2d(band, [1, size], 1, "SAME")
        band = tf.nn.max_pool2d(band, [size, 1], 1, "SAME")
    band = tf.squeeze(band, axis=3) > 0.5
    return tf.logical_and(band, _valid_mask(labels, ignore_label, None))


@keras.saving.register_keras_serializable(package="deeplab_tf")
class MeanIoU(keras.metrics.Metric):
    """Mean IoU of DeepLab logits against label images, with the ignore label.

    Args:
        num_classes: int. Number of classes.
        ignore_label: int or None. Ground-truth value that is not evaluated.
        name: str.
    """

    def __init__(self, num_classes: int, ignore_label: Optional[int] = 255,
                 name: str = "mean_iou", **kwargs):
        super().__init__(name=name, **kwargs)
        if int(num_classes) < 1:
            raise ValueError(f"num_classes must be >= 1. Received: num_classes={num_classes}")
        self.num_classes = int(num_classes)
        self.ignore_label = None if ignore_label is None else int(ignore_label)
        self.confusion = self.add_variable(
            shape=(self.num_classes, self.num_classes), initializer="zeros", dtype="int64",
            aggregation="sum", name="confusion_matrix")

    def update_state(self, y_true, y_pred, sample_weight=None):
        if sample_weight is not None:
            raise ValueError("MeanIoU takes no sample_weight (use the ignore label). "
                             "Received a sample_weight")
        labels = tf.convert_to_tensor(y_true)
        if labels.shape.rank == 4:
            labels = labels[..., 0]
        logits = upsample_logits(y_pred, tf.shape(labels)[1:3])
        predictions = tf.argmax(logits, axis=3, output_type=tf.int32)
        self.confusion.assign_add(confusion_matrix(
            labels, predictions, self.num_classes, ignore_label=self.ignore_label))

    def result(self):
        cm = tf.cast(self.confusion, tf.float64)
        true_positives = tf.linalg.diag_part(cm)
        denominator = tf.reduce_sum(cm, 0) + tf.reduce_sum(cm, 1) - true_positives
        present = denominator > 0
        iou = tf.where(present, true_positives / tf.maximum(denominator, 1.0), 0.0)
        present_count = tf.reduce_sum(tf.cast(present, tf.float64))
        mean = tf.reduce_sum(iou) / tf.maximum(present_count, 1.0)
        return tf.cast(mean, tf.float32)

    def confusion_matrix(self) -> np.ndarray:
        """The accumulated int64 confusion matrix (rows ground truth, columns prediction)."""
        return np.asarray(keras.ops.convert_to_numpy(self.confusion))

    def iou_per_class(self) -> np.ndarray:
        """float64 [num_classes]: every class's IoU (NaN where it never occurred)."""
        return iou_per_class(self.confusion_matrix())

    def reset_state(self):
        self.confusion.assign(tf.zeros_like(self.confusion))

    def get_config(self):
        config = super().get_config()
        config.update({"num_classes": self.num_classes, "ignore_label": self.ignore_label})
        return config
