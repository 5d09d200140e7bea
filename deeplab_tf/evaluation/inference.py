"""The one inference path: logits -> input-size probabilities / labels.

Used by deeplab-eval, deeplab-vis and deeplab-export alike, so their predictions agree pixel
for pixel. Every function is plain TensorFlow (no Python control flow on tensor values), so it
can run eagerly, inside a ``tf.function`` or in an exported SavedModel graph, at any image size.

* ``upsample_logits``: align-corners bilinear resize of logits to the input size (the
  original's ``tf.image.resize_bilinear(..., align_corners=True)``).
* ``predict_probabilities`` / ``predict_labels``: single-scale, or multi-scale + left-right flip
  by averaging softmax probabilities, as the original's ``predict_labels_multi_scale``.
* ``predict_probabilities_sliding_window`` / ``predict_labels_sliding_window``: the same over
  overlapping windows of a large image, probabilities averaged where windows overlap.
* ``valid_size`` / ``pad_images``: the padding the original applies before inference
  (bottom/right, to ``k * output_stride + 1``, with the mean pixel).
* ``predict_labels_padded``: pad -> predict (any of the above) -> crop back: what deeplab-eval
  and deeplab-vis run on every image; an export that calls it agrees with eval pixel for pixel
  at any image size.

Images are float32 RGB in [0, 255], NHWC, as the model takes them. All arithmetic after the
model is float32, also when the model computes in bfloat16 / float16.

Example:

>>> model = build_model(ModelConfig(model_variant="mobilenet_v2", num_classes=3,
...                                 depth_multiplier=0.25))
>>> labels = predict_labels(model, np.zeros((1, 37, 53, 3), "float32"),
...                         scales=(0.75, 1.0), add_flipped_images=True)
>>> labels.shape
TensorShape([1, 37, 53])
"""

from __future__ import annotations

from typing import Optional, Sequence, Tuple, Union

import tensorflow as tf

from deeplab_tf.layers import resize_bilinear, scale_dimension

DEFAULT_PAD_VALUE = (127.5, 127.5, 127.5)


def upsample_logits(logits, size):
    """Align-corners bilinear resize of logits [B, h, w, C] to ``size`` = (H, W), in float32."""
    return resize_bilinear(tf.cast(logits, tf.float32), size)


def _scaled(images, scale):
    if scale == 1.0:
        return images
    shape = tf.shape(images)
    size = [scale_dimension(shape[1], scale), scale_dimension(shape[2], scale)]
    return resize_bilinear(images, size)


def _check_scales(scales):
    scales = tuple(float(s) for s in scales)
    if not scales or any(s <= 0 for s in scales):
        raise ValueError(f"scales must be positive numbers. Received: scales={list(scales)}")
    return scales


def predict_probabilities(model, images, *, scales: Sequence[float] = (1.0,),
                          add_flipped_images: bool = False) -> tf.Tensor:
    """Softmax probabilities at the input size, averaged over scales and flips.

    For every scale ``s`` the image is resized (align corners) to
    ``scale_dimension(H, s) x scale_dimension(W, s)``; the model's logits are resized back to
    H x W and soft-maxed. With ``add_flipped_images`` the left-right flipped image is also
    predicted and its logits flipped back. The result is the mean of all these probability
    maps, as the original's ``predict_labels_multi_scale``.

    One deliberate simplification: the original first resizes each scale's logits to the
    stride grid of the largest scale >= 1 and then to H x W; here they go to H x W in one
    resize. Both are identical for scale 1 and for every scale whose logits grid refines
    evenly into that stride grid (0.5, 0.25, and all scales >= 1); for others (e.g. 0.75)
    the logits differ by sub-pixel interpolation only.

    Args:
        model: callable images [B, H', W', 3] -> logits [B, h, w, C] (a DeepLab Keras model).
        images: float32 [B, H, W, 3], RGB in [0, 255].
        scales: sequence of float. Input scales (the original's ``--eval_scales``).
        add_flipped_images: bool. Also average left-right flipped inputs.

    Returns:
        float32 [B, H, W, C].
    """
    scales = _check_scales(scales)
    images = tf.convert_to_tensor(images, tf.float32)
    size = tf.shape(images)[1:3]
    probabilities = []
    for scale in scales:
        logits = model(_scaled(images, scale), training=False)
        probabilities.append(tf.nn.softmax(upsample_logits(logits, size)))
        if add_flipped_images:
            logits = model(_scaled(tf.reverse(images, [2]), scale), training=False)
            logits = tf.reverse(tf.cast(logits, tf.float32), [2])
            probabilities.append(tf.nn.softmax(upsample_logits(logits, size)))
    if len(probabilities) == 1:
        return probabilities[0]
    return tf.add_n(probabilities) / float(len(probabilities))


def predict_labels(model, images, *, scales: Sequence[float] = (1.0,),
                   add_flipped_images: bool = False) -> tf.Tensor:
    """int32 [B, H, W] class labels: argmax of ``predict_probabilities``.

    With one scale of 1.0 and no flip this is exactly
    ``argmax(upsample_logits(model(images), (H, W)))`` (the original's ``predict_labels``).
    """
    scales = _check_scales(scales)
    images = tf.convert_to_tensor(images, tf.float32)
    if scales == (1.0,) and not add_flipped_images:
        logits = upsample_logits(model(images, training=False), tf.shape(images)[1:3])
        return tf.argmax(logits, axis=3, output_type=tf.int32)
    probabilities = predict_probabilities(
        model, images, scales=scales, add_flipped_images=add_flipped_images)
    return tf.argmax(probabilities, axis=3, output_type=tf.int32)


def valid_size(size, output_stride: int):
    """Smallest ``k * output_stride + 1 >= size`` (int or int tensor): the sizes at which
    align-corners resizes line up with the model's feature grid (e.g. 513 for 500)."""
    return (size - 2 + output_stride) // output_stride * output_stride + 1


def pad_images(images, height, width, pad_value=DEFAULT_PAD_VALUE):
    """Pads images [B, H, W, 3] at the bottom and right to at least ``height`` x ``width``.

    The padding is ``pad_value`` per channel (use ``deeplab_tf.model.mean_pixel``, which the
    model's normalisation maps to zero, as the original does). Images already larger are
    left as they are. Exact: the image values are not touched.
    """
    images = tf.convert_to_tensor(images, tf.float32)
    shape = tf.shape(images)
    value = tf.constant(pad_value, tf.float32)
    pad_h = tf.maximum(height - shape[1], 0)
    pad_w = tf.maximum(width - shape[2], 0)
    bottom = tf.ones(tf.stack([shape[0], pad_h, shape[2], 1]), tf.float32) * value
    images = tf.concat([images, bottom], axis=1)
    right = tf.ones(tf.stack([shape[0], shape[1] + pad_h, pad_w, 1]), tf.float32) * value
    return tf.concat([images, right], axis=2)


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
        pad_value=DEFAULT_PAD_VALUE) -> tf.Tensor:
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


def predict_labels_padded(model, images, *, output_stride: int, pad_value=DEFAULT_PAD_VALUE,
                          min_size: Optional[Tuple[int, int]] = None,
                          scales: Sequence[float] = (1.0,), add_flipped_images: bool = False,
                          sliding_window: Optional[Tuple[int, int]] = None,
                          sliding_window_overlap: float = 1.0 / 3.0) -> tf.Tensor:
    """int32 [B, H, W] labels of images of any size, padded for inference as the original.

    The images are padded (bottom/right, ``pad_value``) to the next ``k * output_stride + 1``
    and to at least ``min_size`` (the original's eval crop size), predicted with
    ``predict_labels`` (or ``predict_labels_sliding_window`` when ``sliding_window`` is
    given) and the labels cropped back to H x W.

    Args:
        model: see ``predict_probabilities``.
        images: float32 [B, H, W, 3] in [0, 255].
        output_stride: int. The model's encoder output stride.
        pad_value: per-channel padding (``deeplab_tf.model.mean_pixel`` of the variant).
        min_size: (height, width) or None. Pad smaller images up to this size.
        scales, add_flipped_images: see ``predict_probabilities``.
        sliding_window: (height, width) or None. Window size for large images.
        sliding_window_overlap: float. Overlap of neighbouring windows.
    """
    images = tf.convert_to_tensor(images, tf.float32)
    shape = tf.shape(images)
    min_height, min_width = min_size or (1, 1)
    height = tf.maximum(valid_size(shape[1], output_stride), min_height)
    width = tf.maximum(valid_size(shape[2], output_stride), min_width)
    padded = pad_images(images, height, width, pad_value)
    kwargs = dict(scales=scales, add_flipped_images=add_flipped_images)
    if sliding_window is None:
        labels = predict_labels(model, padded, **kwargs)
    else:
        labels = predict_labels_sliding_window(
            model, padded, window=sliding_window, overlap=sliding_window_overlap,
            pad_value=pad_value, **kwargs)
    return labels[:, :shape[1], :shape[2]]
