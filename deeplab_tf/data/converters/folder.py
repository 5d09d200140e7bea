"""Any images folder + masks folder -> TFRecord shards (``deeplab-build-folder``).

Images and masks are matched by file stem (``images/abc.jpg`` <-> ``masks/abc.png``). Masks are
either index masks (greyscale or palette PNGs whose values are the classes) or, given a palette
file, colour masks (RGB or palette images) whose colours are mapped to classes.

Palette file: one colour per line, ``R G B`` (commas allowed), the n-th such line being class
n; a line ``R G B VALUE`` maps that colour to an explicit label value (e.g. the ignore label);
``#`` starts a comment. Example::

    0 0 0          # class 0: background
    128 0 0        # class 1
    255 255 255 255  # white: ignored

Splits come from list files (``split_lists``: split name -> file of stems, one per line) or,
without lists, from a seeded random ``val_fraction`` of the images (``train`` / ``val``).
The manifest records the classes, so ``--dataset_dir`` alone then describes the dataset.
"""

from __future__ import annotations

import os
import random
import re
from typing import Dict, List, Mapping, Optional, Sequence

from deeplab_tf.data import palettes
from deeplab_tf.data import image_io
from deeplab_tf.data import registry
from deeplab_tf.data.converters.conversion import convert_dataset
from deeplab_tf.data.converters.encoding import Source
from deeplab_tf.data.converters.errors import ConversionError
from deeplab_tf.data.converters.labels import ColorLabels, read_index_png
from deeplab_tf.fileio import read_text

DEFAULT_NUM_SHARDS = 4
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")


def read_palette_file(path: str) -> tuple:
    """``((r, g, b), label_value)`` pairs of a palette file (format in the module docstring)."""
    if not os.path.isfile(path):
        raise ConversionError(f"{path}: palette file not found")
    pairs, next_class, seen = [], 0, set()
    text = read_text(path, "one colour per line: R G B [value]", ConversionError)
    for number, line in enumerate(text.splitlines(), 1):
        fields = [x for x in re.split(r"[\s,]+", line.split("#")[0].strip()) if x]
        if not fields:
            continue
        try:
            values = [int(x) for x in fields]
        except ValueError:
            values = []
        if len(values) not in (3, 4) or not all(0 <= v <= 255 for v in values):
            raise ConversionError(
                f"{path}:{number}: expected 'R G B' or 'R G B VALUE' in 0..255, got {line.strip()!r}")
        color = tuple(values[:3])
        if color in seen:
            raise ConversionError(f"{path}:{number}: colour {color} listed twice")
        seen.add(color)
        if len(values) == 3:
            pairs.append((color, next_class))
            next_class += 1
        else:
            pairs.append((color, values[3]))
    if not pairs:
        raise ConversionError(f"{path}: palette file lists no colours")
    return tuple(pairs)


def _index_by_stem(directory: str) -> Dict[str, str]:
    if not os.path.isdir(directory):
        raise ConversionError(f"{directory}: directory not found")
    by_stem = {}
    for name in sorted(os.listdir(directory)):
        stem, extension = os.path.splitext(name)
        if extension.lower() not in IMAGE_EXTENSIONS:
            continue
        if stem in by_stem:
            raise ConversionError(
                f"{os.path.join(directory, name)}: stem {stem!r} also used by {by_stem[stem]}")
        by_stem[stem] = os.path.join(directory, name)
    if not by_stem:
        raise ConversionError(f"{directory}: no image files ({', '.join(IMAGE_EXTENSIONS)})")
    return by_stem


def _read_stems(path: str) -> List[str]:
    if not os.path.isfile(path):
        raise ConversionError(f"{path}: split list not found")
    stems = []
    for line in read_text(path, "one image name per line", ConversionError).splitlines():
        name = line.strip()
        if name:
            stem, extension = os.path.splitext(os.path.basename(name))
            stems.append(stem if extension.lower() in IMAGE_EXTENSIONS else os.path.basename(name))
    return stems


def collect_splits(image_dir: str, label_dir: str, label_reader, *,
                   split_lists: Optional[Mapping[str, str]] = None, val_fraction: float = 0.0,
                   seed: int = 0) -> Dict[str, List[Source]]:
    """{split: examples}: from list files, or a seeded ``val_fraction`` of all images."""
    images = _index_by_stem(image_dir)
    masks = _index_by_stem(label_dir)

    def source(stem: str, where: str) -> Source:
        if stem not in images:
            raise ConversionError(f"{where}: no image with stem {stem!r} in {image_dir}")
        if stem not in masks:
            raise ConversionError(f"{images[stem]}: no mask with stem {stem!r} in {label_dir}")
        return Source(stem, images[stem], masks[stem], label_reader)

    if split_lists:
        return {split: [source(stem, path) for stem in _read_stems(path)]
                for split, path in split_lists.items()}
    if not 0.0 <= val_fraction < 1.0:
        raise ConversionError(f"val_fraction must be in [0, 1), got {val_fraction}")
    stems = sorted(images)
    sources = [source(stem, images[stem]) for stem in stems]
    if val_fraction == 0.0:
        return {"train": sources}
    num_val = max(1, int(round(len(sources) * val_fraction)))
    if num_val >= len(sources):
        raise ConversionError(
            f"val_fraction={val_fraction} of {len(sources)} images leaves no training image")
    order = list(range(len(sources)))
    random.Random(seed).shuffle(order)
    val = sorted(order[:num_val])
    train = sorted(order[num_val:])
    return {"train": [sources[i] for i in train], "val": [sources[i] for i in val]}


def convert(image_dir: str, label_dir: str, output_dir: str, *, num_classes: int,
            ignore_label: int = 255, class_names: Optional[Sequence[str]] = None,
            palette_file: Optional[str] = None, split_lists: Optional[Mapping[str, str]] = None,
            val_fraction: float = 0.0, seed: int = 0, dataset_name: Optional[str] = None,
            num_shards: int = DEFAULT_NUM_SHARDS, num_workers: int = 1,
            skip_invalid: bool = False, show_progress: bool = True,
            max_image_pixels: int = image_io.DEFAULT_MAX_IMAGE_PIXELS) -> dict:
    """Converts an images folder + masks folder to shards + manifest; returns the manifest.

    Args:
        image_dir: str. Folder of images.
        label_dir: str. Folder of masks, matched to images by stem.
        output_dir: str. Destination of the shards and manifest.json.
        num_classes: int. Number of classes; mask values must be in [0, num_classes) or
            ``ignore_label``.
        ignore_label: int. Label value ignored in training and evaluation.
        class_names: names of the classes; default ``class_0``, ``class_1``, ...
        palette_file: str or None. Colour masks: maps colours to label values (also recorded
            as the dataset's palette). None: masks hold class indices.
        split_lists: dict split -> list file of stems; None: use ``val_fraction``.
        val_fraction: float. Fraction of images put in ``val`` (seeded by ``seed``).
        seed: int. Seed of the train/val draw.
        dataset_name: str. Name recorded in the manifest; default: the output folder's name.
        num_shards, num_workers, skip_invalid, show_progress: see convert_dataset.
    """
    if num_classes < 1:
        raise ConversionError(f"num_classes must be >= 1, got {num_classes}")
    names = list(class_names) if class_names else [f"class_{i}" for i in range(num_classes)]
    if len(names) != num_classes:
        raise ConversionError(f"{len(names)} class names given for num_classes={num_classes}")
    name = dataset_name or os.path.basename(os.path.normpath(output_dir))
    if name in registry.DATASETS:
        raise ConversionError(
            f"dataset name {name!r} is a registry dataset; give the custom dataset another name")
    palette = None
    if palette_file:
        colors = read_palette_file(palette_file)
        reader = ColorLabels(colors)
        size = max(num_classes, max(value for _, value in colors) + 1)
        palette_array = palettes.as_palette([], size)[:size]
        for color, value in colors:
            palette_array[value] = color
        palette = palette_array.tolist()
    else:
        reader = read_index_png
    splits = collect_splits(image_dir, label_dir, reader, split_lists=split_lists,
                            val_fraction=val_fraction, seed=seed)
    return convert_dataset(
        output_dir=output_dir,
        dataset_name=name,
        class_names=names,
        ignore_label=ignore_label,
        splits=splits,
        num_shards=num_shards,
        num_workers=num_workers,
        skip_invalid=skip_invalid,
        palette=palette,
        created_by="deeplab-build-folder",
        source=os.path.abspath(image_dir),
        show_progress=show_progress,
        max_image_pixels=max_image_pixels,
    )
