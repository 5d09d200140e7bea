"""Cityscapes -> TFRecord shards (``deeplab-build-cityscapes``).

Reads the official layout::

    <cityscapes_root>/leftImg8bit/<subset>/<city>/<stem>_leftImg8bit.png
    <cityscapes_root>/gtFine/<subset>/<city>/<stem>_gtFine_labelIds.png
    <cityscapes_root>/gtCoarse/<subset>/<city>/<stem>_gtCoarse_labelIds.png   (coarse splits)

and maps label ids to the 19 train ids (others: 255, ignored) with the official Cityscapes
label table, so ``*_labelTrainIds.png`` files (``createTrainIdLabelImgs``) are not needed.
Split names and defaults follow the original (``train_fine``, ``val_fine``; 10 shards);
images keep their PNG bytes and the example name is ``<stem>`` (e.g. ``aachen_000000_000019``).
"""

from __future__ import annotations

import glob
import os
from typing import Dict, List, Sequence

from deeplab_tf.data import registry
from deeplab_tf.data.converters import common

DATASET_NAME = "cityscapes"
DEFAULT_NUM_SHARDS = 10
DEFAULT_SPLITS = ("train_fine", "val_fine")
IGNORE_LABEL = 255

# The official Cityscapes label table (cityscapesscripts/helpers/labels.py): (name, id,
# trainId), 255 for labels not used in training. (License plate, id -1, never occurs in
# labelIds images.)
LABELS = (
    ("unlabeled", 0, 255), ("ego vehicle", 1, 255), ("rectification border", 2, 255),
    ("out of roi", 3, 255), ("static", 4, 255), ("dynamic", 5, 255), ("ground", 6, 255),
    ("road", 7, 0), ("sidewalk", 8, 1), ("parking", 9, 255), ("rail track", 10, 255),
    ("building", 11, 2), ("wall", 12, 3), ("fence", 13, 4), ("guard rail", 14, 255),
    ("bridge", 15, 255), ("tunnel", 16, 255), ("pole", 17, 5), ("polegroup", 18, 255),
    ("traffic light", 19, 6), ("traffic sign", 20, 7), ("vegetation", 21, 8),
    ("terrain", 22, 9), ("sky", 23, 10), ("person", 24, 11), ("rider", 25, 12),
    ("car", 26, 13), ("truck", 27, 14), ("bus", 28, 15), ("caravan", 29, 255),
    ("trailer", 30, 255), ("train", 31, 16), ("motorcycle", 32, 17), ("bicycle", 33, 18),
)

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


def label_id_to_train_id_table(unknown: int = 255) -> tuple:
    """256 entries: the train id of each label id; ids outside the table map to ``unknown``."""
    table = [unknown] * 256
    for _, label_id, train_id in LABELS:
        table[label_id] = train_id
    return tuple(table)


def _collect(root: str, split: str) -> List[common.Source]:
    reader = common.LookupLabels(label_id_to_train_id_table(unknown=-1), "Cityscapes labelId")
    sources = []
    for subset, annotation in SPLITS[split]:
        image_dir = os.path.join(root, "leftImg8bit", subset)
        if not os.path.isdir(image_dir):
            raise common.ConversionError(f"{image_dir}: directory not found (needed for {split})")
        label_dir = os.path.join(root, annotation, subset)
        if not os.path.isdir(label_dir):
            raise common.ConversionError(f"{label_dir}: directory not found (needed for {split})")
        images = sorted(glob.glob(os.path.join(image_dir, "*", "*_leftImg8bit.png")))
        if not images:
            raise common.ConversionError(f"{image_dir}: no <city>/*_leftImg8bit.png images")
        for image_path in images:
            city = os.path.basename(os.path.dirname(image_path))
            stem = os.path.basename(image_path)[: -len("_leftImg8bit.png")]
            label_path = os.path.join(label_dir, city, f"{stem}_{annotation}_labelIds.png")
            sources.append(common.Source(stem, image_path, label_path, reader))
    return sources


def collect_splits(cityscapes_root: str, splits: Sequence[str] = DEFAULT_SPLITS
                   ) -> Dict[str, List[common.Source]]:
    """The examples of each requested split (see ``SPLITS``)."""
    if not os.path.isdir(cityscapes_root):
        raise common.ConversionError(f"{cityscapes_root}: directory not found")
    unknown = [s for s in splits if s not in SPLITS]
    if unknown or not splits:
        raise common.ConversionError(
            f"unknown Cityscapes splits {unknown or list(splits)}; choose from {', '.join(SPLITS)}")
    return {split: _collect(cityscapes_root, split) for split in splits}


def convert(cityscapes_root: str, output_dir: str, *, splits: Sequence[str] = DEFAULT_SPLITS,
            num_shards: int = DEFAULT_NUM_SHARDS, num_workers: int = 1,
            skip_invalid: bool = False, show_progress: bool = True) -> dict:
    """Converts Cityscapes to shards + manifest; returns the manifest (see common.convert_dataset)."""
    info = registry.DATASETS[DATASET_NAME]
    return common.convert_dataset(
        output_dir=output_dir,
        dataset_name=DATASET_NAME,
        class_names=info.class_names,
        ignore_label=IGNORE_LABEL,
        splits=collect_splits(cityscapes_root, splits),
        num_shards=num_shards,
        num_workers=num_workers,
        skip_invalid=skip_invalid,
        created_by="deeplab-build-cityscapes",
        source=os.path.abspath(cityscapes_root),
        show_progress=show_progress,
    )
