"""The TFRecord schema of segmentation examples and the naming of their shard files.

The keys and file names are the original DeepLab's (``build_data.py`` / ``data_generator.py``),
so shards written by the original's ``build_*_data.py`` scripts are read here and shards
written here are read by the original:

- ``image/encoded``: the image file's bytes (JPEG or PNG), ``image/format`` says which;
- ``image/filename``: the example's name (the image file's stem);
- ``image/height``, ``image/width``, ``image/channels`` (3);
- ``image/segmentation/class/encoded``: a single-channel uint8 PNG of class indices;
- ``image/segmentation/class/format``: ``"png"``.

Shards are named ``<split>-%05d-of-%05d.tfrecord``.
"""

from __future__ import annotations

import glob
import os
import re
from typing import List

import tensorflow as tf

from deeplab_tf.data import image_io
from deeplab_tf.data.errors import DataError

IMAGE_ENCODED = "image/encoded"
IMAGE_FILENAME = "image/filename"
IMAGE_FORMAT = "image/format"
IMAGE_HEIGHT = "image/height"
IMAGE_WIDTH = "image/width"
IMAGE_CHANNELS = "image/channels"
LABEL_ENCODED = "image/segmentation/class/encoded"
LABEL_FORMAT = "image/segmentation/class/format"

SHARD_SUFFIX = ".tfrecord"
_SHARD_RE = re.compile(r"^(?P<split>.+)-(?P<index>\d{5})-of-(?P<count>\d{5})\.tfrecord$")


def shard_name(split: str, index: int, num_shards: int) -> str:
    """File name of one shard: ``<split>-%05d-of-%05d.tfrecord``."""
    if not 0 <= index < num_shards:
        raise DataError(f"Shard index must be in [0, {num_shards}). Received: index={index}")
    return "%s-%05d-of-%05d%s" % (split, index, num_shards, SHARD_SUFFIX)


def parse_shard_name(name: str):
    """``(split, index, num_shards)`` of a shard file name, or None if it is not one."""
    match = _SHARD_RE.match(os.path.basename(name))
    if not match:
        return None
    return match["split"], int(match["index"]), int(match["count"])


def _pattern(dataset_dir: str, split: str) -> str:
    return os.path.join(dataset_dir, f"{split}-*-of-*{SHARD_SUFFIX}")


def _glob(pattern: str) -> List[str]:
    if "://" in pattern:  # gs:// and other remote file systems.
        return sorted(tf.io.gfile.glob(pattern))
    return sorted(glob.glob(pattern))


def has_shards(dataset_dir: str, split: str) -> bool:
    """Whether any shard of ``split`` is in ``dataset_dir``."""
    return bool(_glob(_pattern(dataset_dir, split)))


def shard_pattern(dataset_dir: str, split: str) -> str:
    """The glob pattern of a split's shards; raises ValueError if no shard matches it."""
    pattern = _pattern(dataset_dir, split)
    if not has_shards(dataset_dir, split):
        raise DataError(f"No TFRecord shards for split {split!r}: nothing matches {pattern}")
    return pattern


def list_shards(dataset_dir: str, split: str) -> List[str]:
    """The sorted shard files of a split, checked to be the complete set ``0..N-1 of N``.

    Raises:
        ValueError: if no shard matches, or the ``-of-N`` set is incomplete or mixed (e.g.
            the leftovers of two conversions with different shard counts).
    """
    pattern = shard_pattern(dataset_dir, split)
    files = [f for f in _glob(pattern) if (parse_shard_name(f) or ("",))[0] == split]
    counts = {parse_shard_name(f)[2] for f in files}
    if len(counts) != 1:
        raise DataError(
            f"Shards of split {split!r} in {dataset_dir} mix shard counts {sorted(counts)}: "
            "remove the stale ones or convert again")
    (count,) = counts
    indices = sorted(parse_shard_name(f)[1] for f in files)
    if indices != list(range(count)):
        missing = sorted(set(range(count)) - set(indices))
        raise DataError(
            f"Split {split!r} in {dataset_dir} is incomplete: shards {missing} of {count} "
            f"are missing ({pattern})")
    return files


def available_splits(dataset_dir: str) -> List[str]:
    """Names of the splits that have shards in ``dataset_dir``."""
    names = {parse_shard_name(f) for f in _glob(os.path.join(dataset_dir, "*" + SHARD_SUFFIX))}
    return sorted({n[0] for n in names if n})


def _bytes_feature(value: bytes) -> tf.train.Feature:
    return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))


def _int64_feature(value: int) -> tf.train.Feature:
    return tf.train.Feature(int64_list=tf.train.Int64List(value=[int(value)]))


def encode_example(image_bytes: bytes, image_format: str, filename: str, height: int,
                   width: int, label_png: bytes) -> bytes:
    """Serialises one example (a ``tf.train.Example``) in the original's schema.

    Args:
        image_bytes: bytes. The encoded image, kept as it was (JPEG or PNG).
        image_format: str. ``"jpeg"`` or ``"png"``.
        filename: str. The example's name, usually the image file's stem.
        height: int. Image height in pixels.
        width: int. Image width in pixels.
        label_png: bytes. A single-channel uint8 PNG of class indices.
    """
    if image_format not in ("jpeg", "png"):
        raise DataError(f"image_format must be 'jpeg' or 'png'. Received: image_format={image_format!r}")
    feature = {
        IMAGE_ENCODED: _bytes_feature(image_bytes),
        IMAGE_FILENAME: _bytes_feature(filename.encode("utf-8")),
        IMAGE_FORMAT: _bytes_feature(image_format.encode("ascii")),
        IMAGE_HEIGHT: _int64_feature(height),
        IMAGE_WIDTH: _int64_feature(width),
        IMAGE_CHANNELS: _int64_feature(3),
        LABEL_ENCODED: _bytes_feature(label_png),
        LABEL_FORMAT: _bytes_feature(b"png"),
    }
    example = tf.train.Example(features=tf.train.Features(feature=feature))
    return example.SerializeToString(deterministic=True)  # Same bytes in every process.


# Defaults as the original reader's, so records missing a key still parse.
_FEATURES = {
    IMAGE_ENCODED: tf.io.FixedLenFeature((), tf.string, default_value=""),
    IMAGE_FILENAME: tf.io.FixedLenFeature((), tf.string, default_value=""),
    IMAGE_FORMAT: tf.io.FixedLenFeature((), tf.string, default_value="jpeg"),
    IMAGE_HEIGHT: tf.io.FixedLenFeature((), tf.int64, default_value=0),
    IMAGE_WIDTH: tf.io.FixedLenFeature((), tf.int64, default_value=0),
    LABEL_ENCODED: tf.io.FixedLenFeature((), tf.string, default_value=""),
    LABEL_FORMAT: tf.io.FixedLenFeature((), tf.string, default_value="png"),
}


def parse_example(serialized: tf.Tensor) -> dict:
    """Parses one serialised example into its raw fields (encoded bytes, no decoding)."""
    return tf.io.parse_single_example(serialized, _FEATURES)


def decode_image(encoded: tf.Tensor) -> tf.Tensor:
    """uint8 [H, W, 3] from JPEG or PNG bytes (sniffed from the bytes, as the original)."""
    return image_io.decode_image_tensor(encoded)


def decode_label(encoded: tf.Tensor, image: tf.Tensor, fill_value: int) -> tf.Tensor:
    """uint8 [H, W, 1] class indices; an absent label (empty bytes) becomes all ``fill_value``.

    Args:
        encoded: scalar string tensor. A single-channel PNG, or empty for an unlabelled
            example (e.g. a test split).
        image: the decoded image, whose size an absent label takes.
        fill_value: int. Value of an absent label (the ignore label).
    """
    def _decode():
        return image_io.decode_label_tensor(encoded)

    def _fill():
        shape = tf.concat([tf.shape(image)[:2], [1]], axis=0)
        return tf.fill(shape, tf.constant(fill_value, tf.uint8))

    label = tf.cond(tf.strings.length(encoded) > 0, _decode, _fill)
    label.set_shape([None, None, 1])
    return label
