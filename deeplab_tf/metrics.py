"""``MeanIoU``: mean intersection-over-union as a ``keras.metrics.Metric`` for ``compile``.

It accumulates the confusion matrix of ``deeplab_tf.evaluation.metrics.confusion_matrix``
(the one deeplab-eval uses) over the batches of an epoch: ``y_pred`` logits at the model's
output stride are upsampled (align corners) to the labels and arg-maxed, pixels labelled
``ignore_label`` do not count. ``result()`` is the original's ``tf.metrics.mean_iou``: IoU
averaged over the classes that occur in the labels or the predictions; ``iou_per_class()``
gives every class's IoU (NaN for a class absent from both).

Example:

>>> model.compile(optimizer="sgd", loss=SegmentationLoss(num_classes=3),
...               metrics=[MeanIoU(num_classes=3, ignore_label=255)])
"""

from __future__ import annotations

from typing import Optional

import keras
import numpy as np
import tensorflow as tf

from deeplab_tf.evaluation import metrics as eval_metrics
from deeplab_tf.evaluation.inference import upsample_logits


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
        self.confusion.assign_add(eval_metrics.confusion_matrix(
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
        return eval_metrics.iou_per_class(self.confusion_matrix())

    def reset_state(self):
        self.confusion.assign(tf.zeros_like(self.confusion))

    def get_config(self):
        config = super().get_config()
        config.update({"num_classes": self.num_classes, "ignore_label": self.ignore_label})
        return config
