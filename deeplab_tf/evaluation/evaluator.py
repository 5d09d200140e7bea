"""Running a model over an evaluation split: the library behind deeplab-eval and deeplab-vis.

* ``make_predict_fn(model, eval_config, ...)``: one ``tf.function`` images -> labels that
  pads the image as the original does (mean pixel, bottom/right, to ``k * output_stride + 1``
  and at least ``eval_crop_size``), predicts (single scale, multi-scale + flip, or sliding
  window, all from ``inference``) and crops the labels back to the input size.
* ``evaluate(predict_fn, dataset, ...)``: streams a ``data.pipeline.eval_dataset`` through it,
  cropping each prediction and label to the image's original size, and accumulates the
  confusion matrix (plus one per trimap width) -> ``EvalResult``.
* ``checkpoints_iterator(directory, ...)``: yields each new checkpoint of a training run, for
  continuous evaluation (the original's ``evaluate_repeatedly``).

Example:

>>> predict = make_predict_fn(model, EvalConfig(eval_scales=(0.5, 1.0)), output_stride=16)
>>> result = evaluate(predict, eval_dataset(data_config, "val", mean_pixel=...,
...                   ignore_label=255, output_stride=16), num_classes=21, ignore_label=255)
>>> result.miou
"""

from __future__ import annotations

import dataclasses
import time
from typing import Callable, Dict, Iterator, Optional, Sequence

import numpy as np
import tensorflow as tf
from absl import logging

from deeplab_tf.config import EvalConfig
from deeplab_tf.evaluation import inference, metrics

_IMAGES_SPEC = tf.TensorSpec([None, None, None, 3], tf.float32)


def make_predict_fn(model, eval_config: EvalConfig, *, output_stride: int,
                    pad_value=inference.DEFAULT_PAD_VALUE) -> Callable:
    """A ``tf.function`` float32 images [B, H, W, 3] -> int32 labels [B, H, W], any H, W:
    ``inference.predict_labels_padded`` with the settings of ``eval_config``.

    Args:
        model: a DeepLab Keras model (or any callable images -> logits).
        eval_config: EvalConfig. Scales, flip, crop size and sliding window.
        output_stride: int. The model's encoder output stride: images are padded to
            ``k * output_stride + 1`` so that align-corners resizes line up with its grid.
        pad_value: per-channel padding (``deeplab_tf.model.mean_pixel`` of the variant).
    """

    @tf.function(input_signature=[_IMAGES_SPEC])
    def predict(images):
        return inference.predict_labels_padded(
            model, images, output_stride=output_stride, pad_value=pad_value,
            min_size=eval_config.eval_crop_size, scales=eval_config.eval_scales,
            add_flipped_images=eval_config.add_flipped_images,
            sliding_window=eval_config.sliding_window_size,
            sliding_window_overlap=eval_config.sliding_window_overlap)

    return predict


@dataclasses.dataclass
class EvalResult:
    """Confusion matrices of one evaluation (rows ground truth, columns prediction).

    Attributes:
        confusion_matrix: int64 [C, C] over all evaluated pixels.
        trimap: dict band width -> int64 [C, C] over the pixels in that band.
        num_images: int. Images evaluated.
    """

    confusion_matrix: np.ndarray
    trimap: Dict[int, np.ndarray]
    num_images: int

    @property
    def miou(self) -> float:
        return metrics.mean_iou(self.confusion_matrix)

    @property
    def pixel_accuracy(self) -> float:
        return metrics.pixel_accuracy(self.confusion_matrix)

    @property
    def iou_per_class(self) -> np.ndarray:
        return metrics.iou_per_class(self.confusion_matrix)


def evaluate(predict_fn: Callable, dataset, *, num_classes: int, ignore_label: Optional[int],
             trimap_widths: Sequence[int] = (), max_images: Optional[int] = None,
             on_prediction: Optional[Callable] = None, log_every: int = 100) -> EvalResult:
    """Accumulates confusion matrices of ``predict_fn`` over ``dataset``.

    Args:
        predict_fn: images [1, H, W, 3] -> labels [1, H, W] (``make_predict_fn``).
        dataset: iterable of dicts with "image" float32 [1, H', W', 3], "label" int32
            [1, H', W', 1], "height" and "width" int32 [1] (the original size; image and label
            may be padded beyond it), as ``data.pipeline.eval_dataset`` yields.
        num_classes: int. Number of classes.
        ignore_label: int or None. Ground-truth value not evaluated.
        trimap_widths: sequence of int. Also accumulate a matrix per trimap band width.
        max_images: int or None. Stop after this many images.
        on_prediction: callable(sample, labels) or None. Called with each sample and its
            cropped int32 [1, h, w] predictions (e.g. to save them).
        log_every: int. Log progress every this many images.

    Returns:
        EvalResult.

    Raises:
        ValueError: the dataset yielded no image.
    """
    overall = metrics.ConfusionMatrix(num_classes, ignore_label)
    trimaps = {int(w): metrics.ConfusionMatrix(num_classes, ignore_label)
               for w in trimap_widths}

    @tf.function(input_signature=[_IMAGES_SPEC, tf.TensorSpec([None, None, None, None], tf.int32),
                                  tf.TensorSpec([None], tf.int32), tf.TensorSpec([None], tf.int32)])
    def step(image, label, height, width):
        predictions = predict_fn(image)[:, :height[0], :width[0]]
        label = label[:, :height[0], :width[0], 0]
        overall.update(label, predictions)
        for band_width, matrix in trimaps.items():
            matrix.update(label, predictions,
                          mask=metrics.trimap_mask(label, band_width, ignore_label))
        return predictions

    count = 0
    start = time.time()
    for sample in dataset:
        if max_images is not None and count >= max_images:
            break
        predictions = step(sample["image"], tf.cast(sample["label"], tf.int32),
                           tf.cast(sample["height"], tf.int32), tf.cast(sample["width"], tf.int32))
        if on_prediction is not None:
            on_prediction(sample, predictions)
        count += 1
        if log_every and count % log_every == 0:
            logging.info("Evaluated %d images (%.2f s/image)", count, (time.time() - start) / count)
    if count == 0:
        raise ValueError("The evaluation split yielded no images")
    return EvalResult(confusion_matrix=overall.result(),
                      trimap={w: m.result() for w, m in trimaps.items()}, num_images=count)


def checkpoints_iterator(directory: str, latest_fn: Callable[[str], Optional[str]], *,
                         max_count: int = 0, interval_secs: float = 300,
                         poll_secs: float = 1.0, sleep=time.sleep, clock=time.time
                         ) -> Iterator[str]:
    """Yields each new checkpoint of ``directory`` as it appears (continuous evaluation).

    Yields the latest checkpoint, then waits for a newer one, at least ``interval_secs`` after
    the previous one was yielded (as the original's ``evaluate_repeatedly``), polling every
    ``poll_secs``. Intermediate checkpoints written during one evaluation are skipped.

    Args:
        directory: str. Checkpoint directory.
        latest_fn: callable(directory) -> latest checkpoint path or None
            (``deeplab_tf.checkpoints.latest_checkpoint``).
        max_count: int. Stop after this many checkpoints; <= 0: never stop.
        interval_secs: float. Minimum seconds between two yields.
        poll_secs: float. Seconds between looks for a new checkpoint.
    """
    last = None
    count = 0
    next_time = clock()
    waiting_logged = False
    while max_count <= 0 or count < max_count:
        now = clock()
        if now < next_time:
            sleep(next_time - now)
            continue
        path = latest_fn(directory)
        if path is None or path == last:
            if not waiting_logged:
                logging.info("Waiting for a new checkpoint in %s", directory)
                waiting_logged = True
            sleep(poll_secs)
            continue
        waiting_logged = False
        last = path
        count += 1
        next_time = clock() + interval_secs
        yield path
