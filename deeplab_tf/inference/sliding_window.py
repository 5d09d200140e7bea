"""Sliding-window prediction of large images: overlapping windows, probabilities averaged."""

from __future__ import annotations

from typing import Optional, Sequence, Tuple, Union

import tensorflow as tf

from deeplab_tf.inference.multiscale import pad_images, predict_probabilities


def _pair(value, name) -> Tuple[int, int]:
    if isinstance(value, int):
        value = (value, value)
    value = tuple(int(v) for v in value)
    if len(value) != 2 or min(value) < 1:
        raise ValueError(f"{name} must be one or two positive integers. Received: {name}={value}")
    return value


def _window_starts(length, window: int, stride: int):
    """Start offsets covering [0, length) with windows of ``window`` (length >= window)."""
    count = (length - window + stride - 1) // stride + 1
    return tf.minimum(tf.range(count) * stride, length - window)


def predict_probabilities_sliding_window(
        model, images, *, window: Union[int, Tuple[int, int]],
        stride: Optional[Union[int, Tuple[int, int]]] = None, overlap: float = 1.0 / 3.0,
        scales: Sequence[float] = (1.0,), add_flipped_images: bool = False,
        pad_value) -> tf.Tensor:
    """Probabilities of a large image from overlapping windows, averaged where they overlap.

    The image is padded (bottom/right, ``pad_value``) to at least the window size; windows of
    ``window`` pixels start every ``stride`` pixels, the last one flush with the bottom/right
    edge; each window is predicted with ``predict_probabilities`` (so ``scales`` and
    ``add_flipped_images`` apply per window) and the probabilities are averaged per pixel.
    Choose a window of ``k * output_stride + 1`` pixels (e.g. 513) as for whole images.

    Args:
        model: see ``predict_probabilities``.
        images: float32 [B, H, W, 3], any H, W.
        window: int or (height, width). Window size.
        stride: int, (height, width) or None. Window step; None: from ``overlap``.
        overlap: float in [0, 1). Overlap fraction of neighbouring windows when ``stride`` is
            None: stride = round(window * (1 - overlap)).
        scales, add_flipped_images: see ``predict_probabilities``.
        pad_value: per-channel padding value (the model's mean pixel).

    Returns:
        float32 [B, H, W, C].
    """
    window_h, window_w = _pair(window, "window")
    if stride is None:
        if not 0.0 <= overlap < 1.0:
            raise ValueError(f"overlap must be in [0, 1). Received: overlap={overlap}")
        stride = (max(1, round(window_h * (1.0 - overlap))),
                  max(1, round(window_w * (1.0 - overlap))))
    stride_h, stride_w = _pair(stride, "stride")
    kwargs = dict(scales=scales, add_flipped_images=add_flipped_images)

    images = tf.convert_to_tensor(images, tf.float32)
    shape = tf.shape(images)
    height, width = shape[1], shape[2]
    padded = pad_images(images, window_h, window_w, pad_value)
    padded_h = tf.maximum(height, window_h)
    padded_w = tf.maximum(width, window_w)
    starts_y = _window_starts(padded_h, window_h, stride_h)
    starts_x = _window_starts(padded_w, window_w, stride_w)
    num_x = tf.size(starts_x)
    num_windows = tf.size(starts_y) * num_x

    def window_probabilities(index):
        y = starts_y[index // num_x]
        x = starts_x[index % num_x]
        crop = padded[:, y:y + window_h, x:x + window_w, :]
        probabilities = predict_probabilities(model, crop, **kwargs)
        paddings = [[0, 0], [y, padded_h - y - window_h], [x, padded_w - x - window_w], [0, 0]]
        ones = tf.ones_like(probabilities[..., :1])
        return tf.pad(probabilities, paddings), tf.pad(ones, paddings)

    # The first window initialises the sums (and fixes the class count); the rest loop.
    total, count = window_probabilities(tf.constant(0))

    def body(index, total, count):
        probabilities, ones = window_probabilities(index)
        return index + 1, total + probabilities, count + ones

    _, total, count = tf.while_loop(
        lambda index, *_: index < num_windows, body, (tf.constant(1), total, count))
    return (total / count)[:, :height, :width, :]


def predict_labels_sliding_window(model, images, **kwargs) -> tf.Tensor:
    """int32 [B, H, W]: argmax of ``predict_probabilities_sliding_window`` (same kwargs)."""
    probabilities = predict_probabilities_sliding_window(model, images, **kwargs)
    return tf.argmax(probabilities, axis=3, output_type=tf.int32)
