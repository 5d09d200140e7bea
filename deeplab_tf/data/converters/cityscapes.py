"""Cityscapes -> TFRecord shards (``deeplab-build-cityscapes``).

Reads the official layout::

    <cityscapes_root>/leftImg8bit/<subset>/<city>/<stem>_leftImg8bit.png
    <cityscapes_root>/gtFine/<subset>/<city>/<stem>_gtFine_labelIds.png
    <cityscapes_root>/gtCoarse/<subset>/<city>/<stem>_gtCoarse_labelIds.png   (coarse splits)

and maps label ids to the 19 train ids (others: 255, ignored) with the official Cityscapes
label table (``data.cityscapes_labels``), so ``*_labelTrainIds.png`` files (``createTrainIdLabelImgs``) are not needed.
Split names and defaults follow the original (``train_fine``, ``val_fine``; 10 shards);
images keep their PNG bytes and the example name is ``<stem>`` (e.g. ``aachen_000000_000019``).
"""

from __future__ import annotations

import glob
import os
from typing import Dict, List, Sequence

from deeplab_tf.data import cityscapes_labels
from deeplab_tf.data.converters.conversion import convert_registered
from deeplab_tf.data.converters.encoding import Source
from deeplab_tf.data.converters.errors import ConversionError
from deeplab_tf.data.converters.labels import LookupLabels

DATASET_NAME = "cityscapes"
DEFAULT_NUM_SHARDS = 10
DEFAULT_SPLITS = ("train_fine", "val_fine")

# Split -> the (leftImg8bit subset, annotation folder) pairs it gathers, as the original's
# split names (train_coarse = train + train_extra with coarse labels: 22,973 images).
SPLITS = {
    "train_fine": (("train", "gtFine"),),
    "val_fine": (("val", "gtFine"),),
    "test_fine": (("test", "gtFine"),),
    "trainval_fine": (("train", "gtFine"), ("val", "gtFine")),
    "train_coarse": (("train", "gtCoarse"), ("train_extra", "gtCoarse")),
    "trainval_coarse": (("train", "gtCoarse"), ("train_extra", "gtCoarse"), ("val", "gtCoarse")),
}


def _collect(root: str, split: str) -> List[Source]:
    reader = LookupLabels(cityscapes_labels.label_id_to_train_id_table(unknown=-1), "Cityscapes labelId")
    sources = []
    for subset, annotation in SPLITS[split]:
        image_dir = os.path.join(root, "leftImg8bit", subset)
        if not os.path.isdir(image_dir):
            raise ConversionError(f"{image_dir}: directory not found (needed for {split})")
        label_dir = os.path.join(root, annotation, subset)
        if not os.path.isdir(label_dir):
            raise ConversionError(f"{label_dir}: directory not found (needed for {split})")
        images = sorted(glob.glob(os.path.join(image_dir, "*", "*_leftImg8bit.png")))
        if not images:
            raise ConversionError(f"{image_dir}: no <city>/*_leftImg8bit.png images")
        for image_path in images:
            city = os.path.basename(os.path.dirname(image_path))
            stem = os.path.basename(image_path)[: -len("_leftImg8bit.png")]
            label_path = os.path.join(label_dir, city, f"{stem}_{annotation}_labelIds.png")
            sources.append(Source(stem, image_path, label_path, reader))
    return sources


def collect_splits(cityscapes_root: str, splits: Sequence[str] = DEFAULT_SPLITS
                   ) -> Dict[str, List[Source]]:
    """The examples of each requested split (see ``SPLITS``)."""
    if not os.path.isdir(cityscapes_root):
        raise ConversionError(f"{cityscapes_root}: directory not found")
    unknown = [s for s in splits if s not in SPLITS]
    if unknown or not splits:
        raise ConversionError(
            f"unknown Cityscapes splits {unknown or list(splits)}; choose from {', '.join(SPLITS)}")
    return {split: _collect(cityscapes_root, split) for split in splits}


def convert(cityscapes_root: str, output_dir: str, *, splits: Sequence[str] = DEFAULT_SPLITS,
            num_shards: int = DEFAULT_NUM_SHARDS, **options) -> dict:
    """Converts Cityscapes to shards + manifest; returns the manifest.

    ``options``: ``convert_dataset``'s ``num_workers`` (1), ``skip_invalid`` (False),
    ``show_progress`` (True), ``max_image_pixels`` (``image_io.DEFAULT_MAX_IMAGE_PIXELS``).
    """
    return convert_registered(DATASET_NAME, collect_splits(cityscapes_root, splits),
                              output_dir=output_dir, num_shards=num_shards,
                              created_by="deeplab-build-cityscapes",
                              source=os.path.abspath(cityscapes_root), **options)
