"""PASCAL VOC 2012 (+ SBD) -> TFRecord shards (``deeplab-build-voc2012``).

Reads ``VOCdevkit/VOC2012``::

    JPEGImages/<id>.jpg
    SegmentationClass/<id>.png          palette PNGs: the palette index is the class,
                                        255 marks object boundaries (kept: the ignore label)
    ImageSets/Segmentation/{train,val,trainval}.txt

The palette indices are read directly, so the original's separate colormap-removal step is not
needed. With SBD (``benchmark_RELEASE/dataset``: ``cls/<id>.mat`` holding ``GTcls.Segmentation``,
``img/<id>.jpg``, ``train.txt``, ``val.txt``) it also writes ``train_aug``: VOC train + SBD
train + SBD val, minus VOC val (10,582 images); an image with a VOC annotation uses it (it has
the 255 boundaries), the others their SBD annotation. JPEG bytes are stored as they are; the
example name is the image id (e.g. ``2007_000032``); 4 shards per split, as the original.
"""

from __future__ import annotations

import os
from typing import Dict, List, Optional, Tuple

import numpy as np

from deeplab_tf.data.converters.conversion import convert_registered
from deeplab_tf.data.converters.encoding import Source
from deeplab_tf.data.converters.errors import ConversionError
from deeplab_tf.data.converters.labels import read_index_png
from deeplab_tf.errors import one_line
from deeplab_tf.fileio import read_text

DATASET_NAME = "pascal_voc_seg"
DEFAULT_NUM_SHARDS = 4
VOC_SPLITS = ("train", "val", "trainval")


def read_sbd_mat(path: str) -> np.ndarray:
    """Class indices of an SBD ``cls/*.mat`` file (the ``GTcls.Segmentation`` field)."""
    import scipy.io  # Only needed with SBD.

    try:
        mat = scipy.io.loadmat(path, squeeze_me=True, struct_as_record=False)
        segmentation = mat["GTcls"].Segmentation
    except Exception as e:  # noqa: BLE001 -- scipy raises many types for bad files.
        raise ConversionError(
            f"{path}: not an SBD class annotation (GTcls.Segmentation): {one_line(e)}",
            skippable=True) from None
    return np.asarray(segmentation)


def _find_folder(root, subfolders, marker, what):
    """The first of ``root`` / each of ``subfolders`` under it that holds ``marker``."""
    for candidate in (root, *(os.path.join(root, *sub) for sub in subfolders)):
        if os.path.isdir(os.path.join(candidate, marker)):
            return candidate
    places = ["/".join(sub) + "/" for sub in subfolders]
    raise ConversionError(
        f"{root}: no {what} folder (looked for {marker}/ in it, in "
        f"{', in '.join(places[:-1])} and in {places[-1]})")


def find_voc2012(voc_root: str) -> str:
    """The ``VOC2012`` folder: ``voc_root`` itself, ``voc_root/VOC2012`` or
    ``voc_root/VOCdevkit/VOC2012``."""
    return _find_folder(voc_root, [("VOC2012",), ("VOCdevkit", "VOC2012")], "JPEGImages", "VOC2012")


def find_sbd(sbd_root: str) -> str:
    """The SBD ``dataset`` folder: ``sbd_root`` itself, ``sbd_root/dataset`` or
    ``sbd_root/benchmark_RELEASE/dataset``."""
    return _find_folder(sbd_root, [("dataset",), ("benchmark_RELEASE", "dataset")], "cls",
                        "SBD dataset")


def read_list(path: str) -> List[str]:
    """Image ids of a split list file (one per line)."""
    if not os.path.isfile(path):
        raise ConversionError(f"{path}: split list not found")
    text = read_text(path, "one image id per line", ConversionError)
    return [line.strip().split()[0] for line in text.splitlines() if line.strip()]


def _require_dir(path: str) -> str:
    if not os.path.isdir(path):
        raise ConversionError(f"{path}: directory not found")
    return path


def collect_splits(voc_root: str, sbd_root: Optional[str] = None
                   ) -> Tuple[str, Dict[str, List[Source]]]:
    """(VOC2012 folder, {split: examples}) for train/val/trainval (those with a list file) and,
    with SBD, train_aug."""
    voc = find_voc2012(voc_root)
    image_dir = _require_dir(os.path.join(voc, "JPEGImages"))
    label_dir = _require_dir(os.path.join(voc, "SegmentationClass"))
    list_dir = _require_dir(os.path.join(voc, "ImageSets", "Segmentation"))
    lists = {split: read_list(os.path.join(list_dir, f"{split}.txt"))
             for split in VOC_SPLITS if os.path.isfile(os.path.join(list_dir, f"{split}.txt"))}
    for required in ("train", "val"):
        if required not in lists:
            raise ConversionError(f"{os.path.join(list_dir, required + '.txt')}: split list not found")

    def voc_source(image_id):
        return Source(image_id, os.path.join(image_dir, image_id + ".jpg"),
                             os.path.join(label_dir, image_id + ".png"), read_index_png)

    splits = {split: [voc_source(i) for i in ids] for split, ids in lists.items()}
    if sbd_root:
        splits["train_aug"] = _train_aug(find_sbd(sbd_root), lists, voc_source, image_dir)
    return voc, splits


def _train_aug(sbd: str, lists, voc_source, voc_image_dir) -> List[Source]:
    cls_dir = _require_dir(os.path.join(sbd, "cls"))
    sbd_image_dir = os.path.join(sbd, "img")
    sbd_ids = set(read_list(os.path.join(sbd, "train.txt"))) | set(read_list(os.path.join(sbd, "val.txt")))
    voc_annotated = set(lists["train"]) | set(lists["val"]) | set(lists.get("trainval", ()))
    ids = sorted((set(lists["train"]) | sbd_ids) - set(lists["val"]))
    sources = []
    for image_id in ids:
        if image_id in voc_annotated:
            sources.append(voc_source(image_id))
            continue
        image_path = os.path.join(voc_image_dir, image_id + ".jpg")
        if not os.path.isfile(image_path):  # VOC2012 holds all SBD images; SBD's img/ too.
            image_path = os.path.join(sbd_image_dir, image_id + ".jpg")
        sources.append(Source(image_id, image_path, os.path.join(cls_dir, image_id + ".mat"),
                                     read_sbd_mat))
    return sources


def convert(voc_root: str, output_dir: str, *, sbd_root: Optional[str] = None,
            num_shards: int = DEFAULT_NUM_SHARDS, **options) -> dict:
    """Converts VOC 2012 (and SBD) to shards + manifest; returns the manifest.

    ``options``: ``convert_dataset``'s ``num_workers`` (1), ``skip_invalid`` (False),
    ``show_progress`` (True), ``max_image_pixels`` (``image_io.DEFAULT_MAX_IMAGE_PIXELS``).
    """
    voc, splits = collect_splits(voc_root, sbd_root)
    return convert_registered(DATASET_NAME, splits, output_dir=output_dir,
                              num_shards=num_shards, created_by="deeplab-build-voc2012",
                              source=os.path.abspath(voc), **options)
