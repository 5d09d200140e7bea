"""The original DeepLab's colour maps (``utils/get_dataset_colormap.py``) and colourisation.

Palettes are uint8 arrays [N, 3] indexed by label value:
- PASCAL VOC: the VOC development kit's bit-interleaved map, 256 entries, so the
  boundary/ignore value 255 gets VOC's cream (224, 224, 192);
- Cityscapes: the 19 train-id colours, then black (256 entries; 255 is black);
- ADE20K: 151 colours, 0 ("other", the ignore label) black.
"""

from __future__ import annotations

import numpy as np

from deeplab_tf.data import cityscapes_labels
from deeplab_tf.data.errors import DataError


def pascal_palette(num_entries: int = 256) -> np.ndarray:
    """The PASCAL VOC colour map: bits of the label value spread over R, G and B.

    Bit ``3k + c`` of the label (c = 0 red, 1 green, 2 blue) sets bit ``7 - k`` of channel c.
    """
    labels = np.arange(num_entries)
    palette = np.zeros((num_entries, 3), dtype=np.int64)
    for k in range(8):
        for channel in range(3):
            bit = (labels >> (3 * k + channel)) & 1
            palette[:, channel] |= bit << (7 - k)
    return palette.astype(np.uint8)


def cityscapes_palette() -> np.ndarray:
    """Colours of the 19 Cityscapes train ids; entries 19..255 are black."""
    palette = np.zeros((256, 3), dtype=np.uint8)
    colors = cityscapes_labels.TRAIN_ID_COLORS
    palette[: len(colors)] = colors
    return palette


_ADE20K_COLORS = (
    (0, 0, 0), (120, 120, 120), (180, 120, 120), (6, 230, 230), (80, 50, 50),
    (4, 200, 3), (120, 120, 80), (140, 140, 140), (204, 5, 255), (230, 230, 230),
    (4, 250, 7), (224, 5, 255), (235, 255, 7), (150, 5, 61), (120, 120, 70),
    (8, 255, 51), (255, 6, 82), (143, 255, 140), (204, 255, 4), (255, 51, 7),
    (204, 70, 3), (0, 102, 200), (61, 230, 250), (255, 6, 51), (11, 102, 255),
    (255, 7, 71), (255, 9, 224), (9, 7, 230), (220, 220, 220), (255, 9, 92),
    (112, 9, 255), (8, 255, 214), (7, 255, 224), (255, 184, 6), (10, 255, 71),
    (255, 41, 10), (7, 255, 255), (224, 255, 8), (102, 8, 255), (255, 61, 6),
    (255, 194, 7), (255, 122, 8), (0, 255, 20), (255, 8, 41), (255, 5, 153),
    (6, 51, 255), (235, 12, 255), (160, 150, 20), (0, 163, 255), (140, 140, 140),
    (250, 10, 15), (20, 255, 0), (31, 255, 0), (255, 31, 0), (255, 224, 0),
    (153, 255, 0), (0, 0, 255), (255, 71, 0), (0, 235, 255), (0, 173, 255),
    (31, 0, 255), (11, 200, 200), (255, 82, 0), (0, 255, 245), (0, 61, 255),
    (0, 255, 112), (0, 255, 133), (255, 0, 0), (255, 163, 0), (255, 102, 0),
    (194, 255, 0), (0, 143, 255), (51, 255, 0), (0, 82, 255), (0, 255, 41),
    (0, 255, 173), (10, 0, 255), (173, 255, 0), (0, 255, 153), (255, 92, 0),
    (255, 0, 255), (255, 0, 245), (255, 0, 102), (255, 173, 0), (255, 0, 20),
    (255, 184, 184), (0, 31, 255), (0, 255, 61), (0, 71, 255), (255, 0, 204),
    (0, 255, 194), (0, 255, 82), (0, 10, 255), (0, 112, 255), (51, 0, 255),
    (0, 194, 255), (0, 122, 255), (0, 255, 163), (255, 153, 0), (0, 255, 10),
    (255, 112, 0), (143, 255, 0), (82, 0, 255), (163, 255, 0), (255, 235, 0),
    (8, 184, 170), (133, 0, 255), (0, 255, 92), (184, 0, 255), (255, 0, 31),
    (0, 184, 255), (0, 214, 255), (255, 0, 112), (92, 255, 0), (0, 224, 255),
    (112, 224, 255), (70, 184, 160), (163, 0, 255), (153, 0, 255), (71, 255, 0),
    (255, 0, 163), (255, 204, 0), (255, 0, 143), (0, 255, 235), (133, 255, 0),
    (255, 0, 235), (245, 0, 255), (255, 0, 122), (255, 245, 0), (10, 190, 212),
    (214, 255, 0), (0, 204, 255), (20, 0, 255), (255, 255, 0), (0, 153, 255),
    (0, 41, 255), (0, 255, 204), (41, 0, 255), (41, 255, 0), (173, 0, 255),
    (0, 245, 255), (71, 0, 255), (122, 0, 255), (0, 255, 184), (0, 92, 255),
    (184, 255, 0), (0, 133, 255), (255, 214, 0), (25, 194, 194), (102, 255, 0),
    (92, 0, 255),
)


def ade20k_palette() -> np.ndarray:
    """The ADE20K benchmark's 151 colours (index 0, "other", is black)."""
    return np.asarray(_ADE20K_COLORS, dtype=np.uint8)


def as_palette(colors, num_entries: int = 256) -> np.ndarray:
    """A palette of ``num_entries`` from a list of (r, g, b): missing entries come from VOC's."""
    given = np.asarray(colors, dtype=np.int64).reshape(-1, 3)
    if given.size and (given.min() < 0 or given.max() > 255):
        raise DataError(f"Palette colours must be in [0, 255]. Received: {given.tolist()[:4]}...")
    palette = pascal_palette(max(num_entries, len(given)))
    palette[: len(given)] = given
    return palette


def colorize(label_array, palette) -> np.ndarray:
    """Colours a label map: uint8 RGB [..., 3] with ``palette[label]``.

    Args:
        label_array: integer array [H, W] (or [H, W, 1]) of label values.
        palette: uint8 array [N, 3].

    Raises:
        ValueError: if a label value is outside ``[0, N)`` (the values are shown).
    """
    label = np.asarray(label_array)
    if label.ndim == 3 and label.shape[-1] == 1:
        label = label[..., 0]
    if not np.issubdtype(label.dtype, np.integer):
        raise ValueError(f"colorize expects an integer label map. Received: dtype={label.dtype}")
    palette = np.asarray(palette, dtype=np.uint8)
    bad = np.unique(label[(label < 0) | (label >= len(palette))])
    if bad.size:
        raise ValueError(
            f"Label values outside the palette's [0, {len(palette)}): {bad[:10].tolist()}")
    return palette[label]
