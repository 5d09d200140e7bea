"""Miniature datasets in the real on-disk layouts, for converter, pipeline, training and
evaluation tests.

Every ``make_*`` writes a few tiny images (default 40x50) under ``root`` exactly where the real
dataset keeps them and returns a dict describing what it wrote (paths, ids per split and the
expected class-index label of every example), so a test can compare a conversion pixel for
pixel. Labels are piecewise constant on blocks of ``block`` pixels; in PNG images each pixel's
colour is a function of its class (``class_colors``), so augmentation tests can check that
image and label stay aligned.

Example:
    info = make_voc(tmp_path / "voc", num_train=4, num_val=2, num_sbd=3)
    voc2012.convert(info["root"], out_dir, sbd_root=info["sbd_root"])
    info["labels"]["2007_000001"]  # uint8 [40, 50], with 255 on region boundaries
"""

from __future__ import annotations

import os
from typing import Dict, Sequence, Tuple

import numpy as np
from PIL import Image

IGNORE_COLOR = (255, 255, 255)


def class_colors(num_classes: int) -> np.ndarray:
    """uint8 [num_classes, 3]: well separated colours, one per class (none is white)."""
    colors = []
    for c in range(num_classes):
        colors.append(((c * 97 + 31) % 224, (c * 57 + 101) % 224, (c * 29 + 13) % 224))
    return np.asarray(colors, np.uint8)


def block_label(rng: np.random.Generator, size: Tuple[int, int], values: Sequence[int],
                block: int = 6) -> np.ndarray:
    """uint8 [H, W]: random values from ``values`` on a grid of block x block cells."""
    height, width = size
    cells = rng.choice(np.asarray(values), size=(-(-height // block), -(-width // block)))
    return np.repeat(np.repeat(cells, block, 0), block, 1)[:height, :width].astype(np.uint8)


def add_boundaries(label: np.ndarray, value: int = 255) -> np.ndarray:
    """Marks pixels where the class changes to the right or below with ``value`` (VOC-style)."""
    out = label.copy()
    change = np.zeros(label.shape, bool)
    change[:, :-1] |= label[:, :-1] != label[:, 1:]
    change[:-1, :] |= label[:-1, :] != label[1:, :]
    out[change] = value
    return out


def colour_image(label: np.ndarray, colors: np.ndarray, ignore_label: int = 255) -> np.ndarray:
    """uint8 [H, W, 3]: each pixel coloured by its class (``IGNORE_COLOR`` where ignored)."""
    image = np.empty(label.shape + (3,), np.uint8)
    for value in np.unique(label):
        image[label == value] = IGNORE_COLOR if value == ignore_label else colors[value]
    return image


def assert_aligned(image, label, colors, ignore_label, mean, source_values=None, radius=1):
    """Checks an augmented (image, label) pair made from ``colour_image``'s images.

    Labels hold only ``source_values`` (and the ignore label); every interior pixel (its
    (2r+1) x (2r+1) neighbourhood has one label) has its class's colour, or for the ignore
    label white or the ``mean`` pixel of the padding. Bilinear resizing blends colours only
    near class boundaries, which the neighbourhood excludes (radius 1 suffices for one
    align-corners resize with scale >= 0.5; use 2 after two successive resizes).

    Args:
        image: float [H, W, 3]. label: int [H, W]. colors: uint8 [num_classes, 3].
        mean: float or 3 floats, the padding value.
    """
    image = np.asarray(image, np.float32)
    label = np.asarray(label)
    if source_values is not None:
        extra = set(np.unique(label).tolist()) - set(np.asarray(source_values).tolist()) - {ignore_label}
        assert not extra, f"label values not in the source: {sorted(extra)}"
    uniform = np.ones(label.shape, bool)
    for dy in range(-radius, radius + 1):
        for dx in range(-radius, radius + 1):
            uniform &= np.roll(np.roll(label, dy, 0), dx, 1) == label
    uniform[:radius], uniform[-radius:] = False, False
    uniform[:, :radius], uniform[:, -radius:] = False, False
    assert uniform.mean() > 0.25, "too few interior pixels for a meaningful check"
    lookup = np.zeros((256, 3), np.float32)
    lookup[: len(colors)] = colors
    classes = uniform & (label != ignore_label)
    np.testing.assert_allclose(image[classes], lookup[label[classes]], atol=1e-3)
    ignored = image[uniform & (label == ignore_label)]
    is_white = np.all(np.abs(ignored - 255.0) < 1e-3, axis=-1)
    is_mean = np.all(np.abs(ignored - np.float32(mean)) < 1e-3, axis=-1)
    assert np.all(is_white | is_mean), "ignored pixels with a class colour"


def _voc_palette() -> list:
    from deeplab_tf.data.palettes import pascal_palette

    return pascal_palette().reshape(-1).tolist()


def _save_palette_png(label: np.ndarray, path: str) -> None:
    image = Image.fromarray(label)
    image.putpalette(_voc_palette())  # L -> P: the values become palette indices.
    image.save(path)


def _save_jpeg(array: np.ndarray, path: str) -> None:
    Image.fromarray(array).save(path, quality=95)


def _write_lines(path: str, lines) -> None:
    with open(path, "w") as f:
        f.write("".join(f"{line}\n" for line in lines))


def make_voc(root, num_train: int = 4, num_val: int = 2, size=(40, 50), seed: int = 0,
             num_sbd: int = 0) -> Dict:
    """VOCdevkit/VOC2012 with palette PNG labels (255 boundaries) and, with ``num_sbd`` > 0, an
    SBD ``benchmark_RELEASE/dataset`` (``cls/*.mat`` in the GTcls struct layout, ``img/``,
    ``train.txt``, ``val.txt``).

    SBD holds ``num_sbd`` images unknown to VOC (their JPEGs only in SBD's img/), plus one VOC
    train and one VOC val image, so ``train_aug`` = VOC train + the new ones (not VOC val).

    Returns:
        dict with ``root`` (for --voc_root), ``voc_dir``, ``sbd_root`` (or None), ``splits``
        (split -> ids, incl. ``train_aug`` with SBD), ``labels`` (id -> uint8 [H, W] class
        indices as converted), ``image_paths`` (id -> JPEG path).
    """
    root = str(root)
    rng = np.random.default_rng(seed)
    voc = os.path.join(root, "VOCdevkit", "VOC2012")
    for sub in ("JPEGImages", "SegmentationClass", os.path.join("ImageSets", "Segmentation")):
        os.makedirs(os.path.join(voc, sub), exist_ok=True)
    colors = class_colors(21)
    ids = [f"2007_{i:06d}" for i in range(1, num_train + num_val + 1)]
    splits = {"train": ids[:num_train], "val": ids[num_train:], "trainval": ids}
    labels, image_paths = {}, {}
    for image_id in ids:
        label = add_boundaries(block_label(rng, size, range(21)))
        labels[image_id] = label
        image_paths[image_id] = os.path.join(voc, "JPEGImages", image_id + ".jpg")
        _save_jpeg(colour_image(label, colors), image_paths[image_id])
        _save_palette_png(label, os.path.join(voc, "SegmentationClass", image_id + ".png"))
    for split, split_ids in splits.items():
        _write_lines(os.path.join(voc, "ImageSets", "Segmentation", f"{split}.txt"), split_ids)

    sbd_root = None
    if num_sbd:
        import scipy.io

        sbd_root = os.path.join(root, "benchmark_RELEASE")
        dataset = os.path.join(sbd_root, "dataset")
        for sub in ("cls", "img"):
            os.makedirs(os.path.join(dataset, sub), exist_ok=True)
        new_ids = [f"2008_{i:06d}" for i in range(1, num_sbd + 1)]
        sbd_train = new_ids[: (num_sbd + 1) // 2] + [splits["train"][0]]
        sbd_val = new_ids[(num_sbd + 1) // 2:] + [splits["val"][0]]
        for image_id in new_ids + [splits["train"][0], splits["val"][0]]:
            segmentation = block_label(rng, size, range(21))  # SBD has no 255 boundaries.
            struct = {
                "Segmentation": segmentation,
                "Boundaries": np.empty((20, 1), dtype=object),
                "CategoriesPresent": np.unique(segmentation[segmentation > 0]).astype(np.uint8),
            }
            for k in range(20):
                struct["Boundaries"][k, 0] = np.zeros((0, 0), np.uint8)
            scipy.io.savemat(os.path.join(dataset, "cls", image_id + ".mat"), {"GTcls": struct})
            if image_id in new_ids:
                labels[image_id] = segmentation
                image_paths[image_id] = os.path.join(dataset, "img", image_id + ".jpg")
                _save_jpeg(colour_image(segmentation, colors), image_paths[image_id])
        _write_lines(os.path.join(dataset, "train.txt"), sbd_train)
        _write_lines(os.path.join(dataset, "val.txt"), sbd_val)
        splits["train_aug"] = sorted(set(splits["train"]) | set(new_ids))
    return {"root": root, "voc_dir": voc, "sbd_root": sbd_root, "splits": splits,
            "labels": labels, "image_paths": image_paths}


# Cityscapes label ids used in the miniature, with their train ids (official table).
_CITYSCAPES_IDS = {0: 255, 1: 255, 4: 255, 7: 0, 8: 1, 11: 2, 17: 5, 21: 8, 23: 10, 24: 11,
                   26: 13, 29: 255, 33: 18}


def make_cityscapes(root, num_train: int = 2, num_val: int = 1, size=(40, 50), seed: int = 0,
                    cities=("aachen", "bremen")) -> Dict:
    """leftImg8bit/{train,val}/<city>/*_leftImg8bit.png and gtFine/.../*_gtFine_labelIds.png only
    (no labelTrainIds files).

    Returns:
        dict with ``root``, ``splits`` ({"train_fine": stems, "val_fine": stems}),
        ``images`` (stem -> uint8 [H, W, 3]), ``labels`` (stem -> expected train ids),
        ``label_ids`` (stem -> the label ids written).
    """
    root = str(root)
    rng = np.random.default_rng(seed)
    colors = class_colors(19)
    splits, images, labels, label_ids = {}, {}, {}, {}
    number = 0
    for subset, count in (("train", num_train), ("val", num_val)):
        stems = []
        for i in range(count):
            city = cities[i % len(cities)]
            number += 1
            stem = f"{city}_{number:06d}_{number * 19:06d}"
            ids = block_label(rng, size, list(_CITYSCAPES_IDS))
            train_ids = np.vectorize(_CITYSCAPES_IDS.get)(ids).astype(np.uint8)
            image = colour_image(train_ids, colors)
            for folder, suffix, array in (("leftImg8bit", "leftImg8bit", image),
                                          ("gtFine", "gtFine_labelIds", ids)):
                directory = os.path.join(root, folder, subset, city)
                os.makedirs(directory, exist_ok=True)
                Image.fromarray(array).save(os.path.join(directory, f"{stem}_{suffix}.png"))
            stems.append(stem)
            images[stem], labels[stem], label_ids[stem] = image, train_ids, ids
        splits[f"{subset}_fine"] = sorted(stems)
    return {"root": root, "splits": splits, "images": images, "labels": labels,
            "label_ids": label_ids}


def make_ade20k(root, num_train: int = 3, num_val: int = 2, size=(40, 50), seed: int = 0) -> Dict:
    """ADEChallengeData2016/images/{training,validation}/*.jpg + annotations/.../*.png (0..150).

    Returns:
        dict with ``root`` (for --ade20k_root), ``splits`` ({"train": stems, "val": stems}),
        ``labels`` (stem -> uint8 [H, W]), ``image_paths``.
    """
    root = str(root)
    rng = np.random.default_rng(seed)
    base = os.path.join(root, "ADEChallengeData2016")
    colors = class_colors(151)
    splits, labels, image_paths = {}, {}, {}
    for split, folder, count in (("train", "training", num_train), ("val", "validation", num_val)):
        for sub in ("images", "annotations"):
            os.makedirs(os.path.join(base, sub, folder), exist_ok=True)
        stems = [f"ADE_{folder[:5] if folder == 'training' else 'val'}_{i:08d}"
                 for i in range(1, count + 1)]
        for stem in stems:
            label = block_label(rng, size, [0, 1, 3, 13, 150])
            labels[stem] = label
            image_paths[stem] = os.path.join(base, "images", folder, stem + ".jpg")
            _save_jpeg(colour_image(label, colors, ignore_label=-1), image_paths[stem])
            Image.fromarray(label).save(os.path.join(base, "annotations", folder, stem + ".png"))
        splits[split] = stems
    return {"root": root, "splits": splits, "labels": labels, "image_paths": image_paths}


def make_folder(root, num_images: int = 6, size=(40, 50), seed: int = 0, num_classes: int = 3,
                ignore_label: int = 255, rgb_masks: bool = True) -> Dict:
    """A custom dataset: ``images/*.png`` (colour = class) and ``masks/*.png`` as RGB colour
    masks with ``palette.txt`` (or index masks with ``rgb_masks=False``). Some pixels are
    ignored (white in RGB masks).

    Returns:
        dict with ``image_dir``, ``label_dir``, ``palette_file`` (None for index masks),
        ``num_classes``, ``ignore_label``, ``colors`` (uint8 [num_classes, 3]), ``stems``,
        ``images`` (stem -> uint8 [H, W, 3]), ``labels`` (stem -> uint8 [H, W]).
    """
    root = str(root)
    rng = np.random.default_rng(seed)
    image_dir = os.path.join(root, "images")
    label_dir = os.path.join(root, "masks")
    os.makedirs(image_dir, exist_ok=True)
    os.makedirs(label_dir, exist_ok=True)
    colors = class_colors(num_classes)
    stems = [f"img_{i:03d}" for i in range(num_images)]
    images, labels = {}, {}
    for stem in stems:
        label = block_label(rng, size, list(range(num_classes)) + [ignore_label])
        image = colour_image(label, colors, ignore_label)
        Image.fromarray(image).save(os.path.join(image_dir, stem + ".png"))
        if rgb_masks:
            Image.fromarray(colour_image(label, colors, ignore_label)).save(
                os.path.join(label_dir, stem + ".png"))
        else:
            Image.fromarray(label).save(os.path.join(label_dir, stem + ".png"))
        images[stem], labels[stem] = image, label
    palette_file = None
    if rgb_masks:
        palette_file = os.path.join(root, "palette.txt")
        lines = [f"{r} {g} {b}" for r, g, b in colors.tolist()]
        lines.append("{} {} {} {}".format(*IGNORE_COLOR, ignore_label) + "  # ignored")
        _write_lines(palette_file, ["# colour -> class"] + lines)
    return {"image_dir": image_dir, "label_dir": label_dir, "palette_file": palette_file,
            "num_classes": num_classes, "ignore_label": ignore_label, "colors": colors,
            "stems": stems, "images": images, "labels": labels}
