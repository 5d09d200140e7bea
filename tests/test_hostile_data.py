"""Shards a careless or hostile user may hand to training and evaluation: forged record
lengths (never a crash), images and labels in every format TensorFlow decodes sized from
their headers, labels that do not fit their image, records of another schema; each stops
with one line naming the shard and the record (or is skipped where the skip option allows),
and a fuzz run (slow) of generated bad shards ends in such a line or clean examples."""

import io
import os
import struct
import zlib

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from deeplab_tf.config import DataConfig
from deeplab_tf.data import manifest, pipeline, record_checks, records, schema
from deeplab_tf.data.errors import DataError


def _crc32c(data: bytes) -> int:
    """TFRecord's masked CRC-32C, computed bit by bit (independent of the package's table)."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 * (crc & 1))
    crc ^= 0xFFFFFFFF
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def _frame(body: bytes, length=None) -> bytes:
    """One TFRecord: length, its CRC, the body, the body's CRC; ``length`` forges the first."""
    length = len(body) if length is None else length
    head = struct.pack("<Q", length)
    return head + struct.pack("<I", _crc32c(head)) + body + struct.pack("<I", _crc32c(body))


def _encode(array, fmt="PNG", **options):
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format=fmt, **options)
    return buffer.getvalue()


def _example(name="a", size=(20, 25), fmt="PNG", label_size=None, label=True, claimed=None,
             **features):
    rng = np.random.default_rng(len(name))
    image = _encode(rng.integers(0, 256, size + (3,), dtype=np.uint8), fmt)
    label_png = _encode(np.zeros(label_size or size, np.uint8)) if label else b""
    height, width = claimed or size
    feature = {
        schema.IMAGE_ENCODED: image, schema.IMAGE_FILENAME: name.encode(),
        schema.IMAGE_FORMAT: fmt.lower().encode(), schema.IMAGE_HEIGHT: height,
        schema.IMAGE_WIDTH: width, schema.LABEL_ENCODED: label_png, schema.LABEL_FORMAT: b"png"}
    feature.update(features)
    if not label:
        del feature[schema.LABEL_ENCODED]

    def typed(value):
        if isinstance(value, int):
            return tf.train.Feature(int64_list=tf.train.Int64List(value=[value]))
        return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))

    return tf.train.Example(features=tf.train.Features(
        feature={k: typed(v) for k, v in feature.items() if v is not None})).SerializeToString()


def _split(directory, *shards, split="val"):
    """Writes each shard (bytes) of ``split`` and a manifest; returns the shard paths."""
    os.makedirs(directory, exist_ok=True)
    paths = []
    for index, data in enumerate(shards):
        path = os.path.join(directory, schema.shard_name(split, index, len(shards)))
        with open(path, "wb") as f:
            f.write(data)
        paths.append(path)
    manifest.write_manifest(str(directory), {
        "dataset": "hostile", "num_classes": 3, "ignore_label": 255,
        "class_names": ["a", "b", "c"], "splits": {split: {"num_examples": 1}}})
    return paths


def _config(directory, **overrides):
    return DataConfig(dataset="", dataset_dir=str(directory), train_split="val",
                      train_crop_size=(17, 19), seed=0, **overrides)


def _eval_line(config, **options):
    with pytest.raises(tf.errors.InvalidArgumentError) as error:
        list(pipeline.eval_dataset(config, "val", mean_pixel=0.0, **options))
    return records.error_message(error.value)


def _train_line(config):
    with pytest.raises(tf.errors.InvalidArgumentError) as error:
        next(iter(pipeline.train_dataset(config, batch_size=2, mean_pixel=0.0)))
    return records.error_message(error.value)


def test_forged_record_length_is_a_line_not_a_crash(tmp_path, capfd):
    """A length field claiming 1 TiB, with a valid checksum, is never read."""
    forged = struct.pack("<Q", 2 ** 40)
    forged += struct.pack("<I", _crc32c(forged)) + bytes(64)  # a 76-byte shard
    good, alone = _split(tmp_path / "a", _frame(_example("ok")) + forged, forged)
    config = _config(tmp_path / "a")
    line = _eval_line(config)
    assert line == f"{good}: record 1 is corrupt (length {2 ** 40} beyond the end of the file)"
    assert _train_line(config) in (line, f"{alone}: record 0 is corrupt (length {2 ** 40} "
                                         "beyond the end of the file)")
    skip = _config(tmp_path / "a", skip_corrupt_records=True)
    capfd.readouterr()
    assert [ex["filename"].numpy()[0] for ex in pipeline.eval_dataset(
        skip, "val", mean_pixel=0.0)] == [b"ok"]
    said = sorted(line for line in capfd.readouterr().err.splitlines() if "corrupt" in line)
    assert said == [f"{path}: record {n} is corrupt (length {2 ** 40} beyond the end of the "
                    f"file): skipped the rest of this shard (1 record(s))"
                    for path, n in sorted([(good, 1), (alone, 0)])]
    # A folder where a shard should be: one line when the input is built.
    folder = tmp_path / "c" / schema.shard_name("val", 0, 1)
    folder.mkdir(parents=True)
    _split(tmp_path / "c")  # the manifest only
    with pytest.raises(DataError, match=f"^{folder}: cannot read this shard \\(Is a directory\\)$"):
        pipeline.eval_dataset(_config(tmp_path / "c"), "val", mean_pixel=0.0)
    # A damaged length header: its checksum no longer matches.
    flipped = bytearray(_frame(_example("ok")))
    flipped[3] ^= 0x01
    (shard,) = _split(tmp_path / "b", bytes(flipped))
    assert _eval_line(_config(tmp_path / "b")) == \
        f"{shard}: record 0 is corrupt (length checksum mismatch)"


def test_images_and_labels_are_sized_from_their_headers_in_every_format(tmp_path):
    # A WebP (and a GIF) whose record claims a small size: the header's size counts.
    for fmt in ("WEBP", "GIF"):
        folder = tmp_path / fmt
        (shard,) = _split(folder, _frame(_example("liar", (60, 60), fmt, claimed=(5, 5))))
        assert _eval_line(_config(folder, max_image_pixels=2000)).startswith(
            f"{shard}: record 0 (liar): image 60x60 needs ")
    # Training counts the largest random scale and the crop: 40x40 at scale 2 is 6400 pixels.
    (shard,) = _split(tmp_path / "scaled", _frame(_example("big", (40, 40))))
    assert _train_line(_config(tmp_path / "scaled", max_image_pixels=5000)) == (
        f"{shard}: record 0 (big): image 40x40 needs 6400 pixels (resized, at the largest "
        "scale, padded to the crop), over the limit --max_image_pixels=5000")
    # A label larger than its image (the decoder would have made it), in eval and training.
    (shard,) = _split(tmp_path / "label", _frame(_example("pair", (40, 40), label_size=(60, 60))))
    expected = f"{shard}: record 0 (pair): label size 60x60 differs from image size 40x40"
    assert _eval_line(_config(tmp_path / "label")) == expected
    assert _train_line(_config(tmp_path / "label")) == expected
    # A label whose PNG header claims 20000x20000: refused from the header, never decoded.
    bomb = bytearray(_encode(np.zeros((8, 8), np.uint8)))
    bomb[16:24] = struct.pack(">II", 20000, 20000)
    (shard,) = _split(tmp_path / "bomb", _frame(_example(
        "bomb", (40, 40), **{schema.LABEL_ENCODED: bytes(bomb)})))
    assert _train_line(_config(tmp_path / "bomb")) == (
        f"{shard}: record 0 (bomb): label size 20000x20000 differs from image size 40x40")
    # A format TensorFlow decodes but whose header is not read here: refused (or skipped).
    jxl = b"\xff\x0a" + bytes(40)
    (shard,) = _split(tmp_path / "jxl", _frame(_example("x", **{schema.IMAGE_ENCODED: jxl})) +
                      _frame(_example("fine")))
    assert _eval_line(_config(tmp_path / "jxl")) == (
        f"{shard}: record 0 (x): image format not read (expected PNG, JPEG, GIF, BMP or WebP)")
    skip = _config(tmp_path / "jxl", skip_corrupt_records=True)
    assert [ex["filename"].numpy()[0] for ex in pipeline.eval_dataset(
        skip, "val", mean_pixel=0.0)] == [b"fine"]


def test_records_of_another_schema_are_refused(tmp_path):
    # A classification shard: no segmentation label at all, refused when the input is built.
    (shard,) = _split(tmp_path / "cls", _frame(_example(
        "cat", label=False, **{"image/class/label": 3})))
    with pytest.raises(DataError, match=f"^{shard}: record 0: not a segmentation example .*no "
                                        "image/segmentation/class/encoded"):
        pipeline.train_dataset(_config(tmp_path / "cls"), batch_size=2, mean_pixel=0.0)
    # Keys of the wrong type (another writer's int64 image).
    (shard,) = _split(tmp_path / "types", _frame(_example(
        "t", **{schema.IMAGE_ENCODED: 7})))
    with pytest.raises(DataError, match="image/encoded is int64_list"):
        pipeline.eval_dataset(_config(tmp_path / "types"), "val", mean_pixel=0.0)
    # A later record without a label: named when it is read; deeplab-vis accepts it.
    (shard,) = _split(tmp_path / "mixed", _frame(_example("one")) +
                      _frame(_example("two", **{schema.LABEL_ENCODED: b""})))
    assert _train_line(_config(tmp_path / "mixed")) == (
        f"{shard}: record 1 (two): no segmentation label (image/segmentation/class/encoded "
        "is missing or empty)")
    unlabelled = list(pipeline.eval_dataset(_config(tmp_path / "mixed"), "val", mean_pixel=0.0,
                                            require_label=False))
    assert (unlabelled[1]["label"].numpy() == 255).all()
    # Labels TensorFlow would decode to other values: palette (the grey of its colours),
    # 1-bit (1 becomes 255), 16-bit (scaled), RGB, or JPEG (lossy).
    check = tf.function(record_checks.record_check(
        cost_fn=lambda h, w: tf.cast(h * w, tf.float64), max_pixels=0, skip=False,
        require_label=True))
    indices = np.tile(np.array([0, 1, 2, 1], np.uint8), (20, 5))[:, :25]
    palette = Image.fromarray(indices, "P")
    palette.putpalette([0, 0, 0, 128, 0, 0, 0, 128, 0] + [0] * 759)
    for name, label, depth, kind in (
            ("palette", palette, 8, 3), ("1-bit", Image.fromarray(indices > 0), 1, 0),
            ("16-bit", Image.fromarray(indices.astype(np.uint16)), 16, 0),
            ("rgb", Image.fromarray(np.stack([indices] * 3, -1)), 8, 2),
            ("jpeg", Image.fromarray(indices), -1, -1)):
        buffer = io.BytesIO()
        label.save(buffer, format="JPEG" if name == "jpeg" else "PNG")
        with pytest.raises(tf.errors.InvalidArgumentError) as error:  # the check alone: fast
            check(tf.constant(_example(name, **{schema.LABEL_ENCODED: buffer.getvalue()})),
                  tf.constant("s.tfrecord"), tf.constant(0, tf.int64))
        assert records.error_message(error.value) == (
            f"s.tfrecord: record 0 ({name}): label is not an 8-bit greyscale PNG of class indices "
            f"(PNG bit depth {depth}, colour type {kind}; -1: not a PNG): TensorFlow would "
            "decode palette colours, not indices; write it with a deeplab-build-* tool")


# ------------------------------------------------------------------------- the fuzz run


def _mutations(rng):
    """(name, shard bytes) of generated bad shards."""
    good = _example("good", (24, 30))
    framed = _frame(good)
    cases = []
    for cut in rng.integers(1, len(framed) - 1, 8):
        cases.append(("truncated", framed[:int(cut)]))
    for position in rng.integers(0, len(framed), 8):
        data = bytearray(framed)
        data[int(position)] ^= int(rng.integers(1, 256))
        cases.append(("flipped byte", bytes(data)))
    for length in (0, 1, len(good) + 1, 2 ** 31, 2 ** 63, 2 ** 64 - 1):
        cases.append((f"forged length {length}", _frame(good, length) + bytes(16)))
    cases.append(("random bytes", rng.integers(0, 256, 300, dtype=np.uint8).tobytes()))
    cases.append(("not an Example", _frame(rng.integers(0, 256, 50, dtype=np.uint8).tobytes())))
    rgb = np.random.default_rng(1).integers(0, 256, (30, 30, 3), dtype=np.uint8)
    for name, image in (("tiff", _encode(rgb, "TIFF")), ("random image", bytes(range(60))),
                        ("truncated png", _encode(rgb)[:80]), ("empty image", b""),
                        ("webp", _encode(rgb, "WEBP")), ("bmp", _encode(rgb, "BMP")),
                        ("gif", _encode(rgb, "GIF")), ("jpeg", _encode(rgb, "JPEG"))):
        cases.append((name, _frame(_example("m", (30, 30), **{schema.IMAGE_ENCODED: image}))))
    for size, label_size in (((30, 30), (30, 31)), ((30, 30), (1, 1)), ((5, 400), (400, 5))):
        cases.append((f"label {label_size}", _frame(_example("p", size, label_size=label_size))))
    cases.append(("thin over the limit", _frame(_example("thin", (1, 3000)))))
    cases.append(("wrong types", _frame(_example("w", **{schema.IMAGE_HEIGHT: b"40"}))))
    return cases


@pytest.mark.slow
def test_fuzz_bad_shards_end_in_one_line_or_clean_examples(tmp_path):
    cases = _mutations(np.random.default_rng(24))
    lines = clean = 0
    for index, (name, data) in enumerate(cases):
        folder = tmp_path / f"case{index}"
        (shard,) = _split(folder, data)
        config = _config(folder, max_image_pixels=2000)
        try:
            examples = list(pipeline.eval_dataset(config, "val", mean_pixel=0.0,
                                                  output_stride=16))
        except DataError as error:
            assert str(error).startswith(shard), (name, str(error))
            lines += 1
            continue
        except tf.errors.InvalidArgumentError as error:
            line = records.error_message(error)
            assert line and line.startswith(f"{shard}: record "), (name, error.message[:300])
            lines += 1
            continue
        for example in examples:  # whatever is read is a whole, consistent example
            assert example["image"].shape[1:3] == example["label"].shape[1:3], name
        clean += 1
    print(f"data hostile fuzz: {len(cases)} shards, {lines} one-line errors, {clean} read "
          "cleanly, 0 crashes")
    assert lines >= len(cases) - 10


def test_vis_folder_images_are_refused_from_the_header_by_what_inference_allocates(tmp_path):
    """deeplab-vis --vis_image_dir: the cost (padded to 16k+1, two passes here) of each image,
    whatever its format, is checked before it is decoded."""
    from deeplab_tf.evaluation import visualize

    def pixels(height, width):  # an independent reckoning: k * 16 + 1, two passes
        return 2 * (-(-(height - 1) // 16) * 16 + 1) * (-(-(width - 1) // 16) * 16 + 1)

    assert pixels(20, 25) == 2 * 33 * 33 <= 2200 < pixels(40, 40)
    image = np.zeros((20, 25, 3), np.uint8)
    (tmp_path / "a_small.png").write_bytes(_encode(image))
    (tmp_path / "b_small.webp").write_bytes(_encode(image, "WEBP"))
    samples = visualize.folder_images(str(tmp_path), pixels=pixels, max_pixels=2200)
    assert [s["image"].shape for s in samples] == [(1, 20, 25, 3)] * 2
    forged = bytearray(_encode(np.zeros((8, 8, 3), np.uint8)))
    forged[16:24] = struct.pack(">II", 40, 40)  # a PNG header claiming 40x40 (CRC fixed)
    forged[29:33] = struct.pack(">I", zlib.crc32(bytes(forged[12:29])))
    for name, data in (("c_big.webp", _encode(np.zeros((40, 40, 3), np.uint8), "WEBP")),
                       ("c_forged.png", bytes(forged))):
        folder = tmp_path / name.split(".")[1]
        folder.mkdir()
        (folder / name).write_bytes(data)
        with pytest.raises(DataError) as error:
            list(visualize.folder_images(str(folder), pixels=pixels, max_pixels=2200))
        assert str(error.value) == (  # never decoded: the forged PNG has no 40x40 data

            f"{folder / name}: image 40x40 needs {pixels(40, 40)} pixels (as inference pads, "
            "scales and flips it), over the limit --max_image_pixels=2200")
    (tmp_path / "noise").mkdir()
    (tmp_path / "noise" / "x.png").write_bytes(bytes(range(40)))
    with pytest.raises(DataError) as error:
        list(visualize.folder_images(str(tmp_path / "noise")))
    assert str(error.value) == (f"{tmp_path / 'noise' / 'x.png'}: undecodable image (cannot "
                                "identify image file)")
