"""``SegmentationLoss``: the trainer's loss as a ``keras.losses.Loss`` for ``compile``.

One implementation: ``deeplab_tf.train.losses.softmax_cross_entropy`` (the original's
``add_softmax_cross_entropy_loss_for_each_scale``: logits upsampled to the labels, ignore
label, per-class label weights, top-k hard pixel mining annealed over
``hard_example_mining_step`` steps). The loss is the sum of the weighted pixel losses over
the number of counted pixels of the whole batch, as ``deeplab-train`` computes it.

Under ``MirroredStrategy`` the pixel count is summed over the replicas, so that one update
equals one device's on the global batch (the same rule as the custom loop). Weight decay is
not part of this loss: it is the model's ``losses`` (``ModelConfig.weight_decay``), which
Keras adds.

Example:

>>> model.compile(optimizer="sgd",
...               loss=SegmentationLoss(num_classes=3, ignore_label=255))
"""

from __future__ import annotations

from typing import Optional, Sequence

import keras
import tensorflow as tf

from deeplab_tf.train import losses as train_losses


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
            raise ValueError(f"num_classes must be >= 1. Received: num_classes={num_classes}")
        if not 0.0 < float(top_k_percent_pixels) <= 1.0:
            raise ValueError("top_k_percent_pixels must be in (0, 1]. Received: "
                             f"top_k_percent_pixels={top_k_percent_pixels}")
        if label_weights and len(label_weights) != int(num_classes):
            raise ValueError(
                f"label_weights needs one weight per class ({num_classes}). Received "
                f"{len(label_weights)}: label_weights={list(label_weights)}")
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
            raise ValueError(
                "SegmentationLoss with hard_example_mining_step="
                f"{self.hard_example_mining_step} needs the training step: compile a "
                "deeplab_tf.DeepLab with it, or call loss.bind_step(optimizer.iterations)")
        return self._step

    def call(self, y_true, y_pred):
        total, count = train_losses.softmax_cross_entropy(
            y_pred, y_true, num_classes=self.num_classes, ignore_label=self.ignore_label,
            label_weights=self.label_weights, upsample_logits=self.upsample_logits,
            top_k_percent_pixels=self.top_k_percent_pixels,
            hard_example_mining_step=self.hard_example_mining_step,
            step=self._current_step())
        replica_context = tf.distribute.get_replica_context()
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        if replicas > 1 and replica_context is not None:
            # Mean over the global batch's pixels. Keras leaves a scalar loss unscaled and
            # sums the replicas' gradients, so this is one device's loss on the global batch.
            count = tf.stop_gradient(
                replica_context.all_reduce(tf.distribute.ReduceOp.SUM, count))
        return train_losses.mean_loss(total, count)

    def get_config(self):
        config = super().get_config()
        config.pop("reduction", None)
        config.update({"num_classes": self.num_classes, "ignore_label": self.ignore_label,
                       "label_weights": list(self.label_weights),
                       "upsample_logits": self.upsample_logits,
                       "top_k_percent_pixels": self.top_k_percent_pixels,
                       "hard_example_mining_step": self.hard_example_mining_step})
        return config
