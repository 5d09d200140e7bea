"""Corrupt and truncated shards in the pipeline: named and stopped, or skipped and counted;
each example knows its shard and record."""

import os
import re

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


@pytest.mark.parametrize("how, record, why", [
    ("truncate", 2, r"length \d+ beyond the end of the file"), ("flip", 1, "checksum mismatch")])
def test_corrupt_shard_is_named_or_skipped(converted, tmp_path, capfd, how, record, why):
    output_dir = str(tmp_path / "data")
    shard = _damaged_copy(converted, output_dir, how)
    config = DataConfig(dataset="", dataset_dir=output_dir)
    with pytest.raises(tf.errors.InvalidArgumentError) as error:
        list(pipeline.eval_dataset(config, "train", mean_pixel=0.0))
    line = records.error_message(error.value)
    assert re.fullmatch(re.escape(f"{shard}: record {record} is corrupt (") + why + r"\)", line)

    skip = DataConfig(dataset="", dataset_dir=output_dir, skip_corrupt_records=True)
    capfd.readouterr()
    examples = list(pipeline.eval_dataset(skip, "train", mean_pixel=0.0))
    assert len(examples) == 3 + record
    said = [line for line in capfd.readouterr().err.splitlines() if "is corrupt" in line]
    assert said == [f"{line}: skipped the rest of this shard ({3 - record} record(s))"]
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


LIMIT = 1000  # pixels: "big" (30x40 = 1200) is over it, the others are not


@pytest.fixture(scope="module")
def over_limit(tmp_path_factory):
    """One shard: a small PNG, a PNG over the limit, a small JPEG, and a PNG whose record
    claims a small size while its header says 40x40 (the header is what is decoded)."""
    from export_helpers import encode_jpeg, encode_png

    from deeplab_tf.data import manifest

    directory = str(tmp_path_factory.mktemp("pixels"))
    rng = np.random.default_rng(0)
    shard = os.path.join(directory, schema.shard_name("val", 0, 1))
    examples = [("small", (20, 25), "png", (20, 25)), ("big", (30, 40), "png", (30, 40)),
                ("photo", (24, 30), "jpeg", (24, 30)), ("liar", (40, 40), "png", (10, 10))]
    with tf.io.TFRecordWriter(shard) as writer:
        for name, size, fmt, claimed in examples:
            image = rng.integers(0, 256, size + (3,), dtype=np.uint8)
            encoded = encode_png(image) if fmt == "png" else encode_jpeg(image)
            writer.write(schema.encode_example(encoded, fmt, name, *claimed,
                                               encode_png(np.zeros(size, np.uint8))))
    manifest.write_manifest(directory, {
        "format_version": 1, "dataset": "pixels", "num_classes": 3, "ignore_label": 255,
        "class_names": ["a", "b", "c"], "splits": {"val": {"num_examples": len(examples)}}})
    return directory, shard


def _names(examples):
    return [ex["filename"].numpy()[0].decode() for ex in examples]


def test_image_over_the_pixel_limit_is_named_before_decoding(over_limit, capfd):
    directory, shard = over_limit
    config = DataConfig(dataset="", dataset_dir=directory, max_image_pixels=LIMIT)
    with pytest.raises(tf.errors.InvalidArgumentError) as error:
        list(pipeline.eval_dataset(config, "val", mean_pixel=0.0))
    assert records.error_message(error.value) == (
        f"{shard}: record 1 (big): image 30x40 needs 1200 pixels (as inference pads, scales "
        f"and flips it), over the limit --max_image_pixels={LIMIT}")

    skip = DataConfig(dataset="", dataset_dir=directory, max_image_pixels=LIMIT,
                      skip_corrupt_records=True)
    capfd.readouterr()
    examples = list(pipeline.eval_dataset(skip, "val", mean_pixel=0.0))
    assert _names(examples) == ["small", "photo"]
    assert [ex["height"].numpy()[0] * ex["width"].numpy()[0] for ex in examples] == [500, 720]
    # The records are checked in parallel: the lines come in either order.
    said = sorted(line for line in capfd.readouterr().err.splitlines()
                  if "max_image_pixels" in line)
    assert said == [
        f"{shard}: record 1 (big): image 30x40 needs 1200 pixels (as inference pads, scales "
        f"and flips it), over the limit --max_image_pixels={LIMIT}: skipped",
        f"{shard}: record 3 (liar): image 40x40 needs 1600 pixels (as inference pads, scales "
        f"and flips it), over the limit --max_image_pixels={LIMIT}: skipped"]
    # Training skips them too, and says so once per record, not once an epoch (3 batches of
    # 8 from the 2 records left: 12 epochs); at the default limit (and with 0: none) every
    # record is read.
    train = DataConfig(dataset="", dataset_dir=directory, train_split="val", seed=0,
                       train_crop_size=(17, 19), max_image_pixels=LIMIT,
                       min_scale_factor=1.0, max_scale_factor=1.0, skip_corrupt_records=True)
    batches = list(pipeline.train_dataset(train, batch_size=8, mean_pixel=0.0,
                                          with_source=True).take(3))
    for _, _, source in batches:
        assert sorted({n.decode() for n in source["filename"].numpy()}) == ["photo", "small"]
    said_in_training = [line for line in capfd.readouterr().err.splitlines()
                        if "max_image_pixels" in line]
    assert sorted(said_in_training) == [
        line.replace("as inference pads, scales and flips it",
                     "resized, at the largest scale, padded to the crop") for line in said]
    for limit in (DataConfig().max_image_pixels, 0):
        every = DataConfig(dataset="", dataset_dir=directory, max_image_pixels=limit)
        assert _names(pipeline.eval_dataset(every, "val", mean_pixel=0.0).take(3)) == [
            "small", "big", "photo"]
    with pytest.raises(ValueError, match=r"max_image_pixels must be an integer >= 0 .*=-1"):
        DataConfig(max_image_pixels=-1)


def test_eval_path_in_process_says_which_record_is_over_the_flags_limit(over_limit, capfd,
                                                                          monkeypatch):
    """deeplab-eval's path without a model or a subprocess (seconds): run_app parses
    --max_image_pixels into the DataConfig, the evaluation reads the split and stops on the
    record, and run_app prints that line with exit status 1."""
    from absl import app, flags
    from absl.testing import flagsaver

    from deeplab_tf.cli._common import run_app
    from deeplab_tf.cli.flags import data
    from deeplab_tf.evaluation import evaluator

    directory, shard = over_limit

    def main(argv):
        config = data.data_config(eval_split="val")
        assert config.max_image_pixels == LIMIT
        evaluator.evaluate(lambda images: tf.zeros(tf.shape(images)[:3], tf.int32),
                           pipeline.eval_dataset(config, "val", mean_pixel=0.0),
                           num_classes=3, ignore_label=255, log_every=0)

    # absl parses flags once per process; this test's parse is undone afterwards.
    monkeypatch.setattr(app._register_and_parse_flags_with_usage, "done", False)
    monkeypatch.setattr("sys.argv", ["deeplab-eval", "--dataset=", f"--dataset_dir={directory}",
                                     "--eval_split=val", f"--max_image_pixels={LIMIT}"])
    was_parsed = flags.FLAGS.is_parsed()
    try:
        with flagsaver.flagsaver(), pytest.raises(SystemExit) as exit_:
            run_app(main, "deeplab-eval")
    finally:
        if not was_parsed:
            flags.FLAGS.unparse_flags()
    assert exit_.value.code == 1
    assert capfd.readouterr().err.strip().splitlines()[-1] == (
        f"error: {shard}: record 1 (big): image 30x40 needs 1200 pixels (as inference pads, "
        f"scales and flips it), over the limit --max_image_pixels={LIMIT}")


@pytest.mark.slow  # a console script and a model: the in-process test above is the default one
def test_deeplab_eval_says_which_record_is_over_the_flags_limit(over_limit, tmp_path):
    import subprocess
    import sys

    from helpers import tiny_config

    from deeplab_tf.model import build_model

    directory, shard = over_limit
    config = tiny_config(num_classes=3)
    checkpoint = tf.train.Checkpoint(model=build_model(config)).write(str(tmp_path / "model"))
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    result = subprocess.run(
        [os.path.join(os.path.dirname(sys.executable), "deeplab-eval"),
         f"--checkpoint_path={checkpoint}", f"--eval_logdir={tmp_path / 'eval'}", "--dataset=",
         f"--dataset_dir={directory}", "--eval_split=val", "--max_number_of_evaluations=1",
         f"--max_image_pixels={LIMIT}", "--eval_crop_size=33,33", "--model_variant=mobilenet_v2",
         "--depth_multiplier=0.25", "--decoder_output_stride=4", "--num_classes=3"],
        capture_output=True, text=True, cwd=repo, timeout=300,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        f"error: {shard}: record 1 (big): image 30x40 needs 1200 pixels (as inference pads, "
        f"scales and flips it), over the limit --max_image_pixels={LIMIT}")
    assert "Traceback" not in result.stderr
