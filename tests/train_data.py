"""Small converted datasets for the training tests: coloured-shape scenes as TFRecord shards.

Scenes come from ``deeplab_tf.demo.scenes.make_scene`` (a textured background with one to three
coloured shapes; classes 0-4, 255 on shape boundaries), written in the project's schema with a
``manifest.json``, so ``deeplab-train --dataset= --dataset_dir=DIR`` reads them like any
converted custom dataset.

Example:
    write_shapes_dataset(tmp_path / "data", splits={"train": 8, "val": 4}, size=(48, 48))
"""

from __future__ import annotations

import io
import os
from typing import Mapping, Optional, Tuple

import numpy as np
import tensorflow as tf
from PIL import Image

from deeplab_tf.data import manifest, schema
from deeplab_tf.demo.scenes import DEMO_CLASSES, make_scene

NAME = "shapes"
NUM_CLASSES = len(DEMO_CLASSES)
IGNORE_LABEL = 255


def _png(array) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def write_shapes_dataset(directory, splits: Mapping[str, int], size: Tuple[int, int] = (48, 48),
                         seed: int = 0, num_shards: int = 1,
                         bad_label: Optional[int] = None) -> str:
    """Writes ``<split>-%05d-of-%05d.tfrecord`` shards and a manifest; returns the directory.

    Args:
        directory: where to write.
        splits: {split name: number of examples}; 0 writes an empty shard.
        size: (height, width) of every scene.
        seed: scenes are a function of the seed.
        num_shards: shards per split.
        bad_label: if set, a block of every label takes this value (for error tests).
    """
    directory = str(directory)
    os.makedirs(directory, exist_ok=True)
    rng = np.random.default_rng(seed)
    for split, count in splits.items():
        paths = [os.path.join(directory, schema.shard_name(split, i, num_shards))
                 for i in range(num_shards)]
        writers = [tf.io.TFRecordWriter(path) for path in paths]
        for index in range(count):
            image, label = make_scene(rng, size)
            if bad_label is not None:
                label[: size[0] // 4, : size[1] // 4] = bad_label
            writers[index % num_shards].write(schema.encode_example(
                _png(image), "png", f"{split}_{index:04d}", size[0], size[1], _png(label)))
        for writer in writers:
            writer.close()
    manifest.write_manifest(directory, {
        "dataset": NAME, "num_classes": NUM_CLASSES, "ignore_label": IGNORE_LABEL,
        "class_names": list(DEMO_CLASSES),
        "splits": {split: {"num_examples": count, "num_shards": num_shards}
                   for split, count in splits.items()}})
    return directory
