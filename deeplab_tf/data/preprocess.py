"""Training and evaluation preprocessing, as the original's ``input_preprocess.py``.

Training (``preprocess_for_train``), in the original's order:
1. optional resize to a size range (``resize_to_range``: smaller side to ``min_resize_value``
   unless the larger side would pass ``max_resize_value``, sides made ``k * factor + 1``; the
   rule of the original's final version);
2. random scale drawn from ``min_scale_factor..max_scale_factor`` in steps of
   ``scale_factor_step_size`` (uniform in ``[min, max)`` when the step is 0);
3. pad at the bottom/right to at least the crop size: the image with the mean pixel, the label
   with the ignore label;
4. random crop of the crop size (same window for image and label);
5. random left-right flip with probability 0.5.

All resizes are align-corners resizes as the original's (bilinear for the image, nearest
neighbour for the label), so labels are never interpolated into values that were not there.

Randomness is stateless: every random draw takes a ``seed`` (int tensor [2]), so a pipeline
that derives one seed per element is reproducible however its parallel stages are scheduled.
"""

from __future__ import annotations

from typing import Optional, Sequence, Tuple, Union

import tensorflow as tf

_PROB_OF_FLIP = 0.5

MeanPixel = Union[float, Sequence[float]]


def _mean_pixel(mean_pixel: MeanPixel) -> tf.Tensor:
    mean = tf.constant(mean_pixel, tf.float32)
    if mean.shape.rank == 0:
        return mean
    if mean.shape != (3,):
        raise ValueError(f"mean_pixel must be a number or 3 numbers. Received: mean_pixel={mean_pixel}")
    return tf.reshape(mean, [1, 1, 3])


def _seed_or_random(seed) -> tf.Tensor:
    if seed is None:
        return tf.random.uniform([2], maxval=2**31 - 1, dtype=tf.int32)
    return tf.convert_to_tensor(seed)


# The kernels of tf.compat.v1.image.resize_bilinear / resize_nearest_neighbor with
# align_corners=True (the original's), called directly to skip their deprecation notices.
def _resize_bilinear(image: tf.Tensor, size: tf.Tensor) -> tf.Tensor:
    resized = tf.raw_ops.ResizeBilinear(
        images=image[tf.newaxis], size=size, align_corners=True, half_pixel_centers=False)
    return resized[0]


def _resize_nearest(label: tf.Tensor, size: tf.Tensor) -> tf.Tensor:
    resized = tf.raw_ops.ResizeNearestNeighbor(
        images=label[tf.newaxis], size=size, align_corners=True, half_pixel_centers=False)
    return resized[0]


def resize_to_range_size(height, width, min_size: Optional[int] = None,
                         max_size: Optional[int] = None, factor: Optional[int] = None,
                         dtype=tf.float32) -> tf.Tensor:
    """The output size (int32 [2]) of the original's ``resize_to_range`` (its final version,
    tensorflow/models a45ce37; see below for the 2018 one).

    The smaller side becomes ``min_size`` unless the larger side would then exceed
    ``max_size``, in which case the larger side becomes ``max_size``; the other side is
    scaled alike and rounded down, in float32 as the original. With ``factor``, ``max_size``
    is first lowered to the largest ``k * factor + 1`` not above it (``m - (m - 1) % factor``),
    and both sides are raised to the next ``k * factor + 1``. Without ``min_size`` (an
    extension) the image keeps its size unless it exceeds ``max_size``.

    The original's 2018 version, with which the 2018 model-zoo numbers were computed, rounded
    up instead, and lowered ``max_size`` by ``factor`` more when it already was
    ``k * factor + 1`` (max 513 with factor 16 gave 497, here 513).

    ``dtype=tf.float64`` computes in float64 with an int64 result, for sizes read from an
    untrusted header (resource limits), where int32 could overflow.
    """
    int_dtype = tf.int64 if dtype == tf.float64 else tf.int32
    height = tf.cast(height, dtype)
    width = tf.cast(width, dtype)
    if max_size is not None:
        max_size = float(max_size)
        if factor is not None:
            max_size = max_size - (max_size - 1) % factor
    if min_size is not None:
        scale = float(min_size) / tf.minimum(height, width)
        new_size = tf.cast(tf.math.floor(tf.stack([height * scale, width * scale])), int_dtype)
    else:
        new_size = tf.cast(tf.stack([height, width]), int_dtype)
    if max_size is not None:
        scale = max_size / tf.maximum(height, width)
        small_size = tf.cast(tf.math.floor(tf.stack([height * scale, width * scale])), int_dtype)
        new_size = tf.where(
            tf.cast(tf.reduce_max(new_size), dtype) > max_size, small_size, new_size)
    if factor is not None:
        new_size += (factor - (new_size - 1) % factor) % factor
    return new_size


def resize_to_range(image: tf.Tensor, label: Optional[tf.Tensor] = None,
                    min_size: Optional[int] = None, max_size: Optional[int] = None,
                    factor: Optional[int] = None):
    """Resizes image (bilinear) and label (nearest) to the range; see ``resize_to_range_size``.

    Returns:
        (image float32 [H', W', 3], label [H', W', 1] or None).
    """
    shape = tf.shape(image)
    size = resize_to_range_size(shape[0], shape[1], min_size, max_size, factor)
    image = _resize_bilinear(tf.cast(image, tf.float32), size)
    if label is not None:
        label = _resize_nearest(label, size)
    return image, label


def random_scale(min_scale_factor: float, max_scale_factor: float, step_size: float,
                 seed=None) -> tf.Tensor:
    """A random scale (float32 scalar) as the original's ``get_random_scale``.

    One of ``min, min + step, ..., max`` with equal probability; uniform in ``[min, max)``
    when ``step_size`` is 0; ``min`` when ``min == max``.
    """
    if min_scale_factor < 0 or min_scale_factor > max_scale_factor:
        raise ValueError(
            "Scale factors must satisfy 0 <= min <= max. Received: "
            f"min_scale_factor={min_scale_factor}, max_scale_factor={max_scale_factor}")
    if min_scale_factor == max_scale_factor:
        return tf.constant(min_scale_factor, tf.float32)
    seed = _seed_or_random(seed)
    if step_size == 0:
        return tf.random.stateless_uniform(
            [], seed, minval=min_scale_factor, maxval=max_scale_factor, dtype=tf.float32)
    num_steps = int((max_scale_factor - min_scale_factor) / step_size + 1)
    scales = tf.linspace(tf.constant(min_scale_factor, tf.float32), max_scale_factor, num_steps)
    index = tf.random.stateless_uniform([], seed, minval=0, maxval=num_steps, dtype=tf.int32)
    return scales[index]


def scale_image_and_label(image: tf.Tensor, label: Optional[tf.Tensor], scale: tf.Tensor):
    """Resizes both to ``int(size * scale)`` (align-corners bilinear / nearest neighbour)."""
    shape = tf.cast(tf.shape(image)[:2], tf.float32)
    new_size = tf.maximum(tf.cast(shape * scale, tf.int32), 1)
    image = _resize_bilinear(tf.cast(image, tf.float32), new_size)
    if label is not None:
        label = _resize_nearest(label, new_size)
    return image, label


def pad_to_size(image: tf.Tensor, label: Optional[tf.Tensor], height, width,
                mean_pixel: MeanPixel, ignore_label: int):
    """Pads at the bottom and right up to ``height`` x ``width`` (no-op if already as large).

    The image is padded with ``mean_pixel`` (exactly: padded pixels are set, not computed) and
    the label with ``ignore_label``.
    """
    image = tf.cast(image, tf.float32)
    shape = tf.shape(image)
    pad_h = tf.maximum(height - shape[0], 0)
    pad_w = tf.maximum(width - shape[1], 0)
    paddings = [[0, pad_h], [0, pad_w], [0, 0]]
    inside = tf.pad(tf.ones([shape[0], shape[1], 1], tf.float32), paddings)
    image = tf.pad(image, paddings) + (1.0 - inside) * _mean_pixel(mean_pixel)
    if label is not None:
        label = tf.pad(label, paddings, constant_values=tf.cast(ignore_label, label.dtype))
    return image, label


def random_crop(image: tf.Tensor, label: tf.Tensor, crop_height: int, crop_width: int,
                seed=None):
    """Crops the same random ``crop_height`` x ``crop_width`` window from both."""
    seed = _seed_or_random(seed)
    seeds = tf.random.experimental.stateless_split(seed, num=2)
    shape = tf.shape(image)
    with tf.control_dependencies([
            tf.debugging.assert_greater_equal(shape[0], crop_height, message="Crop taller than image"),
            tf.debugging.assert_greater_equal(shape[1], crop_width, message="Crop wider than image"),
            tf.debugging.assert_equal(tf.shape(label)[:2], shape[:2], message="Image/label size mismatch")]):
        top = tf.random.stateless_uniform(
            [], seeds[0], minval=0, maxval=shape[0] - crop_height + 1, dtype=tf.int32)
        left = tf.random.stateless_uniform(
            [], seeds[1], minval=0, maxval=shape[1] - crop_width + 1, dtype=tf.int32)
    image = image[top:top + crop_height, left:left + crop_width]
    label = label[top:top + crop_height, left:left + crop_width]
    return image, label


def random_flip(image: tf.Tensor, label: tf.Tensor, seed=None, prob: float = _PROB_OF_FLIP):
    """Flips both left-right with probability ``prob``."""
    flip = tf.random.stateless_uniform([], _seed_or_random(seed)) <= prob
    image = tf.cond(flip, lambda: tf.reverse(image, [1]), lambda: image)
    label = tf.cond(flip, lambda: tf.reverse(label, [1]), lambda: label)
    return image, label


def preprocess_for_train(image: tf.Tensor, label: tf.Tensor, *, crop_size: Tuple[int, int],
                         mean_pixel: MeanPixel, ignore_label: int,
                         min_resize_value: Optional[int] = None,
                         max_resize_value: Optional[int] = None,
                         resize_factor: Optional[int] = None,
                         min_scale_factor: float = 1.0, max_scale_factor: float = 1.0,
                         scale_factor_step_size: float = 0.0, seed=None):
    """The original's training preprocessing (see the module docstring).

    Args:
        image: [H, W, 3] uint8 or float tensor, values in [0, 255].
        label: [H, W, 1] integer tensor of class indices.
        crop_size: (crop_height, crop_width).
        mean_pixel: the value the image is padded with (the model's mean pixel).
        ignore_label: int. The value the label is padded with.
        seed: int tensor [2] or None. Stateless seed of this element's random draws.

    Returns:
        image float32 [crop_h, crop_w, 3] in [0, 255]; label int32 [crop_h, crop_w, 1].
    """
    crop_height, crop_width = (int(s) for s in crop_size)
    seeds = tf.random.experimental.stateless_split(_seed_or_random(seed), num=3)
    image = tf.cast(image, tf.float32)
    label = tf.cast(label, tf.int32)
    if min_resize_value or max_resize_value:
        image, label = resize_to_range(image, label, min_resize_value, max_resize_value,
                                       resize_factor)
    if not min_scale_factor == max_scale_factor == 1.0:
        scale = random_scale(min_scale_factor, max_scale_factor, scale_factor_step_size, seeds[0])
        image, label = scale_image_and_label(image, label, scale)
    image, label = pad_to_size(image, label, crop_height, crop_width, mean_pixel, ignore_label)
    image, label = random_crop(image, label, crop_height, crop_width, seeds[1])
    image, label = random_flip(image, label, seeds[2])
    image.set_shape([crop_height, crop_width, 3])
    label.set_shape([crop_height, crop_width, 1])
    return image, label


def padded_size(size, output_stride: int):
    """The smallest ``k * output_stride + 1`` >= size (int or int tensor)."""
    return (size - 1 + output_stride - 1) // output_stride * output_stride + 1


def padded_pixels(height, width, *, output_stride: int = 1, crop_size=None,
                  min_resize_value: Optional[int] = None, max_resize_value: Optional[int] = None,
                  resize_factor: Optional[int] = None) -> tf.Tensor:
    """float64: the area inference pads an ``height`` x ``width`` image to (after the resize
    to range, the next ``k * output_stride + 1`` and at least ``crop_size``), in float64 so
    that sizes read from an untrusted header cannot overflow (resource limits)."""
    height, width = tf.cast(height, tf.float64), tf.cast(width, tf.float64)
    if min_resize_value or max_resize_value:
        size = tf.cast(resize_to_range_size(height, width, min_resize_value, max_resize_value,
                                            resize_factor, dtype=tf.float64), tf.float64)
        height, width = size[0], size[1]
    min_h, min_w = crop_size or (1, 1)
    return (tf.maximum(padded_size(height, output_stride), float(min_h)) *
            tf.maximum(padded_size(width, output_stride), float(min_w)))


def preprocess_for_eval(image: tf.Tensor, label: tf.Tensor, *, mean_pixel: MeanPixel,
                        ignore_label: int, output_stride: Optional[int] = None,
                        min_resize_value: Optional[int] = None,
                        max_resize_value: Optional[int] = None,
                        resize_factor: Optional[int] = None):
    """Evaluation preprocessing: optional resize to range, then padding for the output stride.

    No crop size is required: the image keeps its size, padded at the bottom/right (mean pixel;
    ignore label for the label) to the next ``k * output_stride + 1`` when ``output_stride`` is
    given, the sizes on which the original's align-corners model is exact.

    Returns:
        (image float32 [H', W', 3], label int32 [H', W', 1], height, width), where height and
        width (int32 scalars) are the size before padding, to crop predictions back.
    """
    image = tf.cast(image, tf.float32)
    label = tf.cast(label, tf.int32)
    if min_resize_value or max_resize_value:
        image, label = resize_to_range(image, label, min_resize_value, max_resize_value,
                                       resize_factor)
    shape = tf.shape(image)
    height, width = shape[0], shape[1]
    if output_stride:
        image, label = pad_to_size(image, label, padded_size(height, output_stride),
                                   padded_size(width, output_stride), mean_pixel, ignore_label)
    return image, label, height, width
