"""The Cityscapes label table: label ids, train ids, class names and colours (facts only).

The one place these facts live: the registry, the Cityscapes converter, the TFDS source and
the palettes import them from here. Values as the official ``cityscapesscripts`` label table
(``helpers/labels.py``): ``(name, labelId, trainId)``, trainId 255 for labels not used in
training; the 19 train ids' colours are the benchmark's.
"""

from __future__ import annotations

IGNORE_LABEL = 255

# (name, label id, train id). (License plate, id -1, never occurs in labelIds images.)
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

# Names of the 19 train ids, in train-id order.
CLASS_NAMES = tuple(name for name, _, train_id in sorted(LABELS, key=lambda l: l[2])
                    if train_id != IGNORE_LABEL)

# Colours of the 19 train ids.
TRAIN_ID_COLORS = (
    (128, 64, 128), (244, 35, 232), (70, 70, 70), (102, 102, 156), (190, 153, 153),
    (153, 153, 153), (250, 170, 30), (220, 220, 0), (107, 142, 35), (152, 251, 152),
    (70, 130, 180), (220, 20, 60), (255, 0, 0), (0, 0, 142), (0, 0, 70),
    (0, 60, 100), (0, 80, 100), (0, 0, 230), (119, 11, 32),
)

# Split sizes of the official release (the original's data_generator.py figures).
SPLIT_SIZES = {"train_fine": 2975, "val_fine": 500, "test_fine": 1525,
               "trainval_fine": 3475, "train_coarse": 22973, "trainval_coarse": 23473}

# The original's first Cityscapes converter named the fine splits "train" and "val" (its
# g3doc/cityscapes.md commands still say --train_split="train" / --eval_split="val"); later
# versions, and this project's converter, name them train_fine / val_fine.
OLD_SPLIT_NAMES = {"train": "train_fine", "val": "val_fine", "test": "test_fine",
                   "trainval": "trainval_fine"}


def label_id_to_train_id_table(unknown: int = 255) -> tuple:
    """256 entries: the train id of each label id; ids outside the table map to ``unknown``."""
    table = [unknown] * 256
    for _, label_id, train_id in LABELS:
        table[label_id] = train_id
    return tuple(table)


def train_id_to_label_id() -> dict:
    """``{train id: label id}`` of the 19 training classes (for writing official results)."""
    return {train_id: label_id for _, label_id, train_id in LABELS if train_id != IGNORE_LABEL}
