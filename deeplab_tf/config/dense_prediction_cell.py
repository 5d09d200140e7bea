"""The Dense Prediction Cell's description: the original's JSON format, parsed and checked.

Searching for Efficient Multi-Scale Architectures for Dense Image Prediction (Chen et al.,
2018). The original reads the cell from ``--dense_prediction_cell_json``: a JSON list of
branches, branch ``i`` being the variable scope ``meta_architecture/branch{i}``::

    [{"kernel": 3, "rate": [1, 6], "op": "conv", "input": -1}, ...]

* ``op``: ``"conv"`` (a 1x1 convolution for kernel 1, else a separable convolution with the
  anisotropic atrous ``rate`` [rate_h, rate_w]) or ``"pyramid_pooling"`` (average pooling over
  a ``grid_size`` [grid_h, grid_w] of the pooling crop, a 1x1 convolution, resized back);
* ``input``: -1 for the backbone's features, ``k`` for the output of branch ``k`` (< i).

``DenseCellBranch`` holds one branch; ``parse_cell`` checks a whole cell (a ``ConfigError``
naming the branch and key); ``load_cell_json`` reads the file. ``CITYSCAPES_CELL`` is the
original's searched Cityscapes cell (``dense_prediction_cell_branch5_top1_cityscapes.json``),
used for that file name when the file itself is not there.

Example:

>>> cell = parse_cell(CITYSCAPES_CELL)
>>> cell[1].input, cell[1].rate
(0, (18, 15))
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Optional, Tuple

from deeplab_tf.errors import ConfigError

OPS = ("conv", "pyramid_pooling")
CITYSCAPES_JSON_NAME = "dense_prediction_cell_branch5_top1_cityscapes.json"
# The original's dense_prediction_cell_branch5_top1_cityscapes.json (data).
CITYSCAPES_CELL = (
    {"kernel": 3, "rate": [1, 6], "op": "conv", "input": -1},
    {"kernel": 3, "rate": [18, 15], "op": "conv", "input": 0},
    {"kernel": 3, "rate": [6, 3], "op": "conv", "input": 1},
    {"kernel": 3, "rate": [1, 1], "op": "conv", "input": 0},
    {"kernel": 3, "rate": [6, 21], "op": "conv", "input": 0},
)


def _pair(value, where, key):
    """(a, b) of positive ints from an int or a two-item list."""
    items = [value, value] if isinstance(value, int) and not isinstance(value, bool) else value
    try:
        pair = tuple(int(v) for v in items)
        exact = all(isinstance(v, int) and not isinstance(v, bool) for v in items)
    except (TypeError, ValueError):
        pair, exact = (), False
    if len(pair) != 2 or not exact or min(pair) < 1:
        raise ConfigError(f"dense_prediction_cell {where}: {key} must be a positive integer or "
                          f"two of them. Received: {key}={value!r}")
    return pair


@dataclasses.dataclass(frozen=True)
class DenseCellBranch:
    """One branch of a Dense Prediction Cell.

    Attributes:
        op: str. ``"conv"`` or ``"pyramid_pooling"``.
        input: int. -1 for the backbone's features, else the index of an earlier branch.
        kernel: (kh, kw). ``(1, 1)``: a 1x1 convolution; else a separable one.
        rate: (rate_h, rate_w). Atrous rate of the separable convolution at output stride 16
            (the network multiplies it by ``16 // output_stride``).
        grid_size: (gh, gw) or None. ``pyramid_pooling``'s grid.
    """

    op: str
    input: int
    kernel: Tuple[int, int] = (1, 1)
    rate: Tuple[int, int] = (1, 1)
    grid_size: Optional[Tuple[int, int]] = None

    def to_json(self) -> dict:
        """The branch in the original's JSON form."""
        value = {"op": self.op, "input": self.input, "kernel": list(self.kernel)}
        if self.op == "conv":
            value["rate"] = list(self.rate)
        else:
            value["grid_size"] = list(self.grid_size)
        return value


def _branch(index, value) -> DenseCellBranch:
    if isinstance(value, DenseCellBranch):
        value = value.to_json()
    where = f"branch {index}"
    if not isinstance(value, dict):
        raise ConfigError(f"dense_prediction_cell {where} must be a JSON object. "
                          f"Received: {value!r}")
    unknown = sorted(set(value) - {"op", "input", "kernel", "rate", "grid_size"})
    if unknown:
        raise ConfigError(f"dense_prediction_cell {where}: unknown keys {unknown}")
    op = value.get("op")
    if op not in OPS:
        raise ConfigError(f"dense_prediction_cell {where}: op must be one of "
                          f"{', '.join(OPS)}. Received: op={op!r}")
    source = value.get("input")
    if not isinstance(source, int) or isinstance(source, bool) or not -1 <= source < index:
        raise ConfigError(f"dense_prediction_cell {where}: input must be -1 (the features) or "
                          f"an earlier branch (0..{index - 1}). Received: input={source!r}")
    kernel = _pair(value.get("kernel", 1), where, "kernel")
    if op == "conv":
        return DenseCellBranch(op, source, kernel, _pair(value.get("rate", 1), where, "rate"))
    if "grid_size" not in value:
        raise ConfigError(f"dense_prediction_cell {where}: pyramid_pooling needs grid_size")
    return DenseCellBranch(op, source, (1, 1), (1, 1),
                           _pair(value["grid_size"], where, "grid_size"))


def parse_cell(value) -> Tuple[DenseCellBranch, ...]:
    """A cell (a list of branch dicts in the original's JSON form, or of ``DenseCellBranch``)
    as a tuple of ``DenseCellBranch``; empty for None or an empty list.

    Raises:
        ConfigError: a branch that the original would not build, naming it and its key.
    """
    if value is None:
        return ()
    if isinstance(value, (str, bytes, dict)) or not hasattr(value, "__iter__"):
        raise ConfigError("dense_prediction_cell must be a list of branches (the original's "
                          f"JSON format). Received: {value!r}"[:300])
    return tuple(_branch(index, item) for index, item in enumerate(value))


def load_cell_json(path: str) -> Tuple[DenseCellBranch, ...]:
    """Reads a cell from the original's JSON file at ``path``.

    When ``path`` does not exist and its file name is the original's
    ``dense_prediction_cell_branch5_top1_cityscapes.json`` (as its docs pass it, e.g.
    ``deeplab/core/dense_prediction_cell_branch5_top1_cityscapes.json``), the cell shipped
    here (``CITYSCAPES_CELL``) is used.

    Raises:
        ConfigError: a missing or unreadable file, or a cell ``parse_cell`` refuses.
    """
    if not os.path.exists(path) and os.path.basename(path) == CITYSCAPES_JSON_NAME:
        return parse_cell(CITYSCAPES_CELL)
    try:
        with open(path) as f:
            value = json.load(f)
    except OSError as error:
        raise ConfigError(f"Cannot read the dense prediction cell {path}: "
                          f"{error.strerror or error}") from None
    except ValueError as error:
        raise ConfigError(f"The dense prediction cell {path} is not JSON: {error}") from None
    try:
        return parse_cell(value)
    except ConfigError as error:
        raise ConfigError(f"{path}: {error}") from None
