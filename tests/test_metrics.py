"""Metrics against independent NumPy computations; trimaps against hand-checked examples."""

import json
import os

import numpy as np
import pytest
import tensorflow as tf

from deeplab_tf import metrics

from deeplab_tf.evaluation import report
from deeplab_tf.evaluation.evaluator import EvalResult, checkpoints_iterator

IGNORE = 255


def _random_batch(rng, num_classes, shape=(2, 9, 11)):
    labels = rng.integers(0, num_classes, size=shape)
    labels[rng.random(shape) < 0.2] = IGNORE
    predictions = rng.integers(0, num_classes, size=shape)
    return labels.astype(np.int32), predictions.astype(np.int32)


def np_iou_by_sets(labels, predictions, num_classes, ignore_label):
    """Per-class IoU from pixel sets (no confusion matrix): NaN if the union is empty."""
    valid = labels != ignore_label
    ious = []
    for c in range(num_classes):
        gt, pred = (labels == c) & valid, (predictions == c) & valid
        union = np.sum(gt | pred)
        ious.append(np.sum(gt & pred) / union if union else np.nan)
    return np.array(ious)


def test_confusion_matrix_matches_numpy():
    rng = np.random.default_rng(0)
    labels, predictions = _random_batch(rng, 5)
    expected = np.zeros((5, 5), np.int64)
    for gt, pred in zip(labels.ravel(), predictions.ravel()):
        if gt != IGNORE:
            expected[gt, pred] += 1
    cm = metrics.confusion_matrix(labels, predictions, 5, ignore_label=IGNORE).numpy()
    np.testing.assert_array_equal(cm, expected)
    # Same inside a tf.function with labels in [B, H, W, 1] form.
    graph_fn = tf.function(lambda l, p: metrics.confusion_matrix(l, p, 5, ignore_label=IGNORE))
    np.testing.assert_array_equal(graph_fn(labels[..., None], predictions).numpy(), expected)


def test_mask_restricts_counted_pixels():
    rng = np.random.default_rng(1)
    labels, predictions = _random_batch(rng, 3)
    mask = rng.random(labels.shape) < 0.5
    cm = metrics.confusion_matrix(labels, predictions, 3, ignore_label=IGNORE, mask=mask).numpy()
    keep = mask & (labels != IGNORE)
    expected = np.zeros((3, 3), np.int64)
    np.add.at(expected, (labels[keep], predictions[keep]), 1)
    np.testing.assert_array_equal(cm, expected)


def test_streaming_equals_sum_and_iou_matches_pixel_sets():
    rng = np.random.default_rng(2)
    num_classes = 6
    metric = metrics.ConfusionMatrix(num_classes, ignore_label=IGNORE)
    all_labels, all_predictions = [], []
    for _ in range(3):
        labels, predictions = _random_batch(rng, num_classes)
        # Class 4 never occurs; class 5 is predicted but never in the ground truth.
        labels[labels >= 4] = 0
        predictions[predictions == 4] = 1
        metric.update(labels, predictions)
        all_labels.append(labels)
        all_predictions.append(predictions)
    labels, predictions = np.concatenate(all_labels), np.concatenate(all_predictions)
    cm = metric.result()
    expected_iou = np_iou_by_sets(labels, predictions, num_classes, IGNORE)
    assert np.isnan(expected_iou[4]) and expected_iou[5] == 0.0
    np.testing.assert_allclose(metrics.iou_per_class(cm), expected_iou, rtol=1e-12)
    # As tf.metrics.mean_iou: the class absent from both is excluded, the one only predicted
    # counts with IoU 0.
    assert metrics.mean_iou(cm) == pytest.approx(np.nanmean(expected_iou), rel=1e-12)
    assert metrics.mean_iou(cm) == pytest.approx(np.sum(expected_iou[:4]) / 5, rel=1e-12)
    valid = labels != IGNORE
    assert metrics.pixel_accuracy(cm) == pytest.approx(
        np.mean(labels[valid] == predictions[valid]), rel=1e-12)
    metric.reset()
    assert metric.result().sum() == 0


def test_doc_example_and_empty_matrix():
    cm = metrics.confusion_matrix([[0, 1, 255]], [[0, 0, 1]], num_classes=2, ignore_label=255)
    assert cm.numpy().tolist() == [[1, 0], [1, 0]]
    assert metrics.mean_iou(cm) == 0.25
    empty = np.zeros((3, 3))
    assert metrics.mean_iou(empty) == 0.0 and metrics.pixel_accuracy(empty) == 0.0
    assert np.isnan(metrics.iou_per_class(empty)).all()


def test_out_of_range_label_is_an_error():
    with pytest.raises(tf.errors.InvalidArgumentError, match="num_classes=3"):
        metrics.confusion_matrix([[0, 3]], [[0, 0]], 3, ignore_label=255)


def test_boundary_and_trimap_hand_checked():
    # A 2x2 square of class 1 in a 6x6 image of class 0, and one ignore pixel in a corner.
    labels = np.zeros((1, 6, 6), np.int32)
    labels[0, 2:4, 2:4] = 1
    labels[0, 5, 5] = IGNORE
    boundary = metrics.boundary_mask(labels, IGNORE).numpy()[0].astype(int)
    np.testing.assert_array_equal(boundary, [
        [0, 0, 0, 0, 0, 0],
        [0, 0, 1, 1, 0, 0],
        [0, 1, 1, 1, 1, 0],
        [0, 1, 1, 1, 1, 0],
        [0, 0, 1, 1, 0, 1],
        [0, 0, 0, 0, 1, 1],
    ])
    band0 = metrics.trimap_mask(labels, 0, IGNORE).numpy()[0].astype(int)
    np.testing.assert_array_equal(band0, boundary * (labels[0] != IGNORE))
    band1 = metrics.trimap_mask(labels, 1, IGNORE).numpy()[0].astype(int)
    np.testing.assert_array_equal(band1, [
        [0, 1, 1, 1, 1, 0],
        [1, 1, 1, 1, 1, 1],
        [1, 1, 1, 1, 1, 1],
        [1, 1, 1, 1, 1, 1],
        [1, 1, 1, 1, 1, 1],
        [0, 1, 1, 1, 1, 0],   # (5, 5) is the ignore pixel: never in a band
    ])
    # Chessboard distance: width 2 reaches every pixel of this small image but the ignore one.
    band2 = metrics.trimap_mask(labels, 2, IGNORE).numpy()[0]
    assert band2.sum() == 35 and not band2[5, 5]


def test_trimap_iou_counts_only_band_pixels():
    labels = np.zeros((1, 1, 8), np.int32)
    labels[0, 0, 4:] = 1
    predictions = np.zeros((1, 1, 8), np.int32)
    predictions[0, 0, 3:] = 1  # one error, right at the edge
    mask = metrics.trimap_mask(labels, 1)  # pixels 2..5
    np.testing.assert_array_equal(mask.numpy()[0, 0], [0, 0, 1, 1, 1, 1, 0, 0])
    cm = metrics.confusion_matrix(labels, predictions, 2, mask=mask).numpy()
    np.testing.assert_array_equal(cm, [[1, 1], [0, 2]])
    assert metrics.mean_iou(cm) == pytest.approx((1 / 2 + 2 / 3) / 2)


def test_report_files(tmp_path):
    cm = np.array([[5, 1, 0], [2, 7, 0], [0, 0, 0]], np.int64)
    result = EvalResult(confusion_matrix=cm, trimap={4: cm // 2}, num_images=2)
    names = report.class_names_for(3, ["bg", "cat"])
    assert names == ["bg", "cat", "class_2"]
    results = report.results_dict(result, names, checkpoint="ckpt-1", step=1)
    json.loads(json.dumps(results))  # JSON-able (NaN became None)
    assert results["per_class_iou"]["class_2"] is None
    assert results["miou"] == pytest.approx((5 / 8 + 7 / 10) / 2)
    assert results["trimap"]["4"]["num_pixels"] == int((cm // 2).sum())
    table = report.format_table(results)
    assert "cat" in table and "trimap4" in table
    csv_path = str(tmp_path / "cm.csv")
    report.write_confusion_matrix_csv(csv_path, cm, names)
    read_cm, read_names = report.read_confusion_matrix_csv(csv_path)
    np.testing.assert_array_equal(read_cm, cm)
    assert read_names == names
    png = str(tmp_path / "cm.png")
    report.write_confusion_matrix_png(png, cm, names)
    from PIL import Image

    with Image.open(png) as image:
        assert image.mode == "RGB" and min(image.size) >= 3 * 24
    assert sorted(os.listdir(tmp_path)) == ["cm.csv", "cm.png"]  # no temporary leftovers


def test_checkpoints_iterator_yields_each_new_checkpoint_once():
    sequence = iter([None, "a", "a", "b", "b", "c"])
    clock = [0.0]

    def sleep(seconds):
        clock[0] += seconds

    got = list(checkpoints_iterator("dir", lambda _: next(sequence), max_count=3,
                                    interval_secs=10, sleep=sleep, clock=lambda: clock[0]))
    assert got == ["a", "b", "c"]
    assert clock[0] >= 20  # at least interval_secs between yields
