"""Multi-scale + flip prediction and mean-pixel padding: the pieces of ``inference.predict``.

* ``upsample_logits``: align-corners bilinear resize of logits to the input size (the
  original's ``tf.image.resize_bilinear(..., align_corners=True)``).
* ``predict_probabilities`` / ``predict_labels``: single-scale, or multi-scale + left-right flip
  by averaging softmax probabilities, as the original's ``predict_labels_multi_scale``.
* ``pad_images``: bottom/right padding with the model's mean pixel.

Plain TensorFlow (no Python control flow on tensor values): eager, in a ``tf.function`` or in
an exported graph, at any image size. Arithmetic after the model is float32, also when the
model computes in bfloat16 / float16.
"""

from __future__ import annotations

from typing import Sequence

import tensorflow as tf

from deeplab_tf.modeling.layers.resize import resize_bilinear, scale_dimension
from deeplab_tf.modeling.pyramid import single_scale_network


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

    With scales other than ``(1.0,)``, a model with an image pyramid runs its single-scale
    network at each scale (``modeling.pyramid.single_scale_network``), as the original's
    ``predict_labels_multi_scale`` ignores ``--image_pyramid``; with ``(1.0,)`` it runs whole.

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
    if scales != (1.0,):  # the original's multi-scale test ignores the image pyramid
        model = single_scale_network(model)
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


def pad_images(images, height, width, pad_value):
    """Pads images [B, H, W, 3] at the bottom and right to at least ``height`` x ``width``.

    The padding is ``pad_value`` per channel (use ``deeplab_tf.modeling.backbones.mean_pixel``, which the
    model's normalisation maps to zero, as the original does). Images already larger are
    left as they are. Exact: the image values are not touched.
    """
    images = tf.convert_to_tensor(images, tf.float32)
    shape = tf.shape(images)
    paddings = [[0, 0], [0, tf.maximum(height - shape[1], 0)],
                [0, tf.maximum(width - shape[2], 0)], [0, 0]]
    # One constant pad per channel (no zero-sized fills, which OpenVINO mis-shapes).
    return tf.concat([tf.pad(images[..., c:c + 1], paddings, constant_values=float(v))
                      for c, v in enumerate(pad_value)], axis=3)
