"""Calibration images for post-training integer TFLite models.

``representative_images`` reads a split's TFRecord shards and pre-processes each image as at
inference (``litert.prepare_image``); ``calibration_samples`` turns them into the converter's
representative dataset, checked to have the model's input shape, the first image carrying a 0
and a 255 so that the calibrated uint8 input is raw pixels (scale 1, zero point 0).
"""

from __future__ import annotations

from typing import Iterable, Tuple

import numpy as np
import tensorflow as tf

from deeplab_tf.export.errors import ExportError
from deeplab_tf.export.litert import prepare_image
from deeplab_tf.inference import InferenceSpec


class CalibrationError(ExportError):
    """Calibration images that cannot be used (one-line message)."""


def _with_full_pixel_range(sample: np.ndarray) -> np.ndarray:
    """A copy whose first pixel holds a 0 and a 255, so the calibrated input range is exactly
    [0, 255]: the uint8 input is then raw pixels (scale 1, zero point 0)."""
    sample = np.array(sample, np.float32, copy=True)
    sample[0, 0, 0, 0] = 0.0
    sample[0, 0, 0, 1] = 255.0
    return sample


def calibration_samples(images: Iterable[np.ndarray], shape):
    """The converter's representative dataset: streams ``images`` (one pass), checked to have
    ``shape``, the first with the full pixel range. The first image is checked at once."""
    iterator = iter(images)
    first = next(iterator, None)
    if first is None:
        raise CalibrationError("The calibration data yielded no image")

    def check(sample):
        if tuple(np.shape(sample)) != tuple(shape):
            raise CalibrationError(f"Representative images must have shape {list(shape)}. "
                                    f"Received: {list(np.shape(sample))}")
        return np.asarray(sample, np.float32)

    check(first)

    def samples():
        yield [_with_full_pixel_range(check(first))]
        for sample in iterator:
            yield [check(sample)]

    return samples


def representative_images(dataset_dir: str, split: str, spec: InferenceSpec,
                                         input_size: Tuple[int, int], steps: int):
    """Yields ``steps`` float32 [1, h, w, 3] calibration inputs from a split's TFRecord shards.

    Images (in file order, repeated if the split is smaller than ``steps``) are pre-processed
    with ``prepare_image``, as at inference.

    Raises:
        ValueError: no shards for the split (``data.schema.list_shards``' message) or no images.
    """
    from deeplab_tf.data import schema

    files = schema.list_shards(dataset_dir, split)
    records = tf.data.TFRecordDataset(files).map(
        lambda record: schema.decode_image(schema.parse_example(record)[schema.IMAGE_ENCODED]))
    count = 0
    for image in records.repeat().take(steps):
        prepared, _, _ = prepare_image(image.numpy(), spec, input_size)
        count += 1
        yield prepared
    if count == 0:
        raise ValueError(f"Split {split!r} in {dataset_dir} has no images")
