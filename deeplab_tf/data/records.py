"""Reading TFRecord shards record by record, knowing where each record came from, and what to
do with a corrupt or truncated shard.

``read_shards(files)`` yields ``(serialized, shard path, record index)``. A shard that cannot be
read to its end either stops the input with ``<shard path>: record N is corrupt (<why>)`` (an
InvalidArgumentError whose message holds that line; ``error_message`` extracts it) or, with
``skip_corrupt=True``, drops the unreadable rest of that shard and logs one line on stderr with
the count, ``<shard>: record N is corrupt (<why>): skipped the rest of this shard (K
record(s))``. It never ends in a bare DataLossError, and never in a crash: why is one of

* ``length L beyond the end of the file`` (a truncated copy, or a forged length),
* ``length L is over the 2 GiB a record can hold`` (no tf.train.Example is that large),
* ``length checksum mismatch`` / ``truncated record header`` / ``checksum mismatch`` (a flipped
  bit in a header, the file cut inside a header, a body whose CRC fails).

How: when the input is built, every shard's record headers are walked in Python (12 bytes
each, the length's CRC checked, no body read): the records that fit in the file are counted
and the first bad header is described (``scan_shard``). TensorFlow's reader then reads only
those records (``take``), so a forged length is never allocated; a body whose CRC fails ends
the shard early (errors ignored); at the shard's end the number read is compared with the
count -- all in the graph, no Python callback in the input pipeline.
"""

from __future__ import annotations

import dataclasses
import re
import struct
import sys
from typing import Optional, Tuple

import tensorflow as tf

from deeplab_tf.data.errors import DataError
from deeplab_tf.errors import error_text

_MESSAGE = "is corrupt"
MAX_RECORD_BYTES = 2 ** 31 - 1  # protobuf's limit: no tf.train.Example is longer
_FIRST_RECORD_BYTES = 1 << 28  # the first record is kept (schema checks) up to this size


def _crc32c_table():
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
        table.append(crc)
    return table


_CRC32C = _crc32c_table()


def masked_crc32c(data: bytes) -> int:
    """TFRecord's masked CRC-32C of ``data`` (used on the 8 length bytes of each header)."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc = _CRC32C[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    crc ^= 0xFFFFFFFF
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


@dataclasses.dataclass(frozen=True)
class ShardScan:
    """What the headers of a shard say (``scan_shard``).

    Attributes:
        complete: int. Records whose header is sound and whose body fits in the file.
        problem: str. Why record ``complete`` cannot be read ("" if the file ends there).
        first_record: bytes or None. The first record's body (None if there is none or it is
            larger than 256 MiB), for schema checks.
    """

    complete: int
    problem: str
    first_record: Optional[bytes] = None


def scan_shard(path: str) -> ShardScan:
    """Walks a shard's record headers (see the module docstring); reads no body but the
    first.

    Raises:
        DataError: the shard cannot be read (a folder, unreadable), naming it.
    """
    try:
        return _scan(path)
    except (OSError, tf.errors.OpError) as error:
        reason = error_text(error).replace(f"{path}; ", "")  # TensorFlow names the path
        raise DataError(f"{path}: cannot read this shard ({reason})") from None


def _scan(path: str) -> ShardScan:
    complete, first = 0, None
    with tf.io.gfile.GFile(path, "rb") as f:
        size = f.size()
        offset = 0
        while offset < size:
            if size - offset < 12:
                return ShardScan(complete, f"truncated record header ({size - offset} bytes "
                                           "after the last record)", first)
            f.seek(offset)
            header = f.read(12)
            (length,) = struct.unpack("<Q", header[:8])
            if masked_crc32c(header[:8]) != struct.unpack("<I", header[8:])[0]:
                return ShardScan(complete, "length checksum mismatch", first)
            end = offset + 12 + length + 4
            if end > size:
                return ShardScan(complete, f"length {length} beyond the end of the file",
                                 first)
            if length > MAX_RECORD_BYTES:
                return ShardScan(complete, f"length {length} is over the 2 GiB a record can "
                                           "hold", first)
            if complete == 0 and length <= _FIRST_RECORD_BYTES:
                first = f.read(length)
            complete += 1
            offset = end
    return ShardScan(complete, "", first)


def count_complete_records(path: str) -> Tuple[int, bool]:
    """(records whose header is sound and body fits in the file, the file ends cleanly)."""
    scan = scan_shard(path)
    return scan.complete, not scan.problem


def read_shard(path, skip_corrupt=False, expected=None) -> tf.data.Dataset:
    """``(serialized, path, index)`` of one shard's records (see the module docstring).

    Args:
        path: str or scalar string tensor. The shard.
        skip_corrupt: bool. Skip the unreadable rest of a corrupt shard (logged with its
            count) instead of stopping.
        expected: (complete records, problem) of the shard as ``scan_shard`` gives them, as
            tensors or values; None: computed now (``path`` must be a str).
    """
    if expected is None:
        scan = scan_shard(path)
        expected = (scan.complete, scan.problem)
    complete = tf.cast(expected[0], tf.int64)
    problem = tf.convert_to_tensor(expected[1], tf.string)
    path = tf.convert_to_tensor(path, tf.string)
    # Only the records whose headers were checked: a forged length is never read.
    records = tf.data.TFRecordDataset(path).take(complete).enumerate().ignore_errors()
    end = tf.data.Dataset.from_tensors((tf.constant(-1, tf.int64), tf.constant(b"")))

    def number(count, element):
        index, record = element
        return tf.where(index < 0, count, index + 1), (index, record, count)

    def check(index, record, count):
        def at_end():
            short = count < complete
            ok = tf.logical_and(tf.logical_not(short), tf.equal(problem, ""))
            lost = tf.maximum(complete - count, 0) + tf.cast(problem != "", tf.int64)
            why = tf.where(short, tf.constant("checksum mismatch"), problem)
            where = tf.strings.join([path, ": record ", tf.strings.as_string(count),
                                     " " + _MESSAGE + " (", why, ")"])
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
                shuffle: bool = False, scans=None) -> tf.data.Dataset:
    """``(serialized, shard path, record index)`` of several shards.

    Args:
        files: list of str. Shard paths.
        skip_corrupt: bool. Skip (and count) the unreadable rest of a corrupt shard instead
            of stopping with an error naming it.
        cycle_length: int. Shards read in parallel (interleaved); 1 reads them in order.
        deterministic: bool. Keep the interleave order fixed.
        shuffle_seed, shuffle: shuffle the file order (each iteration) first.
        scans: list of ShardScan or None. The files' ``scan_shard`` (None: scanned now).
    """
    files = list(files)
    scans = scans or [scan_shard(f) for f in files]  # Headers only: cheap.
    names = tf.data.Dataset.from_tensor_slices(
        (files, [s.complete for s in scans], [s.problem for s in scans]))
    if shuffle:
        names = names.shuffle(len(files), seed=shuffle_seed, reshuffle_each_iteration=True)
    read = lambda f, c, problem: read_shard(f, skip_corrupt, (c, problem))  # noqa: E731
    if cycle_length <= 1:
        return names.flat_map(read)
    return names.interleave(read, cycle_length=cycle_length,
                            num_parallel_calls=tf.data.AUTOTUNE, deterministic=deterministic)


# What the input pipeline's checks say (tf.debugging.Assert): "assertion failed: [<line>]".
_RECORD_LINE = re.compile(r"assertion failed: \[(.*?: record \d+ .*?)\](?:\s*\n|\s*$)")


def error_message(error: BaseException) -> Optional[str]:
    """The one line naming the shard and record of an input error, or None: ``<shard>:
    record N is corrupt (<why>)``, or one of the pipeline's record checks (``<shard>:
    record N (<name>): ...``, ``data.record_checks``)."""
    text = getattr(error, "message", None) or str(error)
    match = _RECORD_LINE.search(text)
    return match.group(1).strip() if match else None
