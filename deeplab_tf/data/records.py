"""Reading TFRecord shards record by record, knowing where each record came from, and what to
do with a corrupt or truncated shard.

``read_shards(files)`` yields ``(serialized, shard path, record index)``. A shard that cannot be
read to its end (a truncated copy, a flipped bit caught by the record CRC) either stops the
input with ``<shard path>: record N is corrupt (truncated?)`` (an InvalidArgumentError whose
message holds that line; ``error_message`` extracts it) or, with ``skip_corrupt=True``, drops
the unreadable rest of that shard and logs one line on stderr with the count,
``<shard>: record N is corrupt (truncated?): skipped the rest of this shard (K record(s))``.
It never ends in a bare DataLossError.

How: when the input is built, the complete records of every shard are counted from their
length headers (a walk over 12-byte headers, no data read); each shard is then read with
errors ignored (TensorFlow's reader ends that shard at a bad record), its records numbered,
and at its end the number read is compared with that count -- all in the graph, no Python
callback in the input pipeline.
"""

from __future__ import annotations

import re
import struct
import sys
from typing import Optional, Tuple

import tensorflow as tf

_MESSAGE = "is corrupt (truncated?)"


def count_complete_records(path: str) -> Tuple[int, bool]:
    """(number of records whose length header and body fit in the file, file ends cleanly).

    Reads only the 12-byte headers (seeking over the bodies); CRCs are not checked here.
    """
    complete, clean = 0, True
    with tf.io.gfile.GFile(path, "rb") as f:
        size = f.size()
        offset = 0
        while offset < size:
            if size - offset < 12:
                return complete, False
            f.seek(offset)
            (length,) = struct.unpack("<Q", f.read(8))
            end = offset + 12 + length + 4
            if end > size:
                return complete, False
            complete += 1
            offset = end
    return complete, clean


def read_shard(path, skip_corrupt=False, expected=None) -> tf.data.Dataset:
    """``(serialized, path, index)`` of one shard's records (see the module docstring).

    Args:
        path: str or scalar string tensor. The shard.
        skip_corrupt: bool. Skip the unreadable rest of a corrupt shard (logged with its
            count) instead of stopping.
        expected: (complete records, ends cleanly) of the shard as ``count_complete_records``
            gives them, as tensors or values; None: computed now (``path`` must be a str).
    """
    if expected is None:
        expected = count_complete_records(path)
    complete, clean = (tf.cast(expected[0], tf.int64), tf.cast(expected[1], tf.bool))
    path = tf.convert_to_tensor(path, tf.string)
    records = tf.data.TFRecordDataset(path).enumerate().ignore_errors()
    end = tf.data.Dataset.from_tensors((tf.constant(-1, tf.int64), tf.constant(b"")))

    def number(count, element):
        index, record = element
        return tf.where(index < 0, count, index + 1), (index, record, count)

    def check(index, record, count):
        def at_end():
            ok = tf.logical_and(clean, count >= complete)
            lost = tf.maximum(complete - count, 0) + tf.cast(tf.logical_not(clean), tf.int64)
            where = tf.strings.join([path, ": record ", tf.strings.as_string(count), " " + _MESSAGE])
            if skip_corrupt:
                report = tf.cond(ok, tf.no_op, lambda: tf.print(
                    tf.strings.join([where, ": skipped the rest of this shard (",
                                     tf.strings.as_string(lost), " record(s))"]),
                    output_stream=sys.stderr))
            else:
                report = tf.debugging.Assert(ok, [where], summarize=1)
            with tf.control_dependencies([report]):
                return tf.identity(index)

        return tf.cond(index < 0, at_end, lambda: index), record

    numbered = records.concatenate(end).scan(tf.constant(0, tf.int64), number)
    checked = numbered.map(check).filter(lambda index, record: index >= 0)
    return checked.map(lambda index, record: (record, path, index))


def read_shards(files, skip_corrupt: bool = False, cycle_length: int = 1,
                deterministic: bool = True, shuffle_seed: Optional[int] = None,
                shuffle: bool = False) -> tf.data.Dataset:
    """``(serialized, shard path, record index)`` of several shards.

    Args:
        files: list of str. Shard paths.
        skip_corrupt: bool. Skip (and count) the unreadable rest of a corrupt shard instead
            of stopping with an error naming it.
        cycle_length: int. Shards read in parallel (interleaved); 1 reads them in order.
        deterministic: bool. Keep the interleave order fixed.
        shuffle_seed, shuffle: shuffle the file order (each iteration) first.
    """
    files = list(files)
    counts = [count_complete_records(f) for f in files]  # Headers only: cheap.
    names = tf.data.Dataset.from_tensor_slices(
        (files, [c for c, _ in counts], [clean for _, clean in counts]))
    if shuffle:
        names = names.shuffle(len(files), seed=shuffle_seed, reshuffle_each_iteration=True)
    read = lambda f, c, ok: read_shard(f, skip_corrupt, (c, ok))  # noqa: E731
    if cycle_length <= 1:
        return names.flat_map(read)
    return names.interleave(read, cycle_length=cycle_length,
                            num_parallel_calls=tf.data.AUTOTUNE, deterministic=deterministic)


# What the input pipeline's checks say (tf.debugging.Assert): "assertion failed: [<line>]".
_RECORD_LINE = re.compile(r"assertion failed: \[(.*?: record \d+ .*?)\](?:\s*\n|\s*$)")


def error_message(error: BaseException) -> Optional[str]:
    """The one line naming the shard and record of an input error, or None: ``<shard>:
    record N is corrupt (truncated?)``, or the pipeline's pixel-limit line (``<shard>:
    record N (<name>): image of P pixels (...), over the limit --max_image_pixels=L``)."""
    text = getattr(error, "message", None) or str(error)
    match = _RECORD_LINE.search(text)
    return match.group(1).strip() if match else None
