"""Reading TFRecord shards record by record, knowing where each record came from, and what to
do with a corrupt or truncated shard.

``read_shards(files)`` yields ``(serialized, shard path, record index)``. A shard that cannot be
read to its end (a truncated copy, a flipped bit caught by the record CRC) either stops the
input with ``<shard path>: record N is corrupt (truncated?)`` (an InvalidArgumentError whose
message holds that line; ``error_message`` extracts it) or, with ``skip_corrupt=True``, drops
the unreadable rest of that shard, logs one line and counts it (``skipped_records``). It never
ends in a bare DataLossError.

How: each shard is read with errors ignored (TensorFlow's reader then ends that shard), its
records numbered; at the end of the shard the number read is compared with the number of
complete records its headers announce (a cheap walk over the length headers, no data read).
"""

from __future__ import annotations

import re
import struct
import threading
from typing import Dict, Optional, Tuple

import tensorflow as tf
from absl import logging

_MESSAGE = "is corrupt (truncated?)"
_lock = threading.Lock()
_skipped: Dict[str, int] = {}


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


def _inspect(path, records_read, skip_corrupt):
    """py_function: is the shard fully read? Counts and logs what skip_corrupt drops."""
    path = path.numpy().decode()
    records_read = int(records_read.numpy())
    try:
        complete, clean = count_complete_records(path)
    except (OSError, struct.error, tf.errors.OpError):
        complete, clean = records_read, False
    ok = clean and records_read >= complete
    if not ok and bool(skip_corrupt.numpy()):
        lost = max(complete - records_read, 0) + (0 if clean else 1)
        with _lock:
            _skipped[path] = _skipped.get(path, 0) + lost
        logging.warning("%s: record %d %s: skipped the rest of this shard (%d record(s))",
                        path, records_read, _MESSAGE, lost)
    return ok


def read_shard(path, skip_corrupt=False) -> tf.data.Dataset:
    """``(serialized, path, index)`` of one shard's records (see the module docstring)."""
    path = tf.convert_to_tensor(path, tf.string)
    skip_corrupt = tf.constant(bool(skip_corrupt))
    records = tf.data.TFRecordDataset(path).enumerate().ignore_errors()
    end = tf.data.Dataset.from_tensors((tf.constant(-1, tf.int64), tf.constant(b"")))

    def number(count, element):
        index, record = element
        return tf.where(index < 0, count, index + 1), (index, record, count)

    def check(index, record, count):
        def at_end():
            ok = tf.py_function(_inspect, [path, count, skip_corrupt], tf.bool)
            message = tf.strings.join([path, ": record ", tf.strings.as_string(count),
                                       " " + _MESSAGE])
            with tf.control_dependencies([tf.debugging.Assert(
                    tf.logical_or(ok, skip_corrupt), [message], summarize=1)]):
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
    names = tf.data.Dataset.from_tensor_slices(list(files))
    if shuffle:
        names = names.shuffle(len(files), seed=shuffle_seed, reshuffle_each_iteration=True)
    if cycle_length <= 1:
        return names.flat_map(lambda f: read_shard(f, skip_corrupt))
    return names.interleave(lambda f: read_shard(f, skip_corrupt), cycle_length=cycle_length,
                            num_parallel_calls=tf.data.AUTOTUNE, deterministic=deterministic)


def skipped_records() -> Dict[str, int]:
    """``{shard path: records skipped}`` so far in this process (with ``skip_corrupt``)."""
    with _lock:
        return dict(_skipped)


def error_message(error: BaseException) -> Optional[str]:
    """The ``<shard>: record N is corrupt (truncated?)`` line of an input error, or None."""
    match = re.search(r"([^\[\]\n]*: record \d+ " + re.escape(_MESSAGE) + ")", str(error))
    return match.group(1).strip() if match else None
