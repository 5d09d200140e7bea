"""``manifest.json``: the description a converter writes beside its shards.

It makes a converted folder self-describing, so ``--dataset_dir`` alone is enough to train on a
custom dataset. Layout (``FORMAT_VERSION`` 1)::

    {
      "format_version": 1,
      "dataset": "pascal_voc_seg",          # registry name or the custom dataset's name
      "num_classes": 21,
      "ignore_label": 255,
      "class_names": ["background", ...],
      "palette": [[0, 0, 0], ...],          # optional: colours by label value
      "splits": {
        "train": {
          "num_examples": 1464,
          "num_shards": 4,
          "class_pixel_counts": [...],      # pixels per class id, length num_classes
          "ignore_pixel_count": 123,
          "skipped": [{"file": "...", "reason": "..."}]   # with --skip_invalid
        }
      },
      "created_by": "deeplab-build-voc2012",
      "source": "/data/VOCdevkit/VOC2012"
    }

Writes are atomic: the file is written under a temporary name and renamed, so a reader never
sees a half-written manifest.
"""

from __future__ import annotations

import json
import os

from deeplab_tf import fileio
from deeplab_tf.data.errors import DataError
from deeplab_tf.errors import one_line

MANIFEST_NAME = "manifest.json"
FORMAT_VERSION = 1
_REQUIRED = ("dataset", "num_classes", "ignore_label", "class_names", "splits")


def manifest_path(dataset_dir: str) -> str:
    return os.path.join(dataset_dir, MANIFEST_NAME)


def has_manifest(dataset_dir: str) -> bool:
    return bool(dataset_dir) and os.path.isfile(manifest_path(dataset_dir))


def write_manifest(dataset_dir: str, manifest: dict) -> str:
    """Validates and writes ``dataset_dir/manifest.json`` atomically; returns its path."""
    validate(manifest, "<manifest to write>")
    manifest = {"format_version": FORMAT_VERSION, **manifest}
    path = manifest_path(dataset_dir)
    fileio.atomic_write_text(path, json.dumps(manifest, indent=2) + "\n")
    return path


def read_manifest(dataset_dir: str) -> dict:
    """Reads and validates ``dataset_dir/manifest.json``.

    Raises:
        ValueError: if it is missing, not JSON, of a newer format or lacks a required key;
            the message names the file.
    """
    path = manifest_path(dataset_dir)
    if not os.path.isfile(path):
        raise DataError(f"No dataset manifest at {path}: convert the data with a deeplab-build-* tool")
    try:
        with open(path, encoding="utf-8") as f:
            manifest = json.load(f)
    except (OSError, ValueError) as e:  # ValueError: bad JSON, or not UTF-8 text
        raise DataError(f"Unreadable dataset manifest {path}: {one_line(e)}") from None
    validate(manifest, path)
    return manifest


def validate(manifest: dict, where: str) -> None:
    """Raises ValueError naming ``where`` if ``manifest`` lacks a key or is inconsistent."""
    if not isinstance(manifest, dict):
        raise DataError(f"Dataset manifest {where} must be a JSON object")
    missing = [k for k in _REQUIRED if k not in manifest]
    if missing:
        raise DataError(f"Dataset manifest {where} lacks {missing}")
    version = manifest.get("format_version", FORMAT_VERSION)
    if version > FORMAT_VERSION:
        raise DataError(
            f"Dataset manifest {where} has format_version {version}; this library reads "
            f"up to {FORMAT_VERSION}")
    if len(manifest["class_names"]) != manifest["num_classes"]:
        raise DataError(
            f"Dataset manifest {where} has {len(manifest['class_names'])} class names for "
            f"num_classes={manifest['num_classes']}")


def split_sizes(manifest: dict) -> dict:
    """``{split: num_examples}`` from a manifest."""
    return {name: int(split["num_examples"]) for name, split in manifest["splits"].items()}
