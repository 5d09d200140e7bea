"""``TrainSummaries``: TensorBoard scalars and images written by the training loop.

Scalars (every ``log_steps``): ``loss/total``, ``loss/cross_entropy``,
``loss/regularization``, ``learning_rate``, ``images_per_second``. Images (with
``--save_summaries_images``): ``samples/image``, ``samples/label`` and
``samples/prediction``, label maps coloured with the dataset's palette (the original scaled
label values to grey levels instead).

Only the chief writes; other workers get a no-op writer.

TensorFlow 2.21 no longer installs TensorBoard, whose package provides ``tf.summary.scalar``
and ``tf.summary.image``; the summaries are written here with the core ``tf.summary.write``
and the metadata TensorBoard's scalar and image plugins expect, so no extra dependency is
needed to write them (``pip install tensorboard`` to view them).
"""

from __future__ import annotations

from typing import Mapping

import numpy as np
import tensorflow as tf

from tensorflow.core.framework import summary_pb2

from deeplab_tf.data.palettes import pascal_palette

MAX_IMAGES = 3


def _metadata(plugin_name, data_class):
    metadata = summary_pb2.SummaryMetadata()
    metadata.plugin_data.plugin_name = plugin_name
    metadata.data_class = data_class
    return metadata.SerializeToString()


_SCALAR_METADATA = _metadata("scalars", summary_pb2.DATA_CLASS_SCALAR)
_IMAGE_METADATA = _metadata("images", summary_pb2.DATA_CLASS_BLOB_SEQUENCE)


def write_scalar(name, value, step):
    """A TensorBoard scalar (as ``tf.summary.scalar``) in the default summary writer."""
    return tf.summary.write(name, tf.constant(float(value), tf.float32), step=step,
                            metadata=_SCALAR_METADATA)


def write_images(name, images, step):
    """TensorBoard images (as ``tf.summary.image``): uint8 [B, H, W, 3] encoded as PNG."""
    images = np.asarray(images, np.uint8)
    height, width = images.shape[1:3]
    encoded = [tf.io.encode_png(image) for image in images]
    tensor = tf.stack([tf.constant(str(width)), tf.constant(str(height))] + encoded)
    return tf.summary.write(name, tensor, step=step, metadata=_IMAGE_METADATA)


def colorize_batch(labels, palette) -> np.ndarray:
    """uint8 [B, H, W, 3]: ``palette[label]`` (values past the palette take its last entry)."""
    labels = np.asarray(labels)
    if labels.ndim == 4:
        labels = labels[..., 0]
    palette = np.asarray(palette, np.uint8)
    return palette[np.clip(labels, 0, len(palette) - 1)]


class TrainSummaries:
    """Writes the training summaries to ``logdir`` (TensorBoard event files).

    Args:
        logdir: str. Usually ``train_logdir``.
        palette: uint8 [N, 3] or None (PASCAL VOC's colour map).
        enabled: bool. False for a no-op writer (non-chief workers).
    """

    def __init__(self, logdir: str, palette=None, enabled: bool = True):
        self.palette = pascal_palette() if palette is None else np.asarray(palette, np.uint8)
        self.writer = (tf.summary.create_file_writer(logdir) if enabled
                       else tf.summary.create_noop_writer())

    def scalars(self, step: int, values: Mapping[str, float]):
        with self.writer.as_default(step=int(step)):
            for name, value in values.items():
                write_scalar(name, value, int(step))

    def images(self, step: int, images, labels, predictions):
        """Writes up to ``MAX_IMAGES`` inputs with their ground truth and prediction.

        Args:
            images: float [B, H, W, 3] in [0, 255].
            labels: int [B, H, W(, 1)].
            predictions: int [B, H, W].
        """
        images = np.clip(np.asarray(images)[:MAX_IMAGES], 0, 255).astype(np.uint8)
        with self.writer.as_default(step=int(step)):
            write_images("samples/image", images, int(step))
            write_images("samples/label",
                         colorize_batch(np.asarray(labels)[:MAX_IMAGES], self.palette), int(step))
            write_images("samples/prediction",
                         colorize_batch(np.asarray(predictions)[:MAX_IMAGES], self.palette),
                         int(step))

    def flush(self):
        self.writer.flush()

    def close(self):
        self.writer.close()
