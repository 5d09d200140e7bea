"""Running a model over an evaluation split: the library behind deeplab-eval and deeplab-vis.

* ``make_predict_fn(model, spec, model_config)``: one ``PredictFn`` images -> labels computing
  ``inference.predict`` (pad with the mean pixel to ``k * output_stride + 1`` and at least the
  crop size, single scale / multi-scale + flip / sliding window, crop back) on the fast
  formulation of the model (``inference.prepare_model``: batch norm folded by default). It
  re-prepares itself when new weights are loaded with ``deeplab_tf.checkpoints.loading``.
* ``evaluate(predict_fn, dataset, ...)``: streams a ``data.pipeline.eval_dataset`` through it,
  each image cropped to its original size first (so eval predicts exactly what an export
  predicts), and accumulates the confusion matrix (plus one per trimap width) ->
  ``EvalResult``; a progress bar on a terminal, periodic lines otherwise.
* ``checkpoints_iterator(directory, ...)``: yields each new checkpoint of a training run, for
  continuous evaluation (the original's ``evaluate_repeatedly``).

Example:

>>> spec = InferenceSpec.from_configs(model_config, EvalConfig(eval_scales=(0.5, 1.0)))
>>> predict = make_predict_fn(model, spec, model_config)
>>> result = evaluate(predict, eval_dataset(data_config, "val", mean_pixel=...,
...                   ignore_label=255, output_stride=16), num_classes=21, ignore_label=255)
>>> result.miou
"""

from __future__ import annotations

import dataclasses
import sys
import time
from typing import Callable, Dict, Iterator, Optional, Sequence

import numpy as np
import tensorflow as tf
from absl import logging

from deeplab_tf.checkpoints.loading import weights_version
from deeplab_tf.config import EvalConfig, ModelConfig
from deeplab_tf.data.errors import DataError
from deeplab_tf import inference, metrics
from deeplab_tf.inference import InferenceSpec


class PredictFn:
    """Callable float32 images [B, H, W, 3] -> int32 labels [B, H, W] (any H, W).

    ``outputs(images)`` gives both ``inference.predict`` outputs. The prepared (folded) model
    is rebuilt when the source model's weights were reloaded (``checkpoints.weights_version``).
    """

    def __init__(self, model, spec: InferenceSpec, model_config: Optional[ModelConfig] = None):
        self.model = model
        self.spec = spec
        self.model_config = model_config
        self._version = None
        self._labels = self._outputs = self._prepared = None

    def _refresh(self):
        version = weights_version(self.model)
        if version == self._version:
            return
        prepared = inference.prepare_model(self.model, self.spec, self.model_config)
        self._labels = inference.predict_function(prepared, self.spec)
        self._outputs = None  # compiled when first asked for
        self._prepared = prepared
        self._version = version

    def __call__(self, images):
        self._refresh()
        return self._labels(tf.cast(images, tf.float32))

    def outputs(self, images) -> dict:
        self._refresh()
        if self._outputs is None:
            self._outputs = inference.predict_function(
                self._prepared, self.spec, (inference.LABELS, inference.PROBABILITIES))
        return self._outputs(tf.cast(images, tf.float32))


def make_predict_fn(model, spec, model_config: Optional[ModelConfig] = None) -> PredictFn:
    """The predict function of deeplab-eval and deeplab-vis.

    Args:
        model: a DeepLab Keras model (or any callable images -> logits).
        spec: InferenceSpec, or an EvalConfig (then ``InferenceSpec.from_configs``).
        model_config: ModelConfig of ``model``: needed with an EvalConfig, and to fold batch
            norm unless the model has ``.config``.

    Raises:
        ValueError: an EvalConfig without model_config.
    """
    if isinstance(spec, EvalConfig):
        if model_config is None:
            raise ValueError("make_predict_fn with an EvalConfig needs model_config (the "
                             "model's stride and mean pixel come from it)")
        spec = InferenceSpec.from_configs(model_config, spec)
    return PredictFn(model, spec, model_config)


class Progress:
    """Evaluation progress: a one-line bar on a terminal, a plain line every ``every`` images
    (and at the end) otherwise.

    Args:
        total: int or None. Images expected (None: unknown).
        every: int. Lines between reports when not on a terminal.
        stream: file. Where to write (default stderr).
    """

    def __init__(self, total: Optional[int] = None, every: int = 100, stream=None):
        self.total = total
        self.every = max(1, int(every))
        self.stream = stream or sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.start = time.time()
        self.count = 0

    def _text(self):
        elapsed = time.time() - self.start
        rate = elapsed / self.count if self.count else 0.0
        if self.total:
            return f"Evaluated {self.count}/{self.total} images ({rate:.2f} s/image)"
        return f"Evaluated {self.count} images ({rate:.2f} s/image)"

    def update(self):
        self.count += 1
        if self.tty:
            bar = ""
            if self.total:
                done = int(30 * min(self.count, self.total) / self.total)
                bar = "[" + "#" * done + "." * (30 - done) + "] "
            self.stream.write("\r" + bar + self._text())
            self.stream.flush()
        elif self.count % self.every == 0:
            self.stream.write(self._text() + "\n")
            self.stream.flush()

    def close(self):
        if self.tty:
            self.stream.write("\n")
        elif self.count % self.every:
            self.stream.write(self._text() + "\n")
        self.stream.flush()


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
             on_prediction: Optional[Callable] = None, log_every: int = 100,
             progress_stream=None) -> EvalResult:
    """Accumulates confusion matrices of ``predict_fn`` over ``dataset``.

    Args:
        predict_fn: images [1, H, W, 3] -> labels [1, H, W] (``make_predict_fn``).
        dataset: iterable of dicts with "image" float32 [1, H', W', 3], "label" int32
            [1, H', W', 1], "height" and "width" int32 [1] (the original size; image and label
            may be padded beyond it), as ``data.pipeline.eval_dataset`` yields. Each image
            is cropped to height x width before ``predict_fn`` (which pads it itself).
        num_classes: int. Number of classes.
        ignore_label: int or None. Ground-truth value not evaluated.
        trimap_widths: sequence of int. Also accumulate a matrix per trimap band width.
        max_images: int or None. Stop after this many images.
        on_prediction: callable(sample, labels) or None. Called with each sample and its
            cropped int32 [1, h, w] predictions (e.g. to save them).
        log_every: int. Off a terminal, a progress line every this many images (on a
            terminal a bar); 0: silent.
        progress_stream: file or None. Where progress goes (default stderr).

    Returns:
        EvalResult.

    Raises:
        ValueError: the dataset yielded no image.
    """
    overall = metrics.ConfusionMatrix(num_classes, ignore_label)
    trimaps = {int(w): metrics.ConfusionMatrix(num_classes, ignore_label)
               for w in trimap_widths}

    @tf.function(input_signature=[tf.TensorSpec([None, None, None], tf.int32),
                                  tf.TensorSpec([None, None, None], tf.int32)])
    def accumulate(label, predictions):
        overall.update(label, predictions)
        for band_width, matrix in trimaps.items():
            matrix.update(label, predictions,
                          mask=metrics.trimap_mask(label, band_width, ignore_label))

    progress = Progress(total=max_images, every=log_every, stream=progress_stream)
    count = 0
    for sample in dataset:
        if max_images is not None and count >= max_images:
            break
        height, width = int(sample["height"][0]), int(sample["width"][0])
        image = tf.cast(sample["image"], tf.float32)[:, :height, :width]
        predictions = tf.cast(predict_fn(image), tf.int32)
        label = tf.cast(sample["label"], tf.int32)[:, :height, :width, 0]
        accumulate(label, predictions)
        if on_prediction is not None:
            on_prediction(sample, predictions)
        count += 1
        if log_every:
            progress.update()
    if log_every:
        progress.close()
    if count == 0:
        raise DataError("The evaluation split yielded no images")
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
            (``deeplab_tf.checkpoints.loading.latest_checkpoint``).
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
