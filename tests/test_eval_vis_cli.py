"""deeplab-eval and deeplab-vis end to end on a tiny checkpoint and a tiny TFRecord split.

One run of each binary is a subprocess (as users run them); the other runs call the same
console-script entry point in this process (cli_in_process: no second TensorFlow import).
Their outputs are checked against predictions recomputed here through
``inference.predict_labels`` and NumPy metrics.
"""

import importlib
import io
import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image
from scipy import ndimage

from cli_in_process import run_in_process
from deeplab_tf.data.preprocess import padded_size
from deeplab_tf import inference
from helpers import tiny_config
from test_inference import calibrated_model

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
IGNORE = 255
CLASS_NAMES = ["background", "thing", "stuff"]
SIZES = [(33, 45), (40, 33), (50, 61)]
MEAN_PIXEL = 127.5  # mobilenet_v2's


def _png(array):
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def _example(image, label, name):
    def feature(value):
        if isinstance(value, int):
            return tf.train.Feature(int64_list=tf.train.Int64List(value=[value]))
        return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))

    height, width = label.shape
    return tf.train.Example(features=tf.train.Features(feature={
        "image/encoded": feature(_png(image)),
        "image/filename": feature(name.encode()),
        "image/format": feature(b"png"),
        "image/height": feature(height),
        "image/width": feature(width),
        "image/channels": feature(3),
        "image/segmentation/class/encoded": feature(_png(label)),
        "image/segmentation/class/format": feature(b"png"),
    })).SerializeToString()


def _write_dataset(directory, rng):
    os.makedirs(directory, exist_ok=True)
    examples = []
    with tf.io.TFRecordWriter(os.path.join(directory, "val-00000-of-00001.tfrecord")) as writer:
        for index, (height, width) in enumerate(SIZES):
            image = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
            label = np.zeros((height, width), np.uint8)
            label[height // 3:, : width // 2] = 1
            label[: height // 2, width // 2:] = 2
            label[rng.random((height, width)) < 0.1] = IGNORE
            name = f"img_{index}"
            writer.write(_example(image, label, name))
            examples.append((image, label, name))
    with tf.io.TFRecordWriter(os.path.join(directory, "empty-00000-of-00001.tfrecord")):
        pass
    manifest = {"format_version": 1, "dataset": "tiny", "num_classes": 3, "ignore_label": IGNORE,
                "class_names": CLASS_NAMES,
                "splits": {"val": {"num_examples": len(SIZES)}, "empty": {"num_examples": 0}}}
    with open(os.path.join(directory, "manifest.json"), "w") as f:
        json.dump(manifest, f)
    return examples


def _write_run(directory, model, config, step):
    """A training run's directory as deeplab-train writes it: ckpt-<step> + config.json."""
    checkpoint = tf.train.Checkpoint(model=model, step=tf.Variable(step, dtype=tf.int64))
    manager = tf.train.CheckpointManager(checkpoint, directory, max_to_keep=3,
                                         checkpoint_name="ckpt")
    path = manager.save(checkpoint_number=step)
    with open(os.path.join(directory, "config.json"), "w") as f:
        json.dump({"model": config.to_dict(), "data": {}, "train": {}}, f)
    return path


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    root = tmp_path_factory.mktemp("evalvis")
    rng = np.random.default_rng(0)
    examples = _write_dataset(str(root / "data"), rng)
    config = tiny_config(num_classes=3)
    model = calibrated_model(config, seed=1)
    _write_run(str(root / "train"), model, config, step=7)
    return {"root": root, "examples": examples, "model": model, "config": config}


def _run(module, *args):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=REPO)
    return subprocess.run([sys.executable, "-m", f"deeplab_tf.cli.{module}", *args],
                          capture_output=True, text=True, cwd=REPO, env=env, timeout=240)


@pytest.fixture
def run_here(capfd):
    """run_here(module, *args): ``deeplab-<module>``'s entry point in this process."""
    def run(module, *args):
        entry = importlib.import_module(f"deeplab_tf.cli.{module}").run
        return run_in_process(entry, [f"deeplab-{module}", *args], capfd)

    return run


def _predict(model, image, crop=513, **kwargs):
    """The label map eval should produce: padded (mean pixel) to ``crop`` x ``crop`` (by
    default the original's eval_crop_size, 513) or k*16+1 when larger, cropped back."""
    height, width = image.shape[:2]
    padded = inference.pad_images(image[None].astype(np.float32),
                                  max(crop, padded_size(height, 16)),
                                  max(crop, padded_size(width, 16)), (MEAN_PIXEL,) * 3)
    return inference.predict_labels(model, padded, **kwargs).numpy()[0, :height, :width]


def _np_confusion(pairs, num_classes=3, mask_fn=None):
    cm = np.zeros((num_classes, num_classes), np.int64)
    for label, prediction in pairs:
        keep = label != IGNORE
        if mask_fn is not None:
            keep &= mask_fn(label)
        np.add.at(cm, (label[keep].astype(int), prediction[keep]), 1)
    return cm


def _np_trimap(label, width):
    """Independent trimap: scipy's square maximum filter of the 4-neighbour label edges."""
    edge = np.zeros(label.shape, bool)
    dy = label[1:] != label[:-1]
    dx = label[:, 1:] != label[:, :-1]
    edge[1:] |= dy
    edge[:-1] |= dy
    edge[:, 1:] |= dx
    edge[:, :-1] |= dx
    edge |= label == IGNORE
    return ndimage.maximum_filter(edge, size=2 * width + 1, mode="constant") & (label != IGNORE)


def test_eval_results_match_numpy(workspace):
    root = workspace["root"]
    logdir = root / "eval"
    result = _run("eval", f"--checkpoint_dir={root / 'train'}", f"--eval_logdir={logdir}",
                  "--dataset=tiny", f"--dataset_dir={root / 'data'}", "--eval_split=val",
                  "--max_number_of_evaluations=1", "--trimap_widths=1", "--trimap_widths=3",
                  "--eval_crop_size=65", "--eval_crop_size=65")
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.strip().splitlines()
    assert re.search(r"^Model: .*config\.json\.$", result.stdout, re.M), result.stdout
    with open(logdir / "results.json") as f:
        results = json.load(f)
    assert lines[-1] == f"mIoU: {results['miou']:.3f}"

    pairs = [(label, _predict(workspace["model"], image, crop=65))
             for image, label, _ in workspace["examples"]]
    expected = _np_confusion(pairs)
    assert (np.diag(expected) > 0).all()  # every class predicted right somewhere
    np.testing.assert_array_equal(results["confusion_matrix"], expected)
    csv_rows = (logdir / "confusion_matrix.csv").read_text().strip().splitlines()
    assert csv_rows[0].split(",")[1:] == CLASS_NAMES
    np.testing.assert_array_equal([[int(v) for v in r.split(",")[1:]] for r in csv_rows[1:]],
                                  expected)
    tp = np.diag(expected)
    iou = tp / (expected.sum(0) + expected.sum(1) - tp)
    assert results["miou"] == pytest.approx(np.nanmean(iou))
    assert results["per_class_iou"] == pytest.approx(dict(zip(CLASS_NAMES, iou)))
    assert results["pixel_accuracy"] == pytest.approx(tp.sum() / expected.sum())
    for width in (1, 3):
        band = _np_confusion(pairs, mask_fn=lambda label, w=width: _np_trimap(label, w))
        np.testing.assert_array_equal(results["trimap"][str(width)]["num_pixels"], band.sum())
        tp = np.diag(band)
        assert results["trimap"][str(width)]["miou"] == pytest.approx(
            np.nanmean(tp / (band.sum(0) + band.sum(1) - tp)))
    assert results["step"] == 7 and results["checkpoint"].endswith("ckpt-7")
    assert results["eval_scales"] == [1.0] and results["add_flipped_images"] is False
    assert results["num_images"] == len(SIZES)
    with Image.open(logdir / "confusion_matrix.png") as image:
        assert image.mode == "RGB"


def test_eval_multi_scale_flip_with_model_flags(workspace, run_here):
    root = workspace["root"]
    logdir = root / "eval_ms"
    result = run_here("eval", f"--checkpoint_path={root / 'train' / 'ckpt-7'}",
                     f"--eval_logdir={logdir}", "--dataset=tiny", f"--dataset_dir={root / 'data'}",
                     "--eval_scales=0.75", "--add_flipped_images",
                     "--model_variant=mobilenet_v2", "--depth_multiplier=0.25",
                     "--decoder_output_stride=4", "--output_stride=16")
    assert result.returncode == 0, result.stderr[-3000:]
    # The flags repeat the run's config.json: it is the model, nothing overridden.
    assert re.search(r"^Model: .*config\.json\.$", result.stdout, re.M), result.stdout
    with open(logdir / "results.json") as f:
        results = json.load(f)
    pairs = [(label, _predict(workspace["model"], image, scales=(0.75,),
                              add_flipped_images=True))
             for image, label, _ in workspace["examples"]]
    np.testing.assert_array_equal(results["confusion_matrix"], _np_confusion(pairs))
    assert results["eval_scales"] == [0.75] and results["add_flipped_images"] is True


def test_vis_writes_pngs_and_raw_predictions(workspace):
    root = workspace["root"]
    vis = root / "vis"
    result = _run("vis", f"--checkpoint_dir={root / 'train'}", f"--vis_logdir={vis}",
                  "--dataset=tiny", f"--dataset_dir={root / 'data'}", "--vis_split=val",
                  "--max_number_of_iterations=1", "--also_save_raw_predictions")
    assert result.returncode == 0, result.stderr[-3000:]
    names = sorted(os.listdir(vis / "segmentation_results"))
    assert names == sorted(f"{i:06d}_{kind}.png" for i in range(len(SIZES))
                           for kind in ("image", "prediction", "overlay", "truth"))
    for index, (image, label, name) in enumerate(workspace["examples"]):
        expected = _predict(workspace["model"], image)
        raw = np.asarray(Image.open(vis / "raw_segmentation_results" / f"{name}.png"))
        np.testing.assert_array_equal(raw, expected)
        saved = np.asarray(Image.open(vis / "segmentation_results" / f"{index:06d}_image.png"))
        np.testing.assert_array_equal(saved, image)
        colored = np.asarray(Image.open(vis / "segmentation_results" /
                                        f"{index:06d}_prediction.png"))
        from deeplab_tf.data.palettes import as_palette

        np.testing.assert_array_equal(colored, as_palette([], 256)[expected])


def test_vis_image_dir_cityscapes_label_ids(workspace, tmp_path, run_here):
    config = tiny_config(num_classes=19)
    model = calibrated_model(config, seed=2)
    run_dir = str(tmp_path / "city_run")
    _write_run(run_dir, model, config, step=1)
    image_dir = tmp_path / "photos"
    image_dir.mkdir()
    images = {}
    for name, (h, w) in [("a.png", (30, 41)), ("b.jpg", (21, 18))]:
        array = np.random.default_rng(len(name) + h).integers(0, 256, (h, w, 3), dtype=np.uint8)
        Image.fromarray(array).save(image_dir / name)
        images[name] = np.asarray(Image.open(image_dir / name).convert("RGB"))
    vis = tmp_path / "vis"
    result = run_here("vis", f"--checkpoint_dir={run_dir}", f"--vis_logdir={vis}",
                     f"--vis_image_dir={image_dir}", "--dataset=cityscapes",
                     "--max_number_of_iterations=1", "--also_save_raw_predictions")
    assert result.returncode == 0, result.stderr[-3000:]
    label_ids = np.array([7, 8, 11, 12, 13, 17, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 31, 32, 33])
    for name, stem in (("a.png", "a"), ("b.jpg", "b")):
        raw = np.asarray(Image.open(vis / "raw_segmentation_results" / f"{stem}.png"))
        np.testing.assert_array_equal(raw, label_ids[_predict(model, images[name])])
    assert sorted(os.listdir(vis / "segmentation_results")) == [
        "000000_image.png", "000000_overlay.png", "000000_prediction.png",
        "000001_image.png", "000001_overlay.png", "000001_prediction.png"]


@pytest.mark.parametrize("case", ["missing_checkpoint_dir", "empty_split"])
def test_bad_input_is_a_one_line_error(workspace, case, run_here):
    root = workspace["root"]
    args = [f"--eval_logdir={root / 'eval_bad'}", "--dataset=tiny",
            f"--dataset_dir={root / 'data'}", "--max_number_of_evaluations=1"]
    if case == "missing_checkpoint_dir":
        args += [f"--checkpoint_dir={root / 'nowhere'}"]
    else:
        args += [f"--checkpoint_dir={root / 'train'}", "--eval_split=empty"]
    # The missing directory is found before TensorFlow is imported: the binary itself (a
    # fraction of a second); the empty split after the model is built: in-process.
    result = (_run if case == "missing_checkpoint_dir" else run_here)("eval", *args)
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, result.stderr[-2000:]
    assert ("nowhere" if case == "missing_checkpoint_dir" else "no images") in errors[0]
    assert "Traceback" not in result.stderr


def test_visualize_helpers_and_eval_config():
    from deeplab_tf.config import EvalConfig
    from deeplab_tf.evaluation import visualize

    assert visualize.cityscapes_train_id_to_label_id() == (
        7, 8, 11, 12, 13, 17, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 31, 32, 33)
    table = (7, 8) + (0,) * 16 + (33,)
    np.testing.assert_array_equal(visualize.remap_labels(np.array([[0, 18, 255]]), table),
                                  [[7, 33, 255]])
    assert visualize.raw_prediction_name("dir/x.JPG", 0) == "x.png"
    assert visualize.raw_prediction_name("2007_000033", 0) == "2007_000033.png"
    assert visualize.raw_prediction_name("", 3) == "000003.png"
    config = EvalConfig(eval_scales=[0.5, 1], trimap_widths=[8, 0, 8], eval_crop_size=[513],
                        sliding_window_size="")
    assert config.eval_scales == (0.5, 1.0) and config.trimap_widths == (0, 8)
    assert config.eval_crop_size == (513, 513) and config.sliding_window_size is None
    for bad in (dict(eval_scales=[0]), dict(trimap_widths=[-1]), dict(eval_crop_size=[1, 2, 3]),
                dict(sliding_window_overlap=1.0)):
        with pytest.raises(ValueError, match=next(iter(bad))):
            EvalConfig(**bad)
