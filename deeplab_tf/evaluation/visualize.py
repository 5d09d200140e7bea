"""Saving predictions as images: the library behind deeplab-vis.

Layout of ``vis_logdir`` (the original vis.py's, plus overlays and ground truth)::

    segmentation_results/%06d_image.png        the input image
    segmentation_results/%06d_prediction.png   prediction in the dataset palette
    segmentation_results/%06d_overlay.png      prediction blended over the image
    segmentation_results/%06d_truth.png        ground truth in the palette (when known)
    raw_segmentation_results/<image name>.png  raw label ids (--also_save_raw_predictions)

For Cityscapes the raw predictions are written in the official label ids (``trainId ->
labelId``), ready for the benchmark server, as the original does.

``visualize_samples`` runs a predict function over ``eval_dataset`` samples or
``folder_images(image_dir)`` and writes all of the above.
"""

from __future__ import annotations

import os
from typing import Optional

import numpy as np
from PIL import Image

from deeplab_tf.data import image_io
from deeplab_tf.data.errors import DataError
from deeplab_tf.data.palettes import colorize
from deeplab_tf.fileio import atomic_path

SEMANTIC_PREDICTION_DIR = "segmentation_results"
RAW_SEMANTIC_PREDICTION_DIR = "raw_segmentation_results"
IMAGE_FORMAT = "%06d_image"
PREDICTION_FORMAT = "%06d_prediction"
OVERLAY_FORMAT = "%06d_overlay"
TRUTH_FORMAT = "%06d_truth"

_IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp")


def cityscapes_train_id_to_label_id() -> tuple:
    """The official labelId of each of the 19 Cityscapes trainIds (7, 8, 11, ..., 33), from
    ``data.cityscapes_labels`` (the one definition of the Cityscapes labels)."""
    from deeplab_tf.data.cityscapes_labels import train_id_to_label_id

    by_train_id = train_id_to_label_id()
    return tuple(by_train_id[i] for i in range(len(by_train_id)))


def save_png(path: str, array: np.ndarray) -> None:
    """Writes a uint8 [H, W] or [H, W, 3] array as PNG, atomically."""
    with atomic_path(path) as tmp:
        Image.fromarray(np.asarray(array, dtype=np.uint8)).save(tmp, format="PNG")


def overlay(image: np.ndarray, colored: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """``alpha * colored + (1 - alpha) * image``, uint8 [H, W, 3]."""
    mixed = (alpha * colored.astype(np.float32)
             + (1.0 - alpha) * image.astype(np.float32))
    return np.clip(np.round(mixed), 0, 255).astype(np.uint8)


def remap_labels(labels: np.ndarray, table) -> np.ndarray:
    """``table[label]`` for every label below ``len(table)``; other values kept."""
    labels = np.asarray(labels)
    table = np.asarray(table, dtype=np.int64)
    out = labels.astype(np.int64).copy()
    inside = (labels >= 0) & (labels < len(table))
    out[inside] = table[labels[inside]]
    return out


def raw_prediction_name(filename: str, index: int) -> str:
    """``<image name>.png`` for an image's raw prediction (extension replaced)."""
    name = os.path.basename(str(filename)) or f"{index:06d}"
    stem, ext = os.path.splitext(name)
    return (stem if ext.lower() in _IMAGE_EXTENSIONS else name) + ".png"


def _colorize_safe(labels: np.ndarray, palette: np.ndarray) -> np.ndarray:
    # Values outside the palette (e.g. an ignore label beyond a short palette) are black.
    labels = np.asarray(labels).astype(np.int64)
    palette = np.concatenate([np.asarray(palette, np.uint8), np.zeros((1, 3), np.uint8)])
    labels = np.where((labels >= 0) & (labels < len(palette) - 1), labels, len(palette) - 1)
    return colorize(labels, palette)


def save_visualization(vis_logdir: str, index: int, image: np.ndarray, prediction: np.ndarray,
                       palette: np.ndarray, truth: Optional[np.ndarray] = None) -> None:
    """Writes image, coloured prediction, overlay and (if given) coloured ground truth.

    Args:
        vis_logdir: str. Output folder (``segmentation_results/`` is made inside).
        index: int. Image number in the file names.
        image: [H, W, 3] RGB in [0, 255].
        prediction: int [H, W] labels.
        palette: uint8 [N, 3] colours by label.
        truth: int [H, W] or None. Ground truth (ignore pixels get the palette's colour).
    """
    folder = os.path.join(vis_logdir, SEMANTIC_PREDICTION_DIR)
    image = np.clip(np.round(np.asarray(image, np.float32)), 0, 255).astype(np.uint8)
    colored = _colorize_safe(prediction, palette)
    save_png(os.path.join(folder, IMAGE_FORMAT % index + ".png"), image)
    save_png(os.path.join(folder, PREDICTION_FORMAT % index + ".png"), colored)
    save_png(os.path.join(folder, OVERLAY_FORMAT % index + ".png"), overlay(image, colored))
    if truth is not None:
        save_png(os.path.join(folder, TRUTH_FORMAT % index + ".png"),
                 _colorize_safe(truth, palette))


def save_raw_prediction(vis_logdir: str, filename: str, index: int, prediction: np.ndarray,
                        train_id_to_label_id=None) -> str:
    """Writes the raw label ids (optionally remapped) as a single-channel PNG; returns the
    path. Label values must fit in uint8."""
    labels = np.asarray(prediction)
    if train_id_to_label_id is not None:
        labels = remap_labels(labels, train_id_to_label_id)
    if labels.size and (labels.min() < 0 or labels.max() > 255):
        raise ValueError(
            f"Raw predictions must be in [0, 255] for PNG. Received: max {labels.max()}")
    path = os.path.join(vis_logdir, RAW_SEMANTIC_PREDICTION_DIR,
                        raw_prediction_name(filename, index))
    save_png(path, labels.astype(np.uint8))
    return path


def folder_images(image_dir: str, pixels=None, max_pixels: int = 0):
    """Yields the images of a folder (sorted by name) as ``eval_dataset``-like samples:
    "image" float32 [1, H, W, 3], "height", "width" int32 [1], "filename" (str) [1].

    Args:
        image_dir: str. The folder.
        pixels: callable(height, width) -> pixels predicting the image allocates
            (``InferenceSpec.pixels``), or None: height x width.
        max_pixels: int. An image costing more is refused from its header, before it is
            decoded; 0: no limit.

    Raises:
        DataError: the folder holds no image file; an image is unreadable or over the limit
            (naming the file).
    """
    names = sorted(n for n in os.listdir(image_dir)
                   if os.path.splitext(n)[1].lower() in _IMAGE_EXTENSIONS)
    if not names:
        raise DataError(f"No image files ({', '.join(_IMAGE_EXTENSIONS)}) in {image_dir}")
    for name in names:
        path = os.path.join(image_dir, name)
        try:
            with open(path, "rb") as f:
                data = f.read()
        except OSError as error:
            raise DataError(f"{path}: cannot read image ({error.strerror or error})") from None
        with image_io.open_image(data, path) as image:
            width, height = image.size
            cost = float(pixels(height, width)) if pixels else float(height * width)
            if max_pixels and cost > max_pixels:
                raise DataError(f"{path}: image {height}x{width} needs {int(cost)} pixels (as "
                                "inference pads, scales and flips it), over the limit "
                                f"--max_image_pixels={max_pixels}")
            try:
                array = np.asarray(image.convert("RGB"), dtype=np.float32)
            except Exception as error:  # noqa: BLE001 -- PIL raises many types for bad files
                raise DataError(f"{path}: undecodable image ({error})") from None
        yield {"image": array[np.newaxis], "height": np.array([array.shape[0]], np.int32),
               "width": np.array([array.shape[1]], np.int32), "filename": np.array([name])}


def visualize_samples(predict_fn, samples, vis_logdir: str, palette, *,
                      ignore_label: Optional[int] = None, save_raw: bool = False,
                      train_id_to_label_id=None) -> int:
    """Predicts and saves every sample; returns how many.

    Args:
        predict_fn: images [1, H, W, 3] -> labels [1, H, W] (``evaluator.make_predict_fn``);
            given each image cropped to its height x width.
        samples: iterable of ``eval_dataset`` / ``folder_images`` dicts ("image", "height",
            "width", "filename", optionally "label").
        vis_logdir: str. Output folder.
        palette: uint8 [N, 3].
        ignore_label: int or None. A label map that is all ignore (an unlabelled split) is not
            saved as ground truth.
        save_raw: bool. Also write raw label-id PNGs (``save_raw_prediction``).
        train_id_to_label_id: sequence or None. Remapping of the raw predictions.
    """
    count = 0
    for index, sample in enumerate(samples):
        height, width = int(sample["height"][0]), int(sample["width"][0])
        image = np.asarray(sample["image"])[:, :height, :width]
        # The unpadded image, as eval and the exports predict it (predict pads it itself).
        prediction = np.asarray(predict_fn(image))[0]
        image = image[0]
        truth = None
        if "label" in sample:
            truth = np.asarray(sample["label"])[0, :height, :width, 0]
            if ignore_label is not None and (truth == ignore_label).all():
                truth = None
        save_visualization(vis_logdir, index, image, prediction, palette, truth)
        if save_raw:
            filename = np.asarray(sample["filename"]).reshape(-1)[0]
            if isinstance(filename, bytes):
                filename = filename.decode("utf-8")
            save_raw_prediction(vis_logdir, filename, index, prediction, train_id_to_label_id)
        count = index + 1
    return count
