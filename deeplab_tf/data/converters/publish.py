"""Publishing a conversion: staged shards to their final names, then ``manifest.json`` last.

The new manifest is first written into the staging folder (the last write that needs disk
space), then the old manifest is removed, the shards are renamed to their final names
(replacing an older conversion of those splits) and the staged manifest is renamed into place.
So a failed write leaves the previous shards and manifest as they were, and a reader never
finds a manifest that describes shards not there.
"""

from __future__ import annotations

import glob
import json
import os
from typing import Dict, List, Mapping, Optional, Sequence

import numpy as np

from deeplab_tf import fileio
from deeplab_tf.data import manifest as manifest_lib
from deeplab_tf.data import schema
from deeplab_tf.data.converters.errors import ConversionError
from deeplab_tf.data.converters.shards import ShardJob

STAGED_MANIFEST = "manifest.json.staged"


def split_entries(splits: Sequence[str], jobs: List[ShardJob], stats: Dict[str, dict],
                  num_classes: int, ignore_label: int) -> Dict[str, dict]:
    """The manifest's ``splits`` entries of this conversion, from the shards' statistics."""
    entries = {}
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
        entries[split] = entry
    return entries


def merge_previous_splits(output_dir, dataset_name, num_classes, ignore_label, new_splits):
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


def build_manifest(*, output_dir: str, dataset_name: str, class_names: Sequence[str],
                   ignore_label: int, entries: Mapping[str, dict], created_by: str, source: str,
                   palette: Optional[Sequence[Sequence[int]]]) -> dict:
    num_classes = len(class_names)
    manifest = {
        "dataset": dataset_name,
        "num_classes": num_classes,
        "ignore_label": int(ignore_label),
        "class_names": list(class_names),
        "splits": merge_previous_splits(output_dir, dataset_name, num_classes, ignore_label,
                                        dict(entries)),
        "created_by": created_by,
        "source": source,
    }
    if palette is not None:
        manifest["palette"] = [[int(c) for c in color] for color in palette]
    return manifest


def publish(output_dir: str, staging_dir: str, jobs: List[ShardJob], manifest: dict) -> None:
    """Moves the staged shards to their final names and writes the manifest (see module doc).

    Raises:
        ConversionError: naming the path, if the staged manifest cannot be written (nothing
            published then).
    """
    staged_manifest = os.path.join(staging_dir, STAGED_MANIFEST)
    manifest_lib.validate(manifest, "<manifest to write>")
    text = json.dumps({"format_version": manifest_lib.FORMAT_VERSION, **manifest}, indent=2) + "\n"
    try:
        fileio.atomic_write_text(staged_manifest, text)
    except OSError as e:
        raise ConversionError(
            f"{staged_manifest}: write failed ({e.strerror or e}); "
            "earlier outputs are left as they were") from None
    final_manifest = manifest_lib.manifest_path(output_dir)
    if os.path.exists(final_manifest):
        os.remove(final_manifest)
    new_names = {job.name for job in jobs}
    for split in {job.split for job in jobs}:
        for old in glob.glob(os.path.join(output_dir, f"{split}-*-of-*{schema.SHARD_SUFFIX}")):
            parsed = schema.parse_shard_name(old)
            if parsed and parsed[0] == split and os.path.basename(old) not in new_names:
                os.remove(old)
    for job in jobs:
        os.replace(job.staged_path, os.path.join(output_dir, job.name))
    os.replace(staged_manifest, final_manifest)
