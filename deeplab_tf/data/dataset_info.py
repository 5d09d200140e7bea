"""``DatasetInfo``: what training and evaluation need to know about a dataset.

Kept apart from the registry so that sources (``tfds_source``) can describe their datasets
without importing the registry that dispatches to them.
"""

from __future__ import annotations

import dataclasses
from typing import Mapping, Tuple

import numpy as np

TFDS_PREFIX = "tfds:"


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
    """What the training and evaluation code needs to know about a dataset.

    Args:
        name: str. Registry name, custom dataset name or ``tfds:NAME[/CONFIG]``.
        num_classes: int. Number of classes (logits channels).
        ignore_label: int. Label value excluded from the loss and the metrics.
        class_names: tuple of str, one per class id.
        splits: dict split name -> number of examples.
        palette: uint8 array [N, 3] of colours by label value (N > every label value).
    """

    name: str
    num_classes: int
    ignore_label: int
    class_names: Tuple[str, ...]
    splits: Mapping[str, int]
    palette: np.ndarray = dataclasses.field(compare=False, repr=False)
