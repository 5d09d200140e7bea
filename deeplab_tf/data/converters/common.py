"""Shared machinery of the dataset converters: validation, sharded parallel atomic writing,
progress and the manifest.

A converter lists its examples (``Source``: a name, an image file, a label file and how to read
that label) per split and calls ``convert_dataset``, which

1. checks that every listed file exists (a missing one is a ``ConversionError`` naming it);
2. writes each shard in a worker process (``num_workers``; each worker writes whole shards)
   into ``<output_dir>/.deeplab_staging/``, first as ``<shard>.tmp-<pid>``, renamed to the
   shard's name when complete, with a marker ``<shard>.json`` (its statistics and a
   fingerprint of its inputs: paths, sizes, modification times, options);
3. when every shard of every split is done, moves the shards to their final names
   ``<split>-%05d-of-%05d.tfrecord`` in ``output_dir`` (replacing an older conversion of
   those splits) and writes ``manifest.json`` last.

So shards never appear under their final name until the whole conversion succeeded, and a
failed or interrupted run leaves no final shard or manifest behind. A re-run resumes: staged
shards whose marker fingerprint still matches are reused, the others are written again.

Every example is validated before it is written: the image must decode, the label must be a
single-channel index mask (or what the converter's label reader maps to one), of the image's
size, with values in ``[0, num_classes)`` or the ignore label. A failure is a one-line
``ConversionError`` naming the file; with ``skip_invalid`` such an example is left out
instead and listed in the manifest.
"""

from __future__ import annotations

import dataclasses
import glob
import hashlib
import io
import json
import multiprocessing
import os
import shutil
import sys
import time
from typing import Callable, Dict, List, Mapping, Optional, Sequence

import numpy as np
import tensorflow as tf
from PIL import Image

from deeplab_tf.data import manifest as manifest_lib
from deeplab_tf.data import schema

STAGING_DIR = ".deeplab_staging"
_FINGERPRINT_VERSION = 1


class ConversionError(ValueError):
    """Bad input found during conversion; the message is one line naming the file.

    A ValueError, so the command-line tools report it as ``error: <message>`` (exit 1).

    Attributes:
        skippable: bool. True for a problem with one example's content (undecodable, size
            mismatch, bad label values, wrong mask type), which ``skip_invalid`` may skip.
    """

    def __init__(self, message: str, skippable: bool = False):
        super().__init__(" ".join(str(message).split()))  # Always one line.
        self.skippable = skippable

    def __reduce__(self):  # Keep ``skippable`` across processes.
        return (type(self), (str(self), self.skippable))


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split()) or type(error).__name__


# ----------------------------------------------------------------------------- label readers
# Label readers are picklable callables ``reader(path) -> 2-D integer array`` (sent to worker
# processes with the examples).


def read_index_png(path: str) -> np.ndarray:
    """Class indices of a single-channel mask: greyscale, or palette (the palette index is the
    class, as VOC's ``SegmentationClass`` PNGs), or 16-bit.

    Raises:
        ConversionError: for an RGB(A) mask (colours, not indices) or an undecodable file.
    """
    try:
        with Image.open(path) as image:
            image.load()
            mode = image.mode
            if mode in ("RGB", "RGBA", "LA", "CMYK", "YCbCr", "HSV", "LAB"):
                raise ConversionError(
                    f"{path}: is a {mode} colour mask where a single-channel index mask was "
                    "expected", skippable=True)
            if mode == "F":
                raise ConversionError(f"{path}: is a floating-point image, not an index mask",
                                      skippable=True)
            return np.asarray(image)
    except ConversionError:
        raise
    except Exception as e:  # noqa: BLE001 -- PIL raises many types for bad files.
        raise ConversionError(f"{path}: undecodable label image ({_one_line(e)})",
                              skippable=True) from None


@dataclasses.dataclass(frozen=True)
class LookupLabels:
    """Maps a stored label value ``v`` to ``table[v]``; values with ``table[v] < 0`` are errors.

    Args:
        table: tuple of int, indexed by the stored value.
        what: str. What the stored values are, for error messages (e.g. "Cityscapes labelId").
    """

    table: tuple
    what: str = "label"

    def __call__(self, path: str) -> np.ndarray:
        raw = read_index_png(path).astype(np.int64)
        table = np.asarray(self.table, np.int64)
        unknown = np.unique(raw[(raw < 0) | (raw >= len(table))])
        if unknown.size == 0:
            mapped = table[raw]
            unknown = np.unique(raw[mapped < 0])
        if unknown.size:
            raise ConversionError(
                f"{path}: {self.what} values not in the label table: {unknown[:10].tolist()}",
                skippable=True)
        return mapped


@dataclasses.dataclass(frozen=True)
class ColorLabels:
    """Maps mask colours to label values (RGB or palette masks; a palette is given).

    Args:
        colors: tuple of ((r, g, b), value) pairs.
    """

    colors: tuple

    def __call__(self, path: str) -> np.ndarray:
        try:
            with Image.open(path) as image:
                rgb = np.asarray(image.convert("RGB"), dtype=np.int64)
        except Exception as e:  # noqa: BLE001
            raise ConversionError(f"{path}: undecodable label image ({_one_line(e)})",
                                  skippable=True) from None
        codes = (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]
        keys = np.asarray([(r << 16) | (g << 8) | b for (r, g, b), _ in self.colors], np.int64)
        values = np.asarray([v for _, v in self.colors], np.int64)
        order = np.argsort(keys)
        keys, values = keys[order], values[order]
        position = np.clip(np.searchsorted(keys, codes), 0, len(keys) - 1)
        known = keys[position] == codes
        if not known.all():
            bad = np.unique(codes[~known])[:5]
            shown = ", ".join(f"({c >> 16}, {(c >> 8) & 255}, {c & 255})" for c in bad)
            raise ConversionError(f"{path}: mask colours not in the palette: {shown}",
                                  skippable=True)
        return values[position]


# ----------------------------------------------------------------------------- examples


@dataclasses.dataclass(frozen=True)
class Source:
    """One example to convert.

    Args:
        name: str. Stored as ``image/filename`` (the original stores the file stem).
        image_path: str. The image file (JPEG/PNG bytes are kept as they are; other formats
            are re-encoded as PNG).
        label_path: str. The label file.
        label_reader: picklable callable ``path -> 2-D integer array of label values``.
    """

    name: str
    image_path: str
    label_path: str
    label_reader: Callable = read_index_png


def _read_image(path: str):
    """(bytes to store, format, height, width) after checking the image decodes."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise ConversionError(f"{path}: cannot read image ({e.strerror})") from None
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.load()
            width, height = image.size
            if image.format == "JPEG" and image.mode in ("L", "RGB"):
                return data, "jpeg", height, width
            if image.format == "PNG" and image.mode in ("L", "LA", "RGB", "RGBA"):
                return data, "png", height, width
            buffer = io.BytesIO()  # Other formats and modes: store as an RGB PNG.
            image.convert("RGB").save(buffer, format="PNG")
            return buffer.getvalue(), "png", height, width
    except Exception as e:  # noqa: BLE001 -- PIL raises many types for bad files.
        raise ConversionError(f"{path}: undecodable image ({_one_line(e)})",
                              skippable=True) from None


def _encode_label_png(label: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(label.astype(np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def encode_source(source: Source, num_classes: int, ignore_label: int):
    """Validates one example and serialises it.

    Returns:
        (serialized tf.train.Example bytes, per-value pixel counts int64 [256]).

    Raises:
        ConversionError: naming the file and the problem.
    """
    image_bytes, image_format, height, width = _read_image(source.image_path)
    if not os.path.isfile(source.label_path):
        raise ConversionError(f"{source.label_path}: label file not found")
    label = np.asarray(source.label_reader(source.label_path))
    if label.ndim != 2:
        raise ConversionError(
            f"{source.label_path}: label must be a single-channel mask, got shape {label.shape}",
            skippable=True)
    if label.shape != (height, width):
        raise ConversionError(
            f"{source.label_path}: label size {label.shape[0]}x{label.shape[1]} (HxW) differs "
            f"from image {source.image_path} size {height}x{width}", skippable=True)
    if label.size and (label.min() < 0 or label.max() > 255):
        values = np.unique(label[(label < 0) | (label > 255)])
        raise ConversionError(
            f"{source.label_path}: label values outside [0, {num_classes}) and ignore label "
            f"{ignore_label}: {values[:10].tolist()}", skippable=True)
    counts = np.bincount(label.astype(np.uint8).ravel(), minlength=256).astype(np.int64)
    valid = np.zeros(256, bool)
    valid[:num_classes] = True
    valid[ignore_label] = True
    bad = np.nonzero((counts > 0) & ~valid)[0]
    if bad.size:
        raise ConversionError(
            f"{source.label_path}: label values outside [0, {num_classes}) and ignore label "
            f"{ignore_label}: {bad[:10].tolist()}", skippable=True)
    record = schema.encode_example(image_bytes, image_format, source.name, height, width,
                                   _encode_label_png(label))
    return record, counts


# ----------------------------------------------------------------------------- shard jobs


@dataclasses.dataclass(frozen=True)
class ShardJob:
    split: str
    index: int
    num_shards: int
    sources: tuple
    staging_dir: str
    num_classes: int
    ignore_label: int
    skip_invalid: bool
    fingerprint: str

    @property
    def name(self) -> str:
        return schema.shard_name(self.split, self.index, self.num_shards)

    @property
    def staged_path(self) -> str:
        return os.path.join(self.staging_dir, self.name)

    @property
    def marker_path(self) -> str:
        return self.staged_path + ".json"


def _write_json_atomic(path: str, value) -> None:
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(value, f)
    os.replace(tmp, path)


_progress_queue = None  # Set in worker processes by _init_worker.


def _init_worker(queue) -> None:
    global _progress_queue
    _progress_queue = queue


def write_shard(job: ShardJob, on_image: Optional[Callable[[], None]] = None) -> dict:
    """Writes one shard into the staging folder (atomically) and its marker; returns stats."""
    if on_image is None and _progress_queue is not None:
        on_image = lambda: _progress_queue.put(1)  # noqa: E731
    counts = np.zeros(256, np.int64)
    skipped, written = [], 0
    tmp = f"{job.staged_path}.tmp-{os.getpid()}"
    try:
        with tf.io.TFRecordWriter(tmp) as writer:
            for source in job.sources:
                try:
                    record, example_counts = encode_source(source, job.num_classes, job.ignore_label)
                except ConversionError as e:
                    if not (job.skip_invalid and e.skippable):
                        raise
                    skipped.append({"file": source.image_path, "reason": str(e)})
                else:
                    writer.write(record)
                    counts += example_counts
                    written += 1
                if on_image:
                    on_image()
        os.replace(tmp, job.staged_path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    stats = {
        "fingerprint": job.fingerprint,
        "num_examples": written,
        "counts": counts.tolist(),
        "skipped": skipped,
    }
    _write_json_atomic(job.marker_path, stats)
    return stats


def _reader_id(reader) -> str:
    """A description of a label reader that is stable across processes and runs."""
    if dataclasses.is_dataclass(reader):
        return repr(reader)
    return f"{getattr(reader, '__module__', '')}.{getattr(reader, '__qualname__', repr(reader))}"


def _fingerprint(split, index, num_shards, sources, num_classes, ignore_label, skip_invalid):
    digest = hashlib.sha256()
    header = [_FINGERPRINT_VERSION, split, index, num_shards, num_classes, ignore_label,
              bool(skip_invalid)]
    digest.update(json.dumps(header).encode())
    for s in sources:
        entry = [s.name, s.image_path, s.label_path, _reader_id(s.label_reader)]
        for path in (s.image_path, s.label_path):
            st = os.stat(path)
            entry += [st.st_size, st.st_mtime_ns]
        digest.update(json.dumps(entry).encode())
    return digest.hexdigest()


def _reusable_stats(job: ShardJob) -> Optional[dict]:
    if not (os.path.isfile(job.staged_path) and os.path.isfile(job.marker_path)):
        return None
    try:
        with open(job.marker_path, encoding="utf-8") as f:
            stats = json.load(f)
    except (OSError, json.JSONDecodeError):
        return None
    return stats if stats.get("fingerprint") == job.fingerprint else None


# ----------------------------------------------------------------------------- progress


class Progress:
    """A one-line progress bar on stderr (redrawn in place on a terminal, else a line per 10%)."""

    def __init__(self, total: int, description: str, enabled: bool = True, stream=None,
                 listener: Optional[Callable[[int], None]] = None):
        self.total = max(int(total), 0)
        self.listener = listener
        self.description = description
        self.enabled = enabled and self.total > 0
        self.stream = stream or sys.stderr
        self.done = 0
        self._start = time.monotonic()
        self._last_draw = 0.0
        self._last_decile = -1
        self._tty = hasattr(self.stream, "isatty") and self.stream.isatty()

    def update(self, n: int = 1) -> None:
        self.done += n
        if self.listener is not None:
            self.listener(n)
        if not self.enabled:
            return
        now = time.monotonic()
        if self._tty and (now - self._last_draw > 0.1 or self.done >= self.total):
            self._last_draw = now
            self.stream.write("\r" + self._line(now))
            self.stream.flush()
        elif not self._tty and self.done * 10 // self.total > self._last_decile:
            self._last_decile = self.done * 10 // self.total
            self.stream.write(self._line(now) + "\n")
            self.stream.flush()

    def _line(self, now: float) -> str:
        fraction = min(self.done / self.total, 1.0)
        bar = "#" * int(fraction * 24)
        rate = self.done / max(now - self._start, 1e-9)
        return (f"{self.description} [{bar:<24}] {self.done}/{self.total} "
                f"{fraction:4.0%} {rate:.1f} images/s")

    def close(self) -> None:
        if self.enabled and self._tty:
            self.stream.write("\n")
            self.stream.flush()


# ----------------------------------------------------------------------------- running


def _split_evenly(items: Sequence, parts: int) -> List[tuple]:
    size, extra = divmod(len(items), parts)
    chunks, start = [], 0
    for i in range(parts):
        end = start + size + (1 if i < extra else 0)
        chunks.append(tuple(items[start:end]))
        start = end
    return chunks


def _check_inputs_exist(splits: Mapping[str, Sequence[Source]]) -> None:
    for split, sources in splits.items():
        if not sources:
            raise ConversionError(f"split {split!r}: no examples found")
        for source in sources:
            for path in (source.image_path, source.label_path):
                if not os.path.isfile(path):
                    raise ConversionError(f"{path}: file not found (listed in split {split!r})")


def _remove_temp_files(staging_dir: str) -> None:
    for path in glob.glob(os.path.join(staging_dir, "*.tmp-*")):
        try:
            os.remove(path)
        except OSError:
            pass


def _run_jobs(jobs: List[ShardJob], num_workers: int, progress: Progress) -> Dict[str, dict]:
    results = {}
    if num_workers <= 1 or len(jobs) <= 1:
        for job in jobs:
            results[job.name] = write_shard(job, on_image=progress.update)
        return results
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    pool = context.Pool(min(num_workers, len(jobs)), initializer=_init_worker, initargs=(queue,))
    try:
        pending = {job.name: pool.apply_async(write_shard, (job,)) for job in jobs}
        while pending:
            while not queue.empty():
                progress.update(queue.get())
            for name in [n for n, r in pending.items() if r.ready()]:
                results[name] = pending.pop(name).get()  # Re-raises a worker's error.
            time.sleep(0.05)
        while not queue.empty():
            progress.update(queue.get())
        pool.close()
    finally:
        pool.terminate()
        pool.join()
    return results


def _publish(output_dir: str, jobs: List[ShardJob]) -> None:
    new_names = {job.name for job in jobs}
    for split in {job.split for job in jobs}:
        for old in glob.glob(os.path.join(output_dir, f"{split}-*-of-*{schema.SHARD_SUFFIX}")):
            parsed = schema.parse_shard_name(old)
            if parsed and parsed[0] == split and os.path.basename(old) not in new_names:
                os.remove(old)
    for job in jobs:
        os.replace(job.staged_path, os.path.join(output_dir, job.name))


def convert_dataset(*, output_dir: str, dataset_name: str, class_names: Sequence[str],
                    ignore_label: int, splits: Mapping[str, Sequence[Source]], num_shards: int,
                    num_workers: int = 1, skip_invalid: bool = False,
                    palette: Optional[Sequence[Sequence[int]]] = None, created_by: str = "",
                    source: str = "", show_progress: bool = True,
                    on_progress: Optional[Callable[[int], None]] = None) -> dict:
    """Converts the listed examples to shards and a manifest in ``output_dir``.

    Args:
        output_dir: str. Destination folder (created if needed).
        dataset_name: str. Name recorded in the manifest (a registry name or a custom one).
        class_names: sequence of str, one per class; their number is ``num_classes``.
        ignore_label: int. The label value that is ignored (0..255).
        splits: dict split name -> list of Source.
        num_shards: int. Shards per split (fewer for splits with fewer examples).
        num_workers: int. Worker processes; each writes whole shards.
        skip_invalid: bool. Leave out examples with bad content instead of failing; they are
            listed in the manifest.
        palette: optional colours by label value, recorded in the manifest.
        created_by: str. Tool name recorded in the manifest.
        source: str. Input folder recorded in the manifest.
        show_progress: bool. Progress bar on stderr.
        on_progress: optional callable, called with the number of examples just processed
            (e.g. to time a conversion).

    Returns:
        The manifest written.

    Raises:
        ConversionError: bad input, with a one-line message naming the file. Nothing is then
            left under a final shard name, and staged complete shards are kept for a re-run.
    """
    num_classes = len(class_names)
    if not 1 <= num_classes <= 256:
        raise ConversionError(f"num_classes must be in [1, 256] (uint8 PNG labels), got {num_classes}")
    if not 0 <= ignore_label <= 255:
        raise ConversionError(f"ignore_label must be in [0, 255], got {ignore_label}")
    if num_shards < 1:
        raise ConversionError(f"num_shards must be >= 1, got {num_shards}")
    _check_inputs_exist(splits)

    staging_dir = os.path.join(output_dir, STAGING_DIR)
    os.makedirs(staging_dir, exist_ok=True)
    _remove_temp_files(staging_dir)
    jobs = []
    for split, sources in splits.items():
        count = min(num_shards, len(sources))
        for index, chunk in enumerate(_split_evenly(list(sources), count)):
            fingerprint = _fingerprint(split, index, count, chunk, num_classes, ignore_label,
                                       skip_invalid)
            jobs.append(ShardJob(split, index, count, chunk, staging_dir, num_classes,
                                 ignore_label, skip_invalid, fingerprint))

    stats = {}
    todo = []
    for job in jobs:
        reused = _reusable_stats(job)
        if reused is None:
            todo.append(job)
        else:
            stats[job.name] = reused
    progress = Progress(sum(len(j.sources) for j in todo), f"{dataset_name}", show_progress,
                        listener=on_progress)
    try:
        stats.update(_run_jobs(todo, num_workers, progress))
    finally:
        progress.close()
        _remove_temp_files(staging_dir)

    split_entries = {}
    for split in splits:
        split_jobs = [job for job in jobs if job.split == split]
        counts = np.sum([stats[job.name]["counts"] for job in split_jobs], axis=0)
        entry = {
            "num_examples": int(sum(stats[job.name]["num_examples"] for job in split_jobs)),
            "num_shards": len(split_jobs),
            "class_pixel_counts": [int(c) for c in counts[:num_classes]],
            "ignore_pixel_count": int(counts[ignore_label]),
            "skipped": [s for job in split_jobs for s in stats[job.name]["skipped"]],
        }
        if entry["num_examples"] == 0:
            raise ConversionError(f"split {split!r}: every example was invalid and skipped")
        split_entries[split] = entry

    manifest = {
        "dataset": dataset_name,
        "num_classes": num_classes,
        "ignore_label": int(ignore_label),
        "class_names": list(class_names),
        "splits": _merge_previous_splits(output_dir, dataset_name, num_classes, ignore_label,
                                         split_entries),
        "created_by": created_by,
        "source": source,
    }
    if palette is not None:
        manifest["palette"] = [[int(c) for c in color] for color in palette]
    if os.path.exists(manifest_lib.manifest_path(output_dir)):
        os.remove(manifest_lib.manifest_path(output_dir))
    _publish(output_dir, jobs)
    manifest_lib.write_manifest(output_dir, manifest)
    shutil.rmtree(staging_dir, ignore_errors=True)
    return manifest


def _merge_previous_splits(output_dir, dataset_name, num_classes, ignore_label, new_splits):
    """Keeps the entries of splits converted earlier into the same folder (same dataset)."""
    merged = {}
    if manifest_lib.has_manifest(output_dir):
        try:
            previous = manifest_lib.read_manifest(output_dir)
        except ValueError:
            previous = None
        if (previous and previous["dataset"] == dataset_name
                and previous["num_classes"] == num_classes
                and previous["ignore_label"] == ignore_label):
            for split, entry in previous["splits"].items():
                if split not in new_splits:
                    try:
                        schema.list_shards(output_dir, split)
                    except ValueError:
                        continue
                    merged[split] = entry
    merged.update(new_splits)
    return merged
