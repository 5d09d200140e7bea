"""One example: validation, serialisation as a ``tf.train.Example``, and input fingerprints.

Every example is validated before it is written: the image must decode (``data.image_io``),
the label must be a single-channel index mask (or what the converter's label reader maps to
one) of the image's size, with values in ``[0, num_classes)`` or the ignore label. A failure
is a one-line ``ConversionError`` naming the file.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
from typing import Callable, Tuple

import numpy as np
from PIL import Image

from deeplab_tf.data import image_io
from deeplab_tf.data import schema
from deeplab_tf.data.converters.errors import ConversionError
from deeplab_tf.data.converters.labels import read_index_png

_FINGERPRINT_VERSION = 2


@dataclasses.dataclass(frozen=True)
class Source:
    """One example to convert.

    Args:
        name: str. Stored as ``image/filename`` (the original stores the file stem).
        image_path: str. The image file (JPEG/PNG bytes are kept as they are; other formats
            and modes are re-encoded as RGB PNG, see ``data.image_io``).
        label_path: str. The label file.
        label_reader: picklable callable ``path -> 2-D integer array of label values``.
    """

    name: str
    image_path: str
    label_path: str
    label_reader: Callable = read_index_png


def _encode_label_png(label: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(label.astype(np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def _check_values(label: np.ndarray, path: str, num_classes: int, ignore_label: int):
    message = f"{path}: label values outside [0, {num_classes}) and ignore label {ignore_label}"
    if label.size and (label.min() < 0 or label.max() > 255):
        values = np.unique(label[(label < 0) | (label > 255)])
        raise ConversionError(f"{message}: {values[:10].tolist()}", skippable=True)
    counts = np.bincount(label.astype(np.uint8).ravel(), minlength=256).astype(np.int64)
    valid = np.zeros(256, bool)
    valid[:num_classes] = True
    valid[ignore_label] = True
    bad = np.nonzero((counts > 0) & ~valid)[0]
    if bad.size:
        raise ConversionError(f"{message}: {bad[:10].tolist()}", skippable=True)
    return counts


def encode_source(source: Source, num_classes: int, ignore_label: int,
                  max_image_pixels: int = image_io.DEFAULT_MAX_IMAGE_PIXELS
                  ) -> Tuple[bytes, np.ndarray, Tuple[str, ...]]:
    """Validates one example and serialises it.

    Returns:
        (serialized tf.train.Example bytes, per-value pixel counts int64 [256], notes: the
        conversions applied to the image, e.g. ``image_io.ALPHA_DROPPED``).

    Raises:
        ConversionError: naming the file and the problem.
    """
    try:
        source.name.encode("utf-8")
    except UnicodeEncodeError:  # a file name of undecodable bytes (os.listdir's surrogates)
        shown = os.fsencode(source.image_path).decode("utf-8", "backslashreplace")
        raise ConversionError(f"{shown}: file name is not valid UTF-8 (the example's name is "
                              "stored as UTF-8 text); rename the file", skippable=True) from None
    try:
        image = image_io.read_image(source.image_path, max_image_pixels)
    except image_io.ImageError as e:
        raise ConversionError(str(e), skippable=True) from None
    if not os.path.isfile(source.label_path):
        raise ConversionError(f"{source.label_path}: label file not found")
    label = np.asarray(source.label_reader(source.label_path))
    if label.ndim != 2:
        raise ConversionError(
            f"{source.label_path}: label must be a single-channel mask, got shape {label.shape}",
            skippable=True)
    if label.shape != (image.height, image.width):
        try:
            image_io.check_orientation(image, source.image_path, label.shape, source.label_path)
        except image_io.ImageError as e:
            raise ConversionError(str(e), skippable=True) from None
        raise ConversionError(
            f"{source.label_path}: label size {label.shape[0]}x{label.shape[1]} (HxW) differs "
            f"from image {source.image_path} size {image.height}x{image.width}", skippable=True)
    counts = _check_values(label, source.label_path, num_classes, ignore_label)
    record = schema.encode_example(image.data, image.format, source.name, image.height,
                                   image.width, _encode_label_png(label))
    return record, counts, image.notes


def reader_id(reader) -> str:
    """A description of a label reader that is stable across processes and runs."""
    if dataclasses.is_dataclass(reader):
        return repr(reader)
    return f"{getattr(reader, '__module__', '')}.{getattr(reader, '__qualname__', repr(reader))}"


def fingerprint(split, index, num_shards, sources, num_classes, ignore_label, skip_invalid,
                max_image_pixels=image_io.DEFAULT_MAX_IMAGE_PIXELS) -> str:
    """A digest of one shard's inputs (paths, sizes, modification times) and options."""
    digest = hashlib.sha256()
    header = [_FINGERPRINT_VERSION, split, index, num_shards, num_classes, ignore_label,
              bool(skip_invalid), int(max_image_pixels)]
    digest.update(json.dumps(header).encode())
    for s in sources:
        entry = [s.name, s.image_path, s.label_path, reader_id(s.label_reader)]
        for path in (s.image_path, s.label_path):
            st = os.stat(path)
            entry += [st.st_size, st.st_mtime_ns]
        digest.update(json.dumps(entry).encode())
    return digest.hexdigest()
