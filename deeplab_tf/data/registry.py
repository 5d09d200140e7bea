"""The dataset registry: class count, ignore label, class names, split sizes and palette.

One literal dict of the public datasets (``DATASETS``, figures as in the original's
``data_generator.py``); custom datasets are described by the ``manifest.json`` their
converter wrote, and TFDS datasets (``tfds:NAME[/CONFIG]``) by ``data.tfds_source``.

Example:
    >>> info = get_dataset_info("pascal_voc_seg")
    >>> info.num_classes, info.ignore_label, info.splits["train_aug"]
    (21, 255, 10582)
"""

from __future__ import annotations

import dataclasses
from typing import Optional

from deeplab_tf.data import cityscapes_labels, dataset_info
from deeplab_tf.data import manifest as manifest_lib
from deeplab_tf.data import palettes
from deeplab_tf.data.errors import DataError

TFDS_PREFIX = dataset_info.TFDS_PREFIX
DatasetInfo = dataset_info.DatasetInfo


PASCAL_VOC_CLASSES = (
    "background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat",
    "chair", "cow", "diningtable", "dog", "horse", "motorbike", "person", "pottedplant",
    "sheep", "sofa", "train", "tvmonitor",
)

CITYSCAPES_CLASSES = cityscapes_labels.CLASS_NAMES

# ADE20K SceneParsing (objectInfo150): id 0 is "other", the ignore label.
ADE20K_CLASSES = (
    "other", "wall", "building", "sky", "floor", "tree", "ceiling", "road", "bed", "windowpane",
    "grass", "cabinet", "sidewalk", "person", "earth", "door", "table", "mountain", "plant",
    "curtain", "chair", "car", "water", "painting", "sofa", "shelf", "house", "sea", "mirror",
    "rug", "field", "armchair", "seat", "fence", "desk", "rock", "wardrobe", "lamp", "bathtub",
    "railing", "cushion", "base", "box", "column", "signboard", "chest of drawers", "counter",
    "sand", "sink", "skyscraper", "fireplace", "refrigerator", "grandstand", "path", "stairs",
    "runway", "case", "pool table", "pillow", "screen door", "stairway", "river", "bridge",
    "bookcase", "blind", "coffee table", "toilet", "flower", "book", "hill", "bench",
    "countertop", "stove", "palm", "kitchen island", "computer", "swivel chair", "boat", "bar",
    "arcade machine", "hovel", "bus", "towel", "light", "truck", "tower", "chandelier",
    "awning", "streetlight", "booth", "television receiver", "airplane", "dirt track",
    "apparel", "pole", "land", "bannister", "escalator", "ottoman", "bottle", "buffet",
    "poster", "stage", "van", "ship", "fountain", "conveyer belt", "canopy", "washer",
    "plaything", "swimming pool", "stool", "barrel", "basket", "waterfall", "tent", "bag",
    "minibike", "cradle", "oven", "ball", "food", "step", "tank", "trade name", "microwave",
    "pot", "animal", "bicycle", "lake", "dishwasher", "screen", "blanket", "sculpture", "hood",
    "sconce", "vase", "traffic light", "tray", "ashcan", "fan", "pier", "crt screen", "plate",
    "monitor", "bulletin board", "shower", "radiator", "glass", "clock", "flag",
)

DATASETS = {
    "pascal_voc_seg": DatasetInfo(
        name="pascal_voc_seg",
        num_classes=21,
        ignore_label=255,
        class_names=PASCAL_VOC_CLASSES,
        splits={"train": 1464, "train_aug": 10582, "trainval": 2913, "val": 1449},
        palette=palettes.pascal_palette(),
    ),
    "cityscapes": DatasetInfo(
        name="cityscapes",
        num_classes=len(cityscapes_labels.CLASS_NAMES),
        ignore_label=cityscapes_labels.IGNORE_LABEL,
        class_names=CITYSCAPES_CLASSES,
        splits=dict(cityscapes_labels.SPLIT_SIZES),
        palette=palettes.cityscapes_palette(),
    ),
    "ade20k": DatasetInfo(
        name="ade20k",
        num_classes=151,
        ignore_label=0,
        class_names=ADE20K_CLASSES,
        splits={"train": 20210, "val": 2000},
        palette=palettes.ade20k_palette(),
    ),
}


def info_from_manifest(manifest: dict) -> DatasetInfo:
    """A DatasetInfo from a converter's manifest (see ``data.manifest``)."""
    num_classes = int(manifest["num_classes"])
    ignore_label = int(manifest["ignore_label"])
    colors = manifest.get("palette") or []
    return DatasetInfo(
        name=manifest["dataset"],
        num_classes=num_classes,
        ignore_label=ignore_label,
        class_names=tuple(manifest["class_names"]),
        splits=manifest_lib.split_sizes(manifest),
        palette=palettes.as_palette(colors, max(256, num_classes, ignore_label + 1)),
    )


def get_dataset_info(dataset: str, dataset_dir: Optional[str] = None) -> DatasetInfo:
    """Describes a dataset.

    Args:
        dataset: str. A name in ``DATASETS``; ``"tfds:NAME[/CONFIG]"``; a custom dataset's
            name; or ``""`` for "whatever ``dataset_dir/manifest.json`` describes".
        dataset_dir: str or None. Folder of the converted shards. When it holds a manifest,
            the split sizes are those actually converted, and the manifest must agree with
            ``dataset`` (name, class count, ignore label): a mismatch raises, rather than
            training on labels read with the wrong class count.

    Raises:
        ValueError: unknown dataset without a manifest, or a manifest that disagrees.
    """
    if dataset.startswith(TFDS_PREFIX):
        from deeplab_tf.data import \
            tfds_source  # Imports tensorflow_datasets: only on demand.

        return tfds_source.dataset_info(dataset[len(TFDS_PREFIX):], data_dir=dataset_dir or None)
    manifest = None
    if manifest_lib.has_manifest(dataset_dir):
        manifest = manifest_lib.read_manifest(dataset_dir)
    if dataset in DATASETS:
        info = DATASETS[dataset]
        if manifest is None:
            return info
        _check_agrees(info, manifest, dataset_dir)
        return dataclasses.replace(info, splits=manifest_lib.split_sizes(manifest))
    if manifest is None:
        if dataset:
            raise DataError(
                f"Unknown dataset {dataset!r}: not one of {', '.join(DATASETS)} and no "
                f"{manifest_lib.MANIFEST_NAME} in dataset_dir={dataset_dir!r}")
        raise DataError(
            f"dataset='' needs a {manifest_lib.MANIFEST_NAME} in dataset_dir. Received: "
            f"dataset_dir={dataset_dir!r}")
    if dataset and manifest["dataset"] != dataset:
        raise DataError(
            f"{manifest_lib.manifest_path(dataset_dir)} describes dataset "
            f"{manifest['dataset']!r}, not {dataset!r}")
    return info_from_manifest(manifest)


def _check_agrees(info: DatasetInfo, manifest: dict, dataset_dir: str) -> None:
    where = manifest_lib.manifest_path(dataset_dir)
    if manifest["dataset"] != info.name:
        raise DataError(f"{where} describes dataset {manifest['dataset']!r}, not {info.name!r}")
    for key in ("num_classes", "ignore_label"):
        if int(manifest[key]) != getattr(info, key):
            raise DataError(
                f"{where} has {key}={manifest[key]} but dataset {info.name!r} has "
                f"{key}={getattr(info, key)}")
