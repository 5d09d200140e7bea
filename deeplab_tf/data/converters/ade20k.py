"""ADE20K (SceneParsing, ADEChallengeData2016) -> TFRecord shards (``deeplab-build-ade20k``).

Reads::

    ADEChallengeData2016/images/{training,validation}/<stem>.jpg
    ADEChallengeData2016/annotations/{training,validation}/<stem>.png   values 0..150

into splits ``train`` (20,210) and ``val`` (2,000): 151 classes with 0 ("other") as the ignore
label, as the original. JPEG bytes are stored as they are; 4 shards per split.
"""

from __future__ import annotations

import glob
import os
from typing import Dict, List

from deeplab_tf.data.converters.conversion import convert_registered
from deeplab_tf.data.converters.encoding import Source
from deeplab_tf.data.converters.errors import ConversionError
from deeplab_tf.data.converters.labels import read_index_png

DATASET_NAME = "ade20k"
DEFAULT_NUM_SHARDS = 4
SPLITS = {"train": "training", "val": "validation"}


def find_root(ade20k_root: str) -> str:
    """``ade20k_root/ADEChallengeData2016`` or ``ade20k_root`` itself (holding images/)."""
    for candidate in (os.path.join(ade20k_root, "ADEChallengeData2016"), ade20k_root):
        if os.path.isdir(os.path.join(candidate, "images")):
            return candidate
    raise ConversionError(
        f"{ade20k_root}: no ADEChallengeData2016 folder (looked for images/ in it and in "
        "ADEChallengeData2016/)")


def collect_splits(ade20k_root: str) -> Dict[str, List[Source]]:
    root = find_root(ade20k_root)
    splits = {}
    for split, folder in SPLITS.items():
        image_dir = os.path.join(root, "images", folder)
        label_dir = os.path.join(root, "annotations", folder)
        for directory in (image_dir, label_dir):
            if not os.path.isdir(directory):
                raise ConversionError(f"{directory}: directory not found")
        images = sorted(glob.glob(os.path.join(image_dir, "*.jpg")))
        if not images:
            raise ConversionError(f"{image_dir}: no *.jpg images")
        splits[split] = [
            Source(stem, path, os.path.join(label_dir, stem + ".png"), read_index_png)
            for path, stem in ((p, os.path.splitext(os.path.basename(p))[0]) for p in images)]
    return splits


def convert(ade20k_root: str, output_dir: str, *, num_shards: int = DEFAULT_NUM_SHARDS,
            **options) -> dict:
    """Converts ADE20K to shards + manifest; returns the manifest.

    ``options``: ``convert_dataset``'s ``num_workers`` (1), ``skip_invalid`` (False),
    ``show_progress`` (True), ``max_image_pixels`` (``image_io.DEFAULT_MAX_IMAGE_PIXELS``).
    """
    return convert_registered(DATASET_NAME, collect_splits(ade20k_root), output_dir=output_dir,
                              num_shards=num_shards, created_by="deeplab-build-ade20k",
                              source=os.path.abspath(find_root(ade20k_root)), **options)
