"""Converters: miniature datasets in each real layout, converted and read back pixel for pixel;
parallel and resumed conversion; every bad-input case; the command-line tools."""

import json
import os
import shutil
import sys

import numpy as np
import pytest
import tensorflow as tf
from absl.testing import flagsaver
from PIL import Image

from deeplab_tf.config import DataConfig
from deeplab_tf.data import cityscapes_labels, pipeline, schema
from deeplab_tf.data.converters import ade20k, cityscapes, folder, shards, voc2012
from deeplab_tf.data.converters.conversion import STAGING_DIR
from deeplab_tf.data.converters.errors import ConversionError
from deeplab_tf.data.converters.progress import Progress
from tests import miniature


def _read_split(dataset_dir, split, dataset=""):
    """{filename: (image uint8, label uint8 [H, W], raw record fields)} of a converted split."""
    config = DataConfig(dataset=dataset, dataset_dir=dataset_dir)
    examples = {}
    for ex in pipeline.eval_dataset(config, split, mean_pixel=0.0):
        name = ex["filename"].numpy()[0].decode()
        examples[name] = (ex["image"].numpy()[0].astype(np.uint8), ex["label"].numpy()[0, ..., 0])
    raw = {}
    for record in tf.data.TFRecordDataset(schema.list_shards(dataset_dir, split)):
        fields = {k: v.numpy() for k, v in schema.parse_example(record).items()}
        raw[fields[schema.IMAGE_FILENAME].decode()] = fields
    assert set(raw) == set(examples)
    return {name: examples[name] + (raw[name],) for name in examples}


def _final_outputs(output_dir):
    """What a reader could mistake for a dataset: final shards and the manifest."""
    if not os.path.isdir(output_dir):
        return []
    return sorted(f for f in os.listdir(output_dir) if not f.startswith("."))


def _pixel_counts(labels, num_classes, ignore_label):
    counts = np.bincount(np.concatenate([l.ravel() for l in labels]), minlength=256)
    return counts[:num_classes].tolist(), int(counts[ignore_label])


@pytest.fixture(scope="module")
def voc(tmp_path_factory):
    root = tmp_path_factory.mktemp("voc")
    info = miniature.make_voc(root / "raw", num_train=4, num_val=2, num_sbd=3)
    output_dir = str(root / "tfrecord")
    manifest = voc2012.convert(info["root"], output_dir, sbd_root=info["sbd_root"],
                               show_progress=False)
    return info, output_dir, manifest


def test_voc_with_sbd_round_trip(voc):
    info, output_dir, manifest = voc
    expected_sizes = {"train": 4, "val": 2, "trainval": 6, "train_aug": 7}
    assert {s: e["num_examples"] for s, e in manifest["splits"].items()} == expected_sizes
    assert manifest["dataset"] == "pascal_voc_seg" and manifest["num_classes"] == 21
    assert manifest["splits"]["train"]["num_shards"] == 4
    for split, ids in info["splits"].items():
        examples = _read_split(output_dir, split, dataset="pascal_voc_seg")
        assert sorted(examples) == sorted(ids)
        for image_id, (image, label, raw) in examples.items():
            with open(info["image_paths"][image_id], "rb") as f:
                jpeg = f.read()
            assert raw[schema.IMAGE_ENCODED] == jpeg  # JPEG bytes copied as they are.
            assert raw[schema.IMAGE_FORMAT] == b"jpeg"
            assert (raw[schema.IMAGE_HEIGHT], raw[schema.IMAGE_WIDTH]) == (40, 50)
            np.testing.assert_array_equal(image, tf.io.decode_jpeg(jpeg, channels=3).numpy())
            np.testing.assert_array_equal(label, info["labels"][image_id])
        counts, ignored = _pixel_counts([info["labels"][i] for i in ids], 21, 255)
        assert manifest["splits"][split]["class_pixel_counts"] == counts
        assert manifest["splits"][split]["ignore_pixel_count"] == ignored
    # VOC labels keep their 255 boundaries; SBD-only images have none.
    assert 255 in info["labels"]["2007_000001"] and 255 not in info["labels"]["2008_000001"]
    assert _final_outputs(output_dir) == sorted(
        ["manifest.json"] + [schema.shard_name(s, i, min(4, n))
                             for s, n in expected_sizes.items() for i in range(min(4, n))])
    assert not os.path.exists(os.path.join(output_dir, STAGING_DIR))


def test_cityscapes_label_ids_map_to_train_ids(tmp_path):
    info = miniature.make_cityscapes(tmp_path / "raw", num_train=2, num_val=1)
    output_dir = str(tmp_path / "tfrecord")
    manifest = cityscapes.convert(info["root"], output_dir, show_progress=False)
    assert {s: e["num_examples"] for s, e in manifest["splits"].items()} == {
        "train_fine": 2, "val_fine": 1}
    for split, stems in info["splits"].items():
        examples = _read_split(output_dir, split, dataset="cityscapes")
        assert sorted(examples) == stems
        for stem, (image, label, raw) in examples.items():
            assert raw[schema.IMAGE_FORMAT] == b"png"
            np.testing.assert_array_equal(image, info["images"][stem])
            np.testing.assert_array_equal(label, info["labels"][stem])
    assert cityscapes_labels.label_id_to_train_id_table()[26] == 13  # car
    assert sum(t != 255 for t in cityscapes_labels.label_id_to_train_id_table()) == 19


def test_ade20k_round_trip(tmp_path):
    info = miniature.make_ade20k(tmp_path / "raw", num_train=3, num_val=2)
    output_dir = str(tmp_path / "tfrecord")
    manifest = ade20k.convert(str(tmp_path / "raw"), output_dir, show_progress=False)
    assert (manifest["num_classes"], manifest["ignore_label"]) == (151, 0)
    for split, stems in info["splits"].items():
        examples = _read_split(output_dir, split, dataset="ade20k")
        assert sorted(examples) == stems
        for stem, (_, label, raw) in examples.items():
            with open(info["image_paths"][stem], "rb") as f:
                assert raw[schema.IMAGE_ENCODED] == f.read()
            np.testing.assert_array_equal(label, info["labels"][stem])
        counts, ignored = _pixel_counts([info["labels"][s] for s in stems], 151, 0)
        assert manifest["splits"][split]["ignore_pixel_count"] == ignored
        assert manifest["splits"][split]["class_pixel_counts"][1:] == counts[1:]


@pytest.fixture(scope="module")
def custom(tmp_path_factory):
    root = tmp_path_factory.mktemp("custom")
    return miniature.make_folder(root / "raw", num_images=6, num_classes=3)


def test_folder_rgb_masks_usable_by_dataset_dir_alone(custom, tmp_path):
    output_dir = str(tmp_path / "my_data")
    manifest = folder.convert(
        custom["image_dir"], custom["label_dir"], output_dir, num_classes=3,
        class_names=["sky", "road", "car"], palette_file=custom["palette_file"],
        val_fraction=0.34, seed=1, show_progress=False)
    assert manifest["dataset"] == "my_data" and manifest["class_names"] == ["sky", "road", "car"]
    assert {s: e["num_examples"] for s, e in manifest["splits"].items()} == {"train": 4, "val": 2}
    assert manifest["palette"][:3] == custom["colors"].tolist()
    assert manifest["palette"][255] == list(miniature.IGNORE_COLOR)
    seen = {}
    for split in ("train", "val"):
        for stem, (image, label, _) in _read_split(output_dir, split).items():
            np.testing.assert_array_equal(image, custom["images"][stem])
            np.testing.assert_array_equal(label, custom["labels"][stem])
            seen[stem] = split
    assert sorted(seen) == custom["stems"]
    config = DataConfig(dataset="", dataset_dir=output_dir, train_crop_size=(17, 19), seed=0)
    images, labels = next(iter(pipeline.train_dataset(config, batch_size=2, mean_pixel=127.5)))
    assert images.shape == (2, 17, 19, 3) and labels.shape == (2, 17, 19, 1)
    assert set(np.unique(labels)) <= {0, 1, 2, 255}


def test_folder_split_lists_and_index_masks(tmp_path):
    info = miniature.make_folder(tmp_path / "raw", num_images=4, rgb_masks=False)
    (tmp_path / "train.txt").write_text("img_000\nimg_002.png\n")
    (tmp_path / "test.txt").write_text("img_003\n")
    output_dir = str(tmp_path / "out")
    manifest = folder.convert(
        info["image_dir"], info["label_dir"], output_dir, num_classes=3,
        split_lists={"train": str(tmp_path / "train.txt"), "test": str(tmp_path / "test.txt")},
        dataset_name="lists", num_shards=1, show_progress=False)
    assert {s: e["num_examples"] for s, e in manifest["splits"].items()} == {"train": 2, "test": 1}
    examples = _read_split(output_dir, "train")
    assert sorted(examples) == ["img_000", "img_002"]
    np.testing.assert_array_equal(examples["img_002"][1], info["labels"]["img_002"])


def test_parallel_conversion_writes_the_same_shards(custom, tmp_path):
    outputs = {}
    for workers in (1, 2):
        outputs[workers] = str(tmp_path / f"w{workers}")
        folder.convert(custom["image_dir"], custom["label_dir"], outputs[workers], num_classes=3,
                       palette_file=custom["palette_file"], dataset_name="par", num_shards=3,
                       num_workers=workers, show_progress=False)
    names = _final_outputs(outputs[1])
    assert names == _final_outputs(outputs[2]) and len(names) == 4
    for name in names:
        with open(os.path.join(outputs[1], name), "rb") as a, open(os.path.join(outputs[2], name), "rb") as b:
            assert a.read() == b.read(), name


def test_interrupted_conversion_leaves_nothing_final_and_resumes(custom, tmp_path, monkeypatch):
    raw = tmp_path / "raw"
    shutil.copytree(os.path.dirname(custom["image_dir"]), raw)
    bad = raw / "images" / "img_005.png"
    good_bytes = bad.read_bytes()
    bad.write_bytes(b"not an image")
    output_dir = str(tmp_path / "out")
    options = dict(num_classes=3, palette_file=str(raw / "palette.txt"), dataset_name="resume",
                   num_shards=3, show_progress=False)
    with pytest.raises(ConversionError, match=r"img_005\.png: undecodable image"):
        folder.convert(str(raw / "images"), str(raw / "masks"), output_dir, **options)
    assert _final_outputs(output_dir) == []  # No shard under its final name, no manifest.
    staging = os.path.join(output_dir, STAGING_DIR)
    assert sorted(os.listdir(staging)) == [
        "train-00000-of-00003.tfrecord", "train-00000-of-00003.tfrecord.json",
        "train-00001-of-00003.tfrecord", "train-00001-of-00003.tfrecord.json"]
    (tmp_path / "out" / STAGING_DIR / "train-00002-of-00003.tfrecord.tmp-99999").write_bytes(b"x")

    bad.write_bytes(good_bytes)  # Fixed: the re-run writes only the missing shard.
    written = []
    original_write_shard = shards.write_shard
    monkeypatch.setattr(shards, "write_shard",
                        lambda job, **kw: written.append(job.name) or original_write_shard(job, **kw))
    manifest = folder.convert(str(raw / "images"), str(raw / "masks"), output_dir, **options)
    assert written == ["train-00002-of-00003.tfrecord"]
    assert manifest["splits"]["train"]["num_examples"] == 6
    assert _final_outputs(output_dir) == ["manifest.json"] + [
        schema.shard_name("train", i, 3) for i in range(3)]
    assert not os.path.exists(staging)
    assert len(_read_split(output_dir, "train")) == 6


def test_skip_invalid_lists_skipped_files(custom, tmp_path):
    raw = tmp_path / "raw"
    shutil.copytree(os.path.dirname(custom["image_dir"]), raw)
    (raw / "images" / "img_002.png").write_bytes(b"\x89PNG broken")
    manifest = folder.convert(str(raw / "images"), str(raw / "masks"), str(tmp_path / "out"),
                              num_classes=3, palette_file=str(raw / "palette.txt"),
                              dataset_name="skip", skip_invalid=True, show_progress=False)
    entry = manifest["splits"]["train"]
    assert entry["num_examples"] == 5
    assert [s["file"] for s in entry["skipped"]] == [str(raw / "images" / "img_002.png")]
    assert "undecodable image" in entry["skipped"][0]["reason"]
    with open(tmp_path / "out" / "manifest.json") as f:
        assert json.load(f)["splits"]["train"]["skipped"] == entry["skipped"]


def _write(path, array):
    Image.fromarray(np.asarray(array, np.uint8)).save(path)


@pytest.mark.parametrize("case, message", [
    ("missing_dir", r"nope: directory not found"),
    ("missing_mask", r"img_001\.png: no mask with stem 'img_001'"),
    ("missing_list_entry", r"train\.txt: no image with stem 'ghost'"),
    ("size_mismatch", r"img_001\.png: label size 40x49 \(HxW\) differs from image .*img_001\.png size 40x50"),
    ("bad_values", r"img_001\.png: label values outside \[0, 3\) and ignore label 255: \[7, 9\]"),
    ("rgb_mask", r"img_001\.png: is a RGB colour mask where a single-channel index mask was expected"),
    ("unknown_colour", r"img_001\.png: mask colours not in the palette: \(1, 2, 3\)"),
])
def test_folder_bad_input_is_reported_and_nothing_is_written(tmp_path, case, message):
    info = miniature.make_folder(tmp_path / "raw", num_images=3, rgb_masks=False)
    image_dir, label_dir = info["image_dir"], info["label_dir"]
    mask = os.path.join(label_dir, "img_001.png")
    options = dict(num_classes=3, dataset_name="bad", show_progress=False)
    if case == "missing_dir":
        image_dir = str(tmp_path / "nope")
    elif case == "missing_mask":
        os.remove(mask)
    elif case == "missing_list_entry":
        (tmp_path / "train.txt").write_text("img_000\nghost\n")
        options["split_lists"] = {"train": str(tmp_path / "train.txt")}
    elif case == "size_mismatch":
        _write(mask, np.zeros((40, 49)))
    elif case == "bad_values":
        label = np.zeros((40, 50))
        label[0, 0], label[5, 5] = 9, 7
        _write(mask, label)
    elif case == "rgb_mask":
        _write(mask, np.zeros((40, 50, 3)))
    elif case == "unknown_colour":
        (tmp_path / "palette.txt").write_text("0 0 0\n10 10 10\n20 20 20\n")
        options["palette_file"] = str(tmp_path / "palette.txt")
        for stem in info["stems"]:
            colours = np.zeros((40, 50, 3))
            if stem == "img_001":
                colours[3, 4] = (1, 2, 3)
            _write(os.path.join(label_dir, stem + ".png"), colours)
    output_dir = str(tmp_path / "out")
    with pytest.raises(ConversionError, match=message) as error:
        folder.convert(image_dir, label_dir, output_dir, **options)
    assert "\n" not in str(error.value)
    assert _final_outputs(output_dir) == []


def test_public_converters_report_missing_inputs(tmp_path):
    info = miniature.make_voc(tmp_path / "voc", num_train=2, num_val=1)
    with open(os.path.join(info["voc_dir"], "ImageSets", "Segmentation", "train.txt"), "a") as f:
        f.write("2011_999999\n")
    with pytest.raises(ConversionError, match=r"JPEGImages/2011_999999\.jpg: file not found"):
        voc2012.convert(info["root"], str(tmp_path / "out"), show_progress=False)
    with pytest.raises(ConversionError, match=r"no VOC2012 folder"):
        voc2012.convert(str(tmp_path), str(tmp_path / "out"), show_progress=False)
    with pytest.raises(ConversionError, match=r"gtFine/train: directory not found"):
        os.makedirs(tmp_path / "city" / "leftImg8bit" / "train")
        cityscapes.convert(str(tmp_path / "city"), str(tmp_path / "out"), show_progress=False)
    with pytest.raises(ConversionError, match=r"no ADEChallengeData2016 folder"):
        ade20k.convert(str(tmp_path), str(tmp_path / "out"), show_progress=False)
    assert _final_outputs(str(tmp_path / "out")) == []


def test_cityscapes_unknown_label_id_is_reported(tmp_path):
    info = miniature.make_cityscapes(tmp_path / "raw", num_train=1, num_val=1)
    stem = info["splits"]["val_fine"][0]
    city = stem.split("_")[0]
    ids = info["label_ids"][stem].copy()
    ids[0, 0] = 200
    _write(tmp_path / "raw" / "gtFine" / "val" / city / f"{stem}_gtFine_labelIds.png", ids)
    with pytest.raises(ConversionError,
                       match=r"gtFine_labelIds\.png: Cityscapes labelId values not in the label table: \[200\]"):
        cityscapes.convert(info["root"], str(tmp_path / "out"), show_progress=False)


def test_cli_build_folder(custom, tmp_path, monkeypatch, capsys):
    from deeplab_tf.cli import build_folder

    flagfile = tmp_path / "folder.flags"
    flagfile.write_text("\n".join([
        f"--image_dir={custom['image_dir']}", f"--label_dir={custom['label_dir']}",
        "--num_classes=3", f"--palette_file={custom['palette_file']}", "--val_fraction=0.5",
        f"--output_dir={tmp_path / 'out'}", "--num_workers=1", "--noprogress"]))
    with flagsaver.flagsaver():
        monkeypatch.setattr(sys, "argv", ["deeplab-build-folder", f"--flagfile={flagfile}"])
        with pytest.raises(SystemExit) as exit_info:
            build_folder.run()
    assert exit_info.value.code in (0, None)
    assert "train: 3 examples in 3 shards" in capsys.readouterr().out
    assert registry_splits(str(tmp_path / "out")) == {"train": 3, "val": 3}

    with flagsaver.flagsaver():
        monkeypatch.setattr(sys, "argv", [
            "deeplab-build-folder", f"--flagfile={flagfile}", "--num_classes=2",
            f"--output_dir={tmp_path / 'out2'}"])
        with pytest.raises(SystemExit) as exit_info:
            build_folder.run()
    assert exit_info.value.code == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: ") and "label values outside [0, 2)" in err[-1]
    assert _final_outputs(str(tmp_path / "out2")) == []


def registry_splits(dataset_dir):
    from deeplab_tf.data import registry

    return dict(registry.get_dataset_info("", dataset_dir).splits)


def test_progress_lines_when_not_a_terminal():
    import io as io_lib

    stream = io_lib.StringIO()
    counted = []
    progress = Progress(20, "demo", stream=stream, listener=counted.append)
    for _ in range(20):
        progress.update()
    progress.close()
    lines = stream.getvalue().splitlines()
    assert len(lines) == 11 and sum(counted) == 20  # The first image, then every 10%.
    assert lines[-1].startswith("demo [########################] 20/20 100%")


def test_progress_bar_on_a_terminal():
    import io as io_lib

    class Terminal(io_lib.StringIO):
        def isatty(self):
            return True

    stream = Terminal()
    progress = Progress(5, "demo", stream=stream)
    for _ in range(5):
        progress.update()
    progress.close()
    out = stream.getvalue()
    assert "\r" in out and "demo" in out and "5/5" in out  # Redrawn in place (tqdm).
    assert out.count("\n") <= 1
