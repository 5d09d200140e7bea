"""Training/evaluation preprocessing: the original's semantics, image/label alignment, and no
invented label values."""

import numpy as np
import pytest
import tensorflow as tf

from deeplab_tf.data import preprocess
from tests import miniature
from tests.helpers import np_resize_bilinear_align_corners

IGNORE = 255
COLORS = miniature.class_colors(5)


def _sample(seed=0, size=(40, 50), block=6):
    """An image whose colour encodes its label (thick blocks of classes 0..4 and ignore)."""
    rng = np.random.default_rng(seed)
    label = miniature.block_label(rng, size, [0, 1, 2, 3, 4, IGNORE], block=block)
    return miniature.colour_image(label, COLORS, IGNORE), label


def _np_resize_to_range_size(height, width, min_size, max_size, factor):
    """The original's final resize_to_range rule (tensorflow/models a45ce37), in NumPy float32:
    max_size lowered to m - (m - 1) % factor; sides scaled and rounded DOWN; then raised to the
    next k * factor + 1."""
    f32 = np.float32
    h, w = f32(height), f32(width)
    if max_size is not None:
        max_size = f32(max_size)
        if factor is not None:
            max_size = max_size - (max_size - 1) % f32(factor)
    size = np.array([height, width], np.int64)
    if min_size is not None:
        scale = f32(min_size) / min(h, w)
        size = np.floor(np.array([h * scale, w * scale], np.float32)).astype(np.int64)
    if max_size is not None and f32(size.max()) > max_size:
        scale = max_size / max(h, w)
        size = np.floor(np.array([h * scale, w * scale], np.float32)).astype(np.int64)
    if factor is not None:
        size = size + (factor - (size - 1) % factor) % factor
    return tuple(int(v) for v in size)


@pytest.mark.parametrize("size, min_size, max_size, factor, expected", [
    ((40, 50), 60, None, None, (60, 75)),   # smaller side to min_size
    ((40, 50), 60, 70, None, (56, 70)),     # larger side would pass max_size: capped
    ((50, 40), 60, 70, None, (70, 56)),
    ((40, 50), 60, 70, 8, (57, 65)),        # max 70 -> 65 (k*8+1); sides raised to k*8+1
    ((40, 50), 20, None, 8, (25, 25)),
    ((40, 50), None, 25, None, (20, 25)),   # max only: shrinks larger images
    ((40, 50), None, 60, None, (40, 50)),   # ... and keeps smaller ones
    # The final original (a45ce37), not its 2018 version: rounded down (770.27 -> 770, 2018:
    # 771), and a max already k * factor + 1 kept (513 with factor 16; 2018: 497, giving
    # (337, 497) here).
    ((333, 500), 513, None, None, (513, 770)),
    ((333, 500), 513, 513, 16, (353, 513)),
    ((500, 333), 513, 513, 16, (513, 353)),
    ((80, 40), None, 33, None, (33, 16)),   # 16.5 rounded down
])
def test_resize_to_range_sizes(size, min_size, max_size, factor, expected):
    assert _np_resize_to_range_size(*size, min_size, max_size, factor) == expected
    got = preprocess.resize_to_range_size(size[0], size[1], min_size, max_size, factor)
    assert tuple(got.numpy()) == expected
    image, label = preprocess.resize_to_range(
        tf.zeros(size + (3,), tf.uint8), tf.zeros(size + (1,), tf.int32), min_size, max_size, factor)
    assert image.shape[:2] == expected and label.shape[:2] == expected


def test_resize_to_range_sizes_match_the_numpy_rule_on_random_sizes():
    rng = np.random.default_rng(0)
    for _ in range(300):
        height, width = (int(v) for v in rng.integers(20, 2100, size=2))
        min_size = int(rng.choice([None, rng.integers(100, 1100)]) or 0) or None
        max_size = int(rng.choice([None, rng.integers(100, 1100)]) or 0) or None
        if min_size and max_size and max_size < min_size:
            min_size, max_size = max_size, min_size
        factor = int(rng.choice([None, 4, 8, 16]) or 0) or None
        got = preprocess.resize_to_range_size(height, width, min_size, max_size, factor)
        assert tuple(got.numpy()) == _np_resize_to_range_size(
            height, width, min_size, max_size, factor), (height, width, min_size, max_size, factor)


def test_random_scale_draws_from_the_discrete_set():
    allowed = {0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0}
    scales = {round(float(preprocess.random_scale(0.5, 2.0, 0.25, seed=[s, 0])), 6)
              for s in range(60)}
    assert scales <= allowed and len(scales) >= 5
    uniform = [float(preprocess.random_scale(0.5, 2.0, 0.0, seed=[s, 1])) for s in range(20)]
    assert all(0.5 <= s < 2.0 for s in uniform) and len(set(uniform)) == 20
    assert float(preprocess.random_scale(1.5, 1.5, 0.25)) == 1.5
    with pytest.raises(ValueError, match="min_scale_factor=2.0"):
        preprocess.random_scale(2.0, 1.0, 0.25)


def test_scale_matches_align_corners_references():
    image, label = _sample(1)
    scaled_image, scaled_label = preprocess.scale_image_and_label(
        tf.constant(image), tf.constant(label[..., None].astype(np.int32)), tf.constant(0.75))
    assert scaled_image.shape == (30, 37, 3)  # int(40 * 0.75), int(50 * 0.75)
    reference = np_resize_bilinear_align_corners(image[None].astype(np.float64), 30, 37)[0]
    np.testing.assert_allclose(scaled_image.numpy(), reference, atol=1e-3)
    # Nearest neighbour with align_corners: source index round(i * (in - 1) / (out - 1)).
    rows = np.floor(np.arange(30) * np.float32(39 / 29) + 0.5).astype(int)
    cols = np.floor(np.arange(37) * np.float32(49 / 36) + 0.5).astype(int)
    np.testing.assert_array_equal(scaled_label.numpy()[..., 0], label[rows][:, cols])


def test_pad_to_size_uses_exact_mean_and_ignore():
    mean = (123.15, 115.9, 103.06)
    image, label = _sample(2, size=(20, 30))
    padded, padded_label = preprocess.pad_to_size(
        tf.constant(image), tf.constant(label[..., None]), 25, 32, mean, IGNORE)
    padded, padded_label = padded.numpy(), padded_label.numpy()[..., 0]
    assert padded.shape == (25, 32, 3) and padded_label.shape == (25, 32)
    np.testing.assert_array_equal(padded[:20, :30], image.astype(np.float32))
    np.testing.assert_array_equal(padded_label[:20, :30], label)
    for region in (padded[20:], padded[:, 30:]):
        np.testing.assert_array_equal(region, np.broadcast_to(np.float32(mean), region.shape))
    assert (padded_label[20:] == IGNORE).all() and (padded_label[:, 30:] == IGNORE).all()


def _check_aligned(image, label, source_values, mean, radius=1):
    miniature.assert_aligned(image, label, COLORS, IGNORE, mean, source_values=source_values,
                             radius=radius)


def test_training_preprocessing_keeps_image_and_label_aligned():
    mean = 127.5
    image, label = _sample(3)
    outputs = []
    for seed in range(24):
        out_image, out_label = preprocess.preprocess_for_train(
            tf.constant(image), tf.constant(label[..., None]), crop_size=(45, 41),
            mean_pixel=mean, ignore_label=IGNORE, min_scale_factor=0.5, max_scale_factor=2.0,
            scale_factor_step_size=0.25, seed=tf.constant([seed, 7], tf.int64))
        assert out_image.dtype == tf.float32 and out_image.shape == (45, 41, 3)
        assert out_label.dtype == tf.int32 and out_label.shape == (45, 41, 1)
        _check_aligned(out_image.numpy(), out_label.numpy()[..., 0], np.unique(label), mean)
        outputs.append(out_label.numpy())
    # Padding happened (40 * 0.5 < 45) and the random draws differ between seeds (the
    # smallest scales pad to the crop size with nothing left to draw but the flip).
    assert any((o == IGNORE).mean() > 0.5 for o in outputs)
    assert len({o.tobytes() for o in outputs}) >= 20


def test_training_preprocessing_with_resize_to_range_stays_aligned():
    # Two successive resizes (to range, then the random scale): check 5x5 interiors.
    image, label = _sample(4, block=12)
    for seed in range(6):
        out_image, out_label = preprocess.preprocess_for_train(
            tf.constant(image), tf.constant(label[..., None]), crop_size=(33, 33),
            mean_pixel=(0.0, 10.0, 20.0), ignore_label=IGNORE, min_resize_value=30,
            max_resize_value=60, resize_factor=4, min_scale_factor=0.75, max_scale_factor=1.25,
            scale_factor_step_size=0.25, seed=[seed, 1])
        _check_aligned(out_image.numpy(), out_label.numpy()[..., 0], np.unique(label),
                       np.float32([0.0, 10.0, 20.0]), radius=2)


def test_crop_and_flip_move_image_and_label_together():
    image, label = _sample(5)
    image_t, label_t = tf.constant(image), tf.constant(label[..., None])
    flips = set()
    for seed in range(12):
        flipped_image, flipped_label = preprocess.random_flip(image_t, label_t, seed=[seed, 0])
        is_flipped = not np.array_equal(flipped_label.numpy()[..., 0], label)
        expected = label[:, ::-1] if is_flipped else label
        np.testing.assert_array_equal(flipped_label.numpy()[..., 0], expected)
        np.testing.assert_array_equal(flipped_image.numpy(),
                                      image[:, ::-1] if is_flipped else image)
        flips.add(is_flipped)
    assert flips == {True, False}
    crop_image, crop_label = preprocess.random_crop(image_t, label_t, 20, 25, seed=[3, 4])
    offsets = [(y, x) for y in range(21) for x in range(26)
               if np.array_equal(label[y:y + 20, x:x + 25], crop_label.numpy()[..., 0])
               and np.array_equal(image[y:y + 20, x:x + 25], crop_image.numpy())]
    assert offsets


def test_eval_preprocessing_pads_for_the_output_stride():
    image, label = _sample(6)
    mean = (1.0, 2.0, 3.0)
    for stride, expected in ((16, (49, 65)), (8, (41, 57)), (None, (40, 50))):
        out_image, out_label, height, width = preprocess.preprocess_for_eval(
            tf.constant(image), tf.constant(label[..., None]), mean_pixel=mean,
            ignore_label=IGNORE, output_stride=stride)
        assert out_image.shape[:2] == expected and out_label.shape[:2] == expected
        assert (int(height), int(width)) == (40, 50)
        np.testing.assert_array_equal(out_image.numpy()[:40, :50], image.astype(np.float32))
        np.testing.assert_array_equal(out_label.numpy()[:40, :50, 0], label)
        assert (out_label.numpy()[40:] == IGNORE).all() and (out_label.numpy()[:, 50:] == IGNORE).all()
        assert np.all(out_image.numpy()[40:] == np.float32(mean))
    assert preprocess.padded_size(33, 16) == 33 and preprocess.padded_size(34, 16) == 49
