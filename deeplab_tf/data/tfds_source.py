"""TensorFlow Datasets as a source: ``--dataset=tfds:NAME[/CONFIG]``.

Reads a TFDS dataset the user has already prepared (``tfds build`` / ``download_and_prepare``;
nothing is downloaded here) and maps its features to the pipeline's (image, label), so the
same training and evaluation run on it. Supported datasets, each with its feature names and
the mapping of its stored label values to class ids (``ADAPTERS``):

- ``cityscapes/semantic_segmentation`` (and ``.../semantic_segmentation_extra``): images
  ``image_left``, labels ``segmentation_label`` holding Cityscapes label ids, mapped to the 19
  train ids with the official label table (255 ignored), i.e. the registry's ``cityscapes``;
- ``oxford_iiit_pet``: ``image`` and the trimap ``segmentation_mask`` (1 pet, 2 background,
  3 border), mapped to 0 background, 1 pet, 255 (ignored) border.

Split names of this project are translated (``val`` -> ``validation``, ``train_fine`` ->
``train``, ...) when the dataset has no split of that name.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Optional, Tuple

import numpy as np
import tensorflow as tf

from deeplab_tf.data import cityscapes_labels, image_io, palettes
from deeplab_tf.data.dataset_info import TFDS_PREFIX, DatasetInfo
from deeplab_tf.data.errors import DataError

# Our split names -> TFDS split names, used when the dataset has no split of our name.
SPLIT_ALIASES = {
    "val": "validation",
    "train_fine": "train",
    "val_fine": "validation",
    "test_fine": "test",
    "train_coarse": "train_extra",
}


@dataclasses.dataclass(frozen=True)
class Adapter:
    """How one TFDS dataset's features become (image, label).

    Args:
        image_key: str. Feature holding the RGB image.
        label_key: str. Feature holding the single-channel label image.
        filename_key: str or None. Feature naming the example.
        label_table: tuple of 256 ints. Class id (or ignore label) of each stored label value.
        info: DatasetInfo. Classes, ignore label and palette (splits are filled in
            from the prepared dataset).
    """

    image_key: str
    label_key: str
    filename_key: Optional[str]
    label_table: Tuple[int, ...]
    info: DatasetInfo


def _pet_table() -> Tuple[int, ...]:
    table = [255] * 256
    table[1], table[2] = 1, 0  # 1: pet, 2: background; 3 (border) and the rest: ignored.
    return tuple(table)


ADAPTERS = {
    "cityscapes": Adapter(
        image_key="image_left",
        label_key="segmentation_label",
        filename_key="image_id",
        label_table=cityscapes_labels.label_id_to_train_id_table(),
        info=DatasetInfo(
            name="cityscapes",
            num_classes=len(cityscapes_labels.CLASS_NAMES),
            ignore_label=cityscapes_labels.IGNORE_LABEL,
            class_names=cityscapes_labels.CLASS_NAMES,
            splits={},
            palette=palettes.cityscapes_palette(),
        ),
    ),
    "oxford_iiit_pet": Adapter(
        image_key="image",
        label_key="segmentation_mask",
        filename_key="file_name",
        label_table=_pet_table(),
        info=DatasetInfo(
            name="oxford_iiit_pet",
            num_classes=2,
            ignore_label=255,
            class_names=("background", "pet"),
            splits={},
            palette=palettes.pascal_palette(),
        ),
    ),
}


def get_adapter(name: str) -> Adapter:
    """The adapter of ``NAME[/CONFIG]``; raises ValueError for unsupported datasets."""
    base = name.split("/")[0].split(":")[0]
    if base not in ADAPTERS:
        raise DataError(
            f"TFDS dataset {name!r} is not supported as a segmentation source; supported: "
            f"{', '.join(sorted(ADAPTERS))}")
    return ADAPTERS[base]


def _builder(name: str, data_dir: Optional[str]):
    import tensorflow_datasets as tfds  # Optional dependency (extra [tfds]).

    return tfds.builder(name, data_dir=data_dir)


def dataset_info(name: str, data_dir: Optional[str] = None) -> DatasetInfo:
    """The registry-style description of ``tfds:NAME``, with the prepared splits' sizes."""
    adapter = get_adapter(name)
    try:
        splits = {k: int(v.num_examples) for k, v in _builder(name, data_dir).info.splits.items()}
    except Exception:  # noqa: BLE001 -- not prepared or no metadata: sizes unknown.
        splits = {}
    return dataclasses.replace(adapter.info, name=TFDS_PREFIX + name, splits=splits)


def resolve_split(builder, split: str) -> str:
    known = set(builder.info.splits.keys())
    base = split.split("[")[0]
    if base in known or base not in SPLIT_ALIASES:
        return split
    return SPLIT_ALIASES[base] + split[len(base):]


def load_records(name: str, split: str, data_dir: Optional[str] = None, *,
                 shuffle_files: bool = False, seed: Optional[int] = None,
                 num_readers: int = 4, input_context=None
                 ) -> Tuple[tf.data.Dataset, Callable]:
    """Encoded records of a prepared TFDS split and the function that decodes one.

    Args:
        name: str. ``NAME[/CONFIG]`` (optionally ``:VERSION``).
        split: str. Split (TFDS slicing syntax allowed, e.g. ``train[:10%]``).
        data_dir: str or None. TFDS data directory; None for TFDS's default.
        shuffle_files: bool. Shuffle the TFDS files (training).
        seed: int or None. File-shuffle seed.
        num_readers: int. Files read in parallel.
        input_context: tf.distribute.InputContext or None. Shards files per input pipeline.

    Returns:
        (dataset of dicts of encoded features, decode_fn) where ``decode_fn(record)`` gives
        ``(image uint8 [H, W, 3], label uint8 [H, W, 1], filename string)``.
    """
    import tensorflow_datasets as tfds

    adapter = get_adapter(name)
    builder = _builder(name, data_dir)
    read_config = tfds.ReadConfig(
        shuffle_seed=seed, interleave_cycle_length=num_readers, input_context=input_context)
    skip = tfds.decode.SkipDecoding()
    dataset = builder.as_dataset(
        split=resolve_split(builder, split), shuffle_files=shuffle_files,
        decoders={adapter.image_key: skip, adapter.label_key: skip}, read_config=read_config)
    table = tf.constant(np.asarray(adapter.label_table, np.uint8))

    def decode_fn(record):
        image = image_io.decode_image_tensor(record[adapter.image_key])
        label = image_io.decode_label_tensor(record[adapter.label_key])
        label = tf.gather(table, tf.cast(label, tf.int32))
        label.set_shape([None, None, 1])
        filename = record.get(adapter.filename_key, tf.constant(""))
        if filename.dtype != tf.string:
            filename = tf.strings.as_string(filename)
        return image, label, filename

    keep = [k for k in (adapter.image_key, adapter.label_key, adapter.filename_key) if k]
    dataset = dataset.map(lambda ex: {k: ex[k] for k in keep if k in ex})
    return dataset, decode_fn
