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

from deeplab_tf.data import image_io
from deeplab_tf.data import registry
from deeplab_tf.data.converters.conversion import convert_dataset
from deeplab_tf.data.converters.encoding import Source
from deeplab_tf.data.converters.errors import ConversionError
from deeplab_tf.data.converters.labels import read_index_png

DATASET_NAME = "ade20k"
DEFAULT_NUM_SHARDS = 4
IGNORE_LABEL = 0
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
            num_workers: int = 1, skip_invalid: bool = False, show_progress: bool = True,
            max_image_pixels: int = image_io.DEFAULT_MAX_IMAGE_PIXELS) -> dict:
    """Converts ADE20K to shards + manifest; returns the manifest."""
    info = registry.DATASETS[DATASET_NAME]
    return convert_dataset(
        output_dir=output_dir,
        dataset_name=DATASET_NAME,
        class_names=info.class_names,
        ignore_label=IGNORE_LABEL,
        splits=collect_splits(ade20k_root),
        num_shards=num_shards,
        num_workers=num_workers,
        skip_invalid=skip_invalid,
        created_by="deeplab-build-ade20k",
        source=os.path.abspath(find_root(ade20k_root)),
        show_progress=show_progress,
        max_image_pixels=max_image_pixels,
    )
