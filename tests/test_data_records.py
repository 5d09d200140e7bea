"""Corrupt and truncated shards in the pipeline: named and stopped, or skipped and counted;
each example knows its shard and record."""

import os

import numpy as np
import pytest
import tensorflow as tf

from deeplab_tf.config import DataConfig
from deeplab_tf.data import pipeline, records, schema
from deeplab_tf.data.converters import folder
from tests import miniature


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    root = tmp_path_factory.mktemp("records")
    info = miniature.make_folder(root / "raw", num_images=6, num_classes=3)
    output_dir = str(root / "data")
    folder.convert(info["image_dir"], info["label_dir"], output_dir, num_classes=3,
                   palette_file=info["palette_file"], dataset_name="rec", num_shards=2,
                   show_progress=False)
    return output_dir


def _damaged_copy(src_dir, dst_dir, how):
    import shutil

    shutil.copytree(src_dir, dst_dir)
    shard = schema.list_shards(dst_dir, "train")[1]
    data = bytearray(open(shard, "rb").read())
    if how == "truncate":
        data = data[: len(data) - 100]
    else:  # Flip a byte inside the second record's data: its CRC fails.
        first_length = int.from_bytes(data[:8], "little")
        data[12 + first_length + 4 + 12 + 50] ^= 0xFF
    open(shard, "wb").write(bytes(data))
    return shard


def test_count_complete_records(converted, tmp_path):
    shard = schema.list_shards(converted, "train")[0]
    assert records.count_complete_records(shard) == (3, True)
    cut = tmp_path / "cut.tfrecord"
    cut.write_bytes(open(shard, "rb").read()[:-5])
    assert records.count_complete_records(str(cut)) == (2, False)


@pytest.mark.parametrize("how, record", [("truncate", 2), ("flip", 1)])
def test_corrupt_shard_is_named_or_skipped(converted, tmp_path, capfd, how, record):
    output_dir = str(tmp_path / "data")
    shard = _damaged_copy(converted, output_dir, how)
    config = DataConfig(dataset="", dataset_dir=output_dir)
    with pytest.raises(tf.errors.InvalidArgumentError) as error:
        list(pipeline.eval_dataset(config, "train", mean_pixel=0.0))
    assert records.error_message(error.value) == f"{shard}: record {record} is corrupt (truncated?)"

    skip = DataConfig(dataset="", dataset_dir=output_dir, skip_corrupt_records=True)
    capfd.readouterr()
    examples = list(pipeline.eval_dataset(skip, "train", mean_pixel=0.0))
    assert len(examples) == 3 + record
    said = [line for line in capfd.readouterr().err.splitlines() if "is corrupt" in line]
    assert said == [f"{shard}: record {record} is corrupt (truncated?): skipped the rest of "
                    f"this shard ({3 - record} record(s))"]
    sources = [(ex["shard"].numpy()[0].decode(), int(ex["record"].numpy()[0])) for ex in examples]
    assert sources == [(schema.list_shards(output_dir, "train")[0], i) for i in range(3)] + [
        (shard, i) for i in range(record)]


def test_training_batches_name_their_records(converted):
    config = DataConfig(dataset="", dataset_dir=converted, train_crop_size=(17, 19), seed=0)
    images, labels, source = next(iter(pipeline.train_dataset(
        config, batch_size=6, mean_pixel=127.5, with_source=True)))
    assert images.shape == (6, 17, 19, 3) and labels.shape == (6, 17, 19, 1)
    pairs = sorted((os.path.basename(s.decode()), int(i)) for s, i in
                   zip(source["shard"].numpy(), source["record"].numpy()))
    shards = [os.path.basename(s) for s in schema.list_shards(converted, "train")]
    assert pairs == sorted((s, i) for s in shards for i in range(3))
    names = sorted(n.decode() for n in source["filename"].numpy())
    assert names == [f"img_{i:03d}" for i in range(6)]
    # Default: (images, labels) only, as Keras fit takes.
    assert len(next(iter(pipeline.train_dataset(config, batch_size=2, mean_pixel=0.0)))) == 2
    assert np.all(np.isfinite(images.numpy()))
