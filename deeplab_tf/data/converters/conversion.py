"""``convert_dataset``: the listed examples of each split -> shards and a manifest.

A converter lists its examples (``Source``: a name, an image file, a label file and how to read
that label) per split and calls ``convert_dataset``, which

1. locks ``output_dir`` (``fileio.directory_lock``: a second conversion into the same folder
   fails at once, naming the running one);
2. checks that every listed file exists (a missing one is a ``ConversionError`` naming it);
3. writes each shard in a worker process (``num_workers``; each worker writes whole shards)
   into ``<output_dir>/.deeplab_staging/`` (``shards``), with a marker holding its
   statistics and a fingerprint of its inputs;
4. when every shard of every split is done, publishes them under their final names
   ``<split>-%05d-of-%05d.tfrecord`` and writes ``manifest.json`` last (``publish``).

So shards never appear under their final name until the whole conversion succeeded, a failed
or interrupted run (bad input, full disk) leaves the previous outputs as they were, and a
re-run resumes: staged shards whose fingerprint still matches are reused. With
``skip_invalid`` an example with bad content is left out and listed in the manifest.
"""

from __future__ import annotations

import glob
import os
import shutil
import sys
from typing import Callable, Mapping, Optional, Sequence

from deeplab_tf import fileio
from deeplab_tf.data import image_io
from deeplab_tf.data.converters import pool, publish
from deeplab_tf.data.converters.encoding import Source, fingerprint
from deeplab_tf.data.converters.errors import ConversionError
from deeplab_tf.data.converters.progress import Progress
from deeplab_tf.data.converters.shards import ShardJob, reusable_stats, split_evenly

STAGING_DIR = ".deeplab_staging"


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


def _say_notes(stats: Mapping[str, dict], stream) -> None:
    """Says once per conversion what was converted (e.g. alpha channels dropped)."""
    totals = {}
    for shard in stats.values():
        for note, (count, example) in shard.get("notes", {}).items():
            total = totals.setdefault(note, [0, example])
            total[0] += count
    for note, (count, example) in sorted(totals.items()):
        print(f"note: {note} in {count} image(s), e.g. {example}", file=stream)


def convert_dataset(*, output_dir: str, dataset_name: str, class_names: Sequence[str],
                    ignore_label: int, splits: Mapping[str, Sequence[Source]], num_shards: int,
                    num_workers: int = 1, skip_invalid: bool = False,
                    palette: Optional[Sequence[Sequence[int]]] = None, created_by: str = "",
                    source: str = "", show_progress: bool = True,
                    on_progress: Optional[Callable[[int], None]] = None,
                    max_image_pixels: int = image_io.DEFAULT_MAX_IMAGE_PIXELS) -> dict:
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
        show_progress: bool. Progress bar (terminal) or lines (logs) on stderr.
        on_progress: optional callable, called with the number of examples just processed
            (e.g. to time a conversion).
        max_image_pixels: int. Images with more pixels (width * height, read from the
            header before decoding) are refused; 0 for no limit.

    Returns:
        The manifest written.

    Raises:
        ConversionError: bad input or a failed write, with a one-line message naming the
            file. Nothing is then left under a final shard name, and staged complete shards
            are kept for a re-run.
        fileio.LockError: another conversion is running into ``output_dir``.
    """
    num_classes = len(class_names)
    if not 1 <= num_classes <= 256:
        raise ConversionError(f"num_classes must be in [1, 256] (uint8 PNG labels), got {num_classes}")
    if not 0 <= ignore_label <= 255:
        raise ConversionError(f"ignore_label must be in [0, 255], got {ignore_label}")
    if num_shards < 1:
        raise ConversionError(f"num_shards must be >= 1, got {num_shards}")
    if max_image_pixels < 0:
        raise ConversionError(f"max_image_pixels must be >= 0 (0: no limit), got {max_image_pixels}")
    _check_inputs_exist(splits)
    try:
        os.makedirs(output_dir, exist_ok=True)
    except OSError as e:
        raise ConversionError(f"{output_dir}: cannot create the output folder ({e.strerror})") from None
    with fileio.directory_lock(output_dir, "conversion"):
        return _convert_locked(output_dir, dataset_name, class_names, ignore_label, splits,
                               num_shards, num_workers, skip_invalid, palette, created_by,
                               source, show_progress, on_progress, max_image_pixels)


def convert_registered(dataset_name: str, splits: Mapping[str, Sequence[Source]], *,
                       created_by: str, source: str, **options) -> dict:
    """``convert_dataset`` for a dataset of ``data.registry`` (VOC 2012, Cityscapes, ADE20K):
    the class names and ignore label recorded are the registry's.

    Args:
        dataset_name: str. A ``registry.DATASETS`` name.
        splits, created_by, source: as ``convert_dataset``.
        **options: the other ``convert_dataset`` arguments (``output_dir``, ``num_shards``,
            ``num_workers``, ``skip_invalid``, ``show_progress``, ``max_image_pixels``, ...).
    """
    from deeplab_tf.data import registry

    info = registry.DATASETS[dataset_name]
    return convert_dataset(dataset_name=dataset_name, class_names=info.class_names,
                           ignore_label=info.ignore_label, splits=splits,
                           created_by=created_by, source=source, **options)


def _convert_locked(output_dir, dataset_name, class_names, ignore_label, splits, num_shards,
                    num_workers, skip_invalid, palette, created_by, source, show_progress,
                    on_progress, max_image_pixels) -> dict:
    num_classes = len(class_names)
    staging_dir = os.path.join(output_dir, STAGING_DIR)
    os.makedirs(staging_dir, exist_ok=True)
    _remove_temp_files(staging_dir)
    jobs = []
    for split, sources in splits.items():
        count = min(num_shards, len(sources))
        for index, chunk in enumerate(split_evenly(list(sources), count)):
            digest = fingerprint(split, index, count, chunk, num_classes, ignore_label,
                                 skip_invalid, max_image_pixels)
            jobs.append(ShardJob(split, index, count, chunk, staging_dir, num_classes,
                                 ignore_label, skip_invalid, digest, max_image_pixels))

    stats, todo = {}, []
    for job in jobs:
        reused = reusable_stats(job)
        if reused is None:
            todo.append(job)
        else:
            stats[job.name] = reused
    progress = Progress(sum(len(j.sources) for j in todo), f"{dataset_name}", show_progress,
                        listener=on_progress)
    try:
        stats.update(pool.run_jobs(todo, num_workers, progress))
    finally:
        progress.close()
        _remove_temp_files(staging_dir)
    if show_progress:
        _say_notes(stats, sys.stderr)

    entries = publish.split_entries(list(splits), jobs, stats, num_classes, ignore_label)
    manifest = publish.build_manifest(
        output_dir=output_dir, dataset_name=dataset_name, class_names=class_names,
        ignore_label=ignore_label, entries=entries, created_by=created_by, source=source,
        palette=palette)
    publish.publish(output_dir, staging_dir, jobs, manifest)
    shutil.rmtree(staging_dir, ignore_errors=True)
    return manifest
