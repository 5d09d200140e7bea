"""Label readers: picklable callables ``reader(path) -> 2-D integer array of label values``.

They are sent to worker processes with the examples; file formats and modes are
``data.image_io``'s.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from deeplab_tf.data import image_io
from deeplab_tf.data.converters.errors import ConversionError


def read_index_png(path: str) -> np.ndarray:
    """Class indices of a single-channel mask: greyscale, or palette (the palette index is the
    class, as VOC's ``SegmentationClass`` PNGs).

    Raises:
        ConversionError: for a colour mask, an alpha channel, 16-bit values or an
            undecodable file (skippable).
    """
    try:
        return image_io.read_index_label(path)
    except image_io.ImageError as e:
        raise ConversionError(str(e), skippable=True) from None


@dataclasses.dataclass(frozen=True)
class LookupLabels:
    """Maps a stored label value ``v`` to ``table[v]``; values with ``table[v] < 0`` are errors.

    Args:
        table: tuple of int, indexed by the stored value.
        what: str. What the stored values are, for error messages (e.g. "Cityscapes labelId").
    """

    table: tuple
    what: str = "label"

    def __call__(self, path: str) -> np.ndarray:
        raw = read_index_png(path).astype(np.int64)
        table = np.asarray(self.table, np.int64)
        unknown = np.unique(raw[(raw < 0) | (raw >= len(table))])
        if unknown.size == 0:
            mapped = table[raw]
            unknown = np.unique(raw[mapped < 0])
        if unknown.size:
            raise ConversionError(
                f"{path}: {self.what} values not in the label table: {unknown[:10].tolist()}",
                skippable=True)
        return mapped


@dataclasses.dataclass(frozen=True)
class ColorLabels:
    """Maps mask colours to label values (RGB or palette masks; a palette is given).

    Args:
        colors: tuple of ((r, g, b), value) pairs.
    """

    colors: tuple

    def __call__(self, path: str) -> np.ndarray:
        try:
            rgb = image_io.read_color_label(path)
        except image_io.ImageError as e:
            raise ConversionError(str(e), skippable=True) from None
        codes = (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]
        keys = np.asarray([(r << 16) | (g << 8) | b for (r, g, b), _ in self.colors], np.int64)
        values = np.asarray([v for _, v in self.colors], np.int64)
        order = np.argsort(keys)
        keys, values = keys[order], values[order]
        position = np.clip(np.searchsorted(keys, codes), 0, len(keys) - 1)
        known = keys[position] == codes
        if not known.all():
            bad = np.unique(codes[~known])[:5]
            shown = ", ".join(f"({c >> 16}, {(c >> 8) & 255}, {c & 255})" for c in bad)
            raise ConversionError(f"{path}: mask colours not in the palette: {shown}",
                                  skippable=True)
        return values[position]
