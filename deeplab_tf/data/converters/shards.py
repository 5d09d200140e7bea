"""Writing one shard into the staging folder, with a marker that lets a re-run reuse it.

A shard is written as ``<staging>/<shard>.tmp-<pid>`` and renamed to ``<staging>/<shard>``
when complete; its marker ``<shard>.json`` (statistics and the inputs' fingerprint) is written
after it. A failed write (disk full, I/O error, read-only) removes the temporary file and
raises a ``ConversionError`` naming the path.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Callable, List, Optional, Sequence

import numpy as np
import tensorflow as tf

from deeplab_tf import fileio
from deeplab_tf.data import image_io
from deeplab_tf.data import schema
from deeplab_tf.data.converters.encoding import encode_source
from deeplab_tf.data.converters.errors import ConversionError


@dataclasses.dataclass(frozen=True)
class ShardJob:
    """One shard to write: its split, index, examples and the options they are checked with."""

    split: str
    index: int
    num_shards: int
    sources: tuple
    staging_dir: str
    num_classes: int
    ignore_label: int
    skip_invalid: bool
    fingerprint: str
    max_image_pixels: int = image_io.DEFAULT_MAX_IMAGE_PIXELS

    @property
    def name(self) -> str:
        return schema.shard_name(self.split, self.index, self.num_shards)

    @property
    def staged_path(self) -> str:
        return os.path.join(self.staging_dir, self.name)

    @property
    def marker_path(self) -> str:
        return self.staged_path + ".json"


def split_evenly(items: Sequence, parts: int) -> List[tuple]:
    """``items`` cut into ``parts`` consecutive chunks whose sizes differ by at most one."""
    size, extra = divmod(len(items), parts)
    chunks, start = [], 0
    for i in range(parts):
        end = start + size + (1 if i < extra else 0)
        chunks.append(tuple(items[start:end]))
        start = end
    return chunks


def _write_failed(path: str, error: BaseException) -> ConversionError:
    reason = getattr(error, "strerror", None) or " ".join(str(error).split()) or type(error).__name__
    return ConversionError(f"{path}: write failed ({reason}); earlier outputs are left as they were")


def write_shard(job: ShardJob, on_image: Optional[Callable[[], None]] = None) -> dict:
    """Writes one shard into the staging folder (atomically) and its marker; returns stats.

    Returns:
        dict with ``fingerprint``, ``num_examples``, ``counts`` (pixels per label value),
        ``skipped`` (files left out with ``skip_invalid``) and ``notes`` ({note: [count,
        first file]}: conversions applied, e.g. alpha channels dropped).
    """
    counts = np.zeros(256, np.int64)
    skipped, notes, written = [], {}, 0
    tmp = f"{job.staged_path}.tmp-{os.getpid()}"
    try:
        with tf.io.TFRecordWriter(tmp) as writer:
            for source in job.sources:
                try:
                    record, example_counts, example_notes = encode_source(
                        source, job.num_classes, job.ignore_label, job.max_image_pixels)
                except ConversionError as e:
                    if not (job.skip_invalid and e.skippable):
                        raise
                    skipped.append({"file": source.image_path, "reason": str(e)})
                else:
                    writer.write(record)
                    counts += example_counts
                    written += 1
                    for note in example_notes:
                        notes.setdefault(note, [0, source.image_path])[0] += 1
                if on_image:
                    on_image()
        os.replace(tmp, job.staged_path)
    except (OSError, tf.errors.OpError) as e:
        raise _write_failed(tmp, e) from None
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    stats = {"fingerprint": job.fingerprint, "num_examples": written,
             "counts": counts.tolist(), "skipped": skipped, "notes": notes}
    try:
        fileio.atomic_write_text(job.marker_path, json.dumps(stats))
    except OSError as e:
        raise _write_failed(job.marker_path, e) from None
    return stats


def reusable_stats(job: ShardJob) -> Optional[dict]:
    """The stats of a staged shard whose marker fingerprint matches ``job``, else None."""
    if not (os.path.isfile(job.staged_path) and os.path.isfile(job.marker_path)):
        return None
    try:
        with open(job.marker_path, encoding="utf-8") as f:
            stats = json.load(f)
    except (OSError, ValueError):  # ValueError: bad JSON, or not UTF-8 text
        return None
    return stats if stats.get("fingerprint") == job.fingerprint else None
