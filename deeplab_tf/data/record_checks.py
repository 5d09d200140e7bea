"""Checks of every training and evaluation record, made before its image or label is decoded.

Records written by the converters pass them all; records written by other tools, forged or
damaged, stop the input with one line naming the shard and the record (``records.
error_message`` extracts it from the error), before a batch is formed:

* the schema, on each shard's first record, when the input is built (``check_first_records``):
  a tf.train.Example with the original DeepLab's keys and types;
* on every record, in the graph (``checked``), from the encoded headers
  (``image_headers.header_size``):

  - ``<shard>: record N (<name>): no image (image/encoded is missing or empty)``;
  - ``... no segmentation label (image/segmentation/class/encoded is missing or empty)``
    (training and evaluation; visualisation accepts unlabelled records);
  - ``... image format not read (expected PNG, JPEG, GIF, BMP or WebP)`` (and ``label format``);
  - ``... label is not an 8-bit greyscale PNG of class indices (...)``: TensorFlow decodes
    a palette PNG to the grey of its colours and scales 1/2/4/16-bit values, so such a
    label (another tool's) would train silently on wrong classes
    (``image_headers.png_format``);
  - ``... image is truncated (its end marker is missing)`` (and ``label is truncated``);
  - ``... label size HxW differs from image size HxW``;
  - ``... image HxW needs P pixels (...), over the limit --max_image_pixels=L``: the cost is
    what the record will allocate (``training_pixels``: resized, at the largest random scale,
    padded to the crop; evaluation: ``InferenceSpec.pixels``, given by the caller), and at
    least what its image and label decoders hold.

With ``DataConfig.skip_corrupt_records`` a record over the limit, truncated or in a format
not read is skipped instead (one stderr line, the first time); the others always stop the
input: the whole split is unusable as it is.
"""

from __future__ import annotations

import sys
from typing import Callable, Optional

import tensorflow as tf

from deeplab_tf.data import image_headers, schema
from deeplab_tf.data.errors import DataError
from deeplab_tf.data.preprocess import resize_to_range_size

_BYTES_KEYS = (schema.IMAGE_ENCODED, schema.IMAGE_FILENAME, schema.IMAGE_FORMAT,
               schema.LABEL_ENCODED, schema.LABEL_FORMAT)
_INT_KEYS = (schema.IMAGE_HEIGHT, schema.IMAGE_WIDTH)


def training_pixels(data_config) -> Callable:
    """``cost(height, width)`` (float64 tensor) of a training record: the image after the
    resize to range, at ``max_scale_factor``, padded to the crop size; at least the image."""
    crop_h, crop_w = (float(v) for v in data_config.train_crop_size)
    scale = float(max(data_config.max_scale_factor, 1.0))
    resizes = bool(data_config.min_resize_value or data_config.max_resize_value)

    def cost(height, width):
        height, width = tf.cast(height, tf.float64), tf.cast(width, tf.float64)
        inner_h, inner_w = height, width
        if resizes:
            size = tf.cast(resize_to_range_size(
                height, width, data_config.min_resize_value, data_config.max_resize_value,
                data_config.resize_factor, dtype=tf.float64), tf.float64)
            inner_h, inner_w = size[0], size[1]
        scaled = tf.maximum(inner_h * scale, crop_h) * tf.maximum(inner_w * scale, crop_w)
        return tf.maximum(height * width, scaled)

    return cost


def _kind(feature) -> str:
    return feature.WhichOneof("kind") or "empty"


def check_first_records(files, scans, require_label: bool) -> None:
    """Checks the schema of each shard's first record (``records.ShardScan.first_record``).

    Raises:
        DataError: ``<shard>: record 0 ...`` naming what is missing or of the wrong type.
    """
    for path, scan in zip(files, scans):
        if scan.first_record is None:
            continue
        where = f"{path}: record 0"
        try:
            features = tf.train.Example.FromString(scan.first_record).features.feature
        except Exception as error:  # noqa: BLE001 -- protobuf's DecodeError and kin
            raise DataError(f"{where} is not a tf.train.Example ({error}); expected a shard "
                            "written by deeplab-build-* or the original's build_*_data.py") \
                from None
        wrong = [f"{key} is {_kind(features[key])}" for key in _BYTES_KEYS
                 if key in features and _kind(features[key]) != "bytes_list"]
        wrong += [f"{key} is {_kind(features[key])}" for key in _INT_KEYS
                  if key in features and _kind(features[key]) != "int64_list"]
        missing = [key for key in (schema.IMAGE_ENCODED,) +
                   ((schema.LABEL_ENCODED,) if require_label else ()) if key not in features]
        if wrong or missing:
            found = ", ".join(sorted(features)[:8]) or "none"
            problems = "; ".join([f"no {key}" for key in missing] + wrong)
            raise DataError(f"{where}: not a segmentation example of the original DeepLab's "
                            f"schema ({problems}; keys found: {found})")


def _record_line(shard, index, name, *parts):
    return tf.strings.join([shard, ": record ", tf.strings.as_string(index), " (", name,
                            "): ", *parts])


def _shown(value):
    return tf.strings.as_string(tf.cast(tf.minimum(tf.cast(value, tf.float64), 2.0 ** 62),
                                        tf.int64))


def checked(records, *, cost_fn: Callable, max_pixels: int, skip: bool, require_label: bool,
            description: Optional[str] = None, deterministic: bool = True):
    """``records`` (a dataset of ``(serialized, shard, index)``) with the checks of the
    module docstring made on each record, in parallel: a record that fails stops the input
    with an InvalidArgumentError naming the shard and record, or is left out (one stderr line
    the first time). Arguments as ``record_check``'s."""
    check = record_check(cost_fn=cost_fn, max_pixels=max_pixels, skip=skip,
                         require_label=require_label, description=description)

    @tf.autograph.experimental.do_not_convert
    def with_verdict(serialized, shard, index):
        return serialized, shard, index, check(serialized, shard, index)

    @tf.autograph.experimental.do_not_convert
    def kept(serialized, shard, index, keep):
        return keep

    @tf.autograph.experimental.do_not_convert
    def record(serialized, shard, index, keep):
        return serialized, shard, index

    verdicts = records.map(with_verdict, num_parallel_calls=tf.data.AUTOTUNE,
                           deterministic=deterministic)
    return verdicts.filter(kept).map(record)


def record_check(*, cost_fn: Callable, max_pixels: int, skip: bool, require_label: bool,
                 description: Optional[str] = None):
    """A function of ``(serialized, shard, index)`` making the checks of the module
    docstring: True to keep the record, False to skip it (one stderr line the first time),
    or an InvalidArgumentError naming the shard and record.

    Args:
        cost_fn: callable(height, width) -> float64 tensor: what the record allocates.
        max_pixels: int. The limit on that cost; 0: none.
        skip: bool. Skip over-limit records and formats not read instead of stopping.
        require_label: bool. A record without a label stops the input.
        description: str or None. How the cost is computed, for the message.
    """
    if skip:  # The records already said, for as long as the dataset lives.
        said = tf.lookup.experimental.MutableHashTable(tf.string, tf.int64, default_value=0)
    description = description or "as it will be padded, scaled and resized"

    def say_once(text):
        seen = said.lookup(text)
        with tf.control_dependencies([seen]):
            mark = said.insert(text, tf.constant(1, tf.int64))
        with tf.control_dependencies([mark]):
            return tf.cond(seen > 0, tf.no_op, lambda: tf.print(
                tf.strings.join([text, ": skipped"]), output_stream=sys.stderr))

    def check(serialized, shard, index):
        fields = schema.parse_example(serialized)
        image, label = fields[schema.IMAGE_ENCODED], fields[schema.LABEL_ENCODED]
        line = lambda *parts: _record_line(shard, index, fields[schema.IMAGE_FILENAME],  # noqa: E731
                                           *parts)
        height, width, decoded = image_headers.header_size(image)
        label_h, label_w, label_decoded = image_headers.header_size(label)
        has_label = tf.strings.length(label) > 0
        label_depth, label_type = image_headers.png_format(label)
        cost = tf.maximum(cost_fn(tf.maximum(height, 1), tf.maximum(width, 1)),
                          tf.cast(tf.maximum(decoded, label_decoded), tf.float64))
        size = lambda h, w: [tf.strings.as_string(h), "x", tf.strings.as_string(w)]  # noqa: E731
        checks = [  # (bad, line, skippable), the first bad one is said
            (tf.equal(tf.strings.length(image), 0),
             line("no image (image/encoded is missing or empty)"), False),
            (tf.logical_and(tf.logical_not(has_label), require_label),
             line("no segmentation label (image/segmentation/class/encoded is missing or "
                  "empty)"), False),
            (height < 0, line(f"image format not read (expected {image_headers.FORMATS})"),
             True),
            (tf.logical_and(has_label, label_h < 0),
             line(f"label format not read (expected {image_headers.FORMATS})"), True),
            (tf.logical_and(has_label, tf.logical_or(label_depth != 8, label_type != 0)),
             line("label is not an 8-bit greyscale PNG of class indices (PNG bit depth ",
                  tf.strings.as_string(label_depth), ", colour type ",
                  tf.strings.as_string(label_type), "; -1: not a PNG): TensorFlow would "
                  "decode palette colours, not indices; write it with a deeplab-build-* tool"),
             False),
            (tf.logical_not(image_headers.is_complete(image)),
             line("image is truncated (its end marker is missing)"), True),
            (tf.logical_and(has_label, tf.logical_not(image_headers.is_complete(label))),
             line("label is truncated (its end marker is missing)"), True),
            (tf.logical_and(has_label, tf.logical_or(label_h != height, label_w != width)),
             line("label size ", *size(label_h, label_w), " differs from image size ",
                  *size(height, width)), False),
        ]
        if max_pixels:
            checks.append((cost > float(max_pixels), line(
                "image ", *size(height, width), " needs ", _shown(cost), f" pixels ({description}"
                "), over the limit --max_image_pixels=", str(max_pixels)), True))
        reports, earlier = [], tf.constant(False)
        for bad, text, skippable in checks:
            first = tf.logical_and(bad, tf.logical_not(earlier))
            earlier = tf.logical_or(earlier, bad)
            if skip and skippable:
                reports.append(tf.cond(first, lambda text=text: say_once(text), tf.no_op))
            else:
                reports.append(tf.debugging.Assert(tf.logical_not(first), [text], summarize=1))
        with tf.control_dependencies(reports):
            return tf.logical_not(earlier)

    return check
