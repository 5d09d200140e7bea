"""The training loss against a NumPy reference of the original's formula."""

import numpy as np
import pytest
import tensorflow as tf

from helpers import np_resize_bilinear_align_corners
from deeplab_tf import losses

NUM_CLASSES = 3
IGNORE = 255


def _np_pixel_losses(logits, labels, label_weights=None):
    """(weighted pixel losses, valid mask), logits [N, C] float64, labels [N]."""
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    valid = (labels != IGNORE) & (labels >= 0) & (labels < NUM_CLASSES)
    safe = np.where(valid, labels, 0)
    pixel = -log_probs[np.arange(len(labels)), safe]
    weights = np.ones(NUM_CLASSES) if label_weights is None else np.asarray(label_weights)
    return np.where(valid, pixel * weights[safe], 0.0), valid


def _inputs(seed=0, batch=2, logits_size=5, label_size=17):
    rng = np.random.default_rng(seed)
    logits = rng.normal(0, 2, (batch, logits_size, logits_size, NUM_CLASSES)).astype(np.float32)
    labels = rng.integers(0, NUM_CLASSES, (batch, label_size, label_size, 1)).astype(np.int32)
    labels[rng.random(labels.shape) < 0.2] = IGNORE
    return logits, labels


def test_upsampled_loss_matches_numpy():
    logits, labels = _inputs()
    total, count = losses.softmax_cross_entropy(logits, labels, num_classes=NUM_CLASSES,
                                                ignore_label=IGNORE)
    up = np_resize_bilinear_align_corners(logits.astype(np.float64), 17, 17)
    pixel, valid = _np_pixel_losses(up.reshape(-1, NUM_CLASSES), labels.reshape(-1))
    np.testing.assert_allclose(float(total), pixel.sum(), rtol=1e-5)
    assert float(count) == valid.sum()
    np.testing.assert_allclose(float(losses.mean_loss(total, count)),
                               pixel.sum() / valid.sum(), rtol=1e-5)


def test_label_weights_and_downsampled_labels():
    logits, labels = _inputs(seed=1, logits_size=5, label_size=17)
    weights = (0.5, 2.0, 1.0)
    total, count = losses.softmax_cross_entropy(
        logits, labels, num_classes=NUM_CLASSES, ignore_label=IGNORE, label_weights=weights,
        upsample_logits=False)
    # Align-corners nearest: output i takes input round(i * (17 - 1) / (5 - 1)) = 4 i.
    small = labels[:, ::4, ::4, :]
    pixel, valid = _np_pixel_losses(logits.reshape(-1, NUM_CLASSES).astype(np.float64),
                                    small.reshape(-1), weights)
    np.testing.assert_allclose(float(total), pixel.sum(), rtol=1e-5)
    assert float(count) == valid.sum()


@pytest.mark.parametrize("step, expected_fraction", [(0, 1.0), (50, 0.625), (100, 0.25),
                                                     (400, 0.25)])
def test_hard_pixel_mining_anneals(step, expected_fraction):
    logits, labels = _inputs(seed=2, logits_size=17, label_size=17)
    total, count = losses.softmax_cross_entropy(
        logits, labels, num_classes=NUM_CLASSES, ignore_label=IGNORE, top_k_percent_pixels=0.25,
        hard_example_mining_step=100, step=step)
    pixel, _ = _np_pixel_losses(logits.reshape(-1, NUM_CLASSES).astype(np.float64),
                                labels.reshape(-1))
    k = int(np.float32(expected_fraction) * np.float32(pixel.size))
    top = np.sort(pixel)[::-1][:k]
    np.testing.assert_allclose(float(total), top.sum(), rtol=1e-5)
    assert float(count) == np.count_nonzero(top)


def test_no_valid_pixel_gives_zero_loss():
    logits, labels = _inputs()
    labels[:] = IGNORE
    total, count = losses.softmax_cross_entropy(logits, labels, num_classes=NUM_CLASSES,
                                                ignore_label=IGNORE)
    assert float(count) == 0.0 and float(losses.mean_loss(total, count)) == 0.0


def test_invalid_labels_are_counted_and_never_nan():
    logits, labels = _inputs()
    labels[0, :2, :3, 0] = 7  # 6 bad pixels; 255 stays the ignore label
    count, largest = losses.invalid_labels(labels, NUM_CLASSES, IGNORE)
    assert int(count) == 6 and int(largest) == 7
    total, _ = losses.softmax_cross_entropy(logits, labels, num_classes=NUM_CLASSES,
                                            ignore_label=IGNORE)
    assert np.isfinite(float(total))
    count, largest = losses.invalid_labels(tf.zeros([2, 4, 4, 1], tf.int32), NUM_CLASSES, IGNORE)
    assert int(count) == 0 and int(largest) == -1
    # ADE20K style: 0 is the ignore label, not an error.
    count, _ = losses.invalid_labels(tf.zeros([1, 4, 4, 1], tf.int32), NUM_CLASSES, 0)
    assert int(count) == 0


def test_label_weights_length_is_checked():
    with pytest.raises(ValueError, match="one weight per class"):
        losses.label_weight_mask(tf.zeros([4], tf.int32), NUM_CLASSES, IGNORE, (1.0, 2.0))
