"""Generated scenes and a tiny model trained on them, for the export tests.

A scene is a flat background with 2-3 flat shapes (discs and rectangles) whose colour is
their class, plus noise: easy enough that a tiny model trained for a few hundred steps
segments it well (~95 % pixel accuracy), so agreement between an export and the Keras model
measures the export, not the near-ties of an untrained network.
"""

from __future__ import annotations

import io
import os

import numpy as np

# Class colours: background, class 1, class 2.
SCENE_COLORS = np.array([[90, 90, 90], [200, 60, 50], [50, 80, 200]], np.float32)


def scenes(rng: np.random.Generator, count: int, height: int, width: int = None):
    """(float32 images [count, H, W, 3] in [0, 255], int32 labels [count, H, W])."""
    width = width or height
    images = np.empty((count, height, width, 3), np.float32)
    labels = np.zeros((count, height, width), np.int32)
    yy, xx = np.mgrid[:height, :width]
    size = min(height, width)
    for i in range(count):
        image = np.empty((height, width, 3), np.float32)
        image[...] = SCENE_COLORS[0] + rng.uniform(-40, 40, 3)
        label = np.zeros((height, width), np.int32)
        for _ in range(rng.integers(2, 4)):
            cls = rng.integers(1, 3)
            cy, cx = rng.uniform(0, height), rng.uniform(0, width)
            radius = rng.uniform(0.15, 0.35) * size
            if rng.random() < 0.5:
                mask = (yy - cy) ** 2 + (xx - cx) ** 2 < radius ** 2
            else:
                mask = (abs(yy - cy) < radius) & (abs(xx - cx) < radius * rng.uniform(0.5, 1.5))
            image[mask] = SCENE_COLORS[cls] + rng.uniform(-30, 30, 3)
            label[mask] = cls
        image += rng.normal(0, 6, image.shape)
        images[i] = np.clip(image, 0, 255)
        labels[i] = label
    return images, labels


def scene_config():
    """mobilenet_v2 x0.25, OS16, decoder with regular 3x3 convs, 3 classes.

    Regular (not separable) decoder convs make the weights dominate the TFLite file, as in
    real models: the int8 per-channel overhead (a float32 scale and an int64 zero point per
    output channel) would otherwise outweigh the tiny depthwise kernels.
    """
    from helpers import tiny_config

    return tiny_config(num_classes=3, decoder_use_separable_conv=False)


def train_scene_model(steps: int = 300, crop: int = 33, seed: int = 0):
    """A tiny model trained on scenes with a plain Adam loop (~30 s on two cores).

    Batch norm trains in training mode; afterwards its moving statistics are set to those of
    one large batch (momentum 0), so inference mode behaves like the trained network.
    """
    import keras
    import tensorflow as tf

    from deeplab_tf.inference import upsample_logits
    from deeplab_tf.model import build_model

    keras.utils.set_random_seed(seed)
    model = build_model(scene_config())
    optimizer = keras.optimizers.Adam(2e-3)

    @tf.function
    def step(images, labels):
        with tf.GradientTape() as tape:
            logits = upsample_logits(model(images, training=True), tf.shape(images)[1:3])
            loss = tf.reduce_mean(
                tf.nn.sparse_softmax_cross_entropy_with_logits(labels, logits))
        gradients = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(gradients, model.trainable_variables))
        return loss

    rng = np.random.default_rng(seed)
    for _ in range(steps):
        step(*scenes(rng, 8, crop))
    layers = [layer for layer in model._flatten_layers()
              if isinstance(layer, keras.layers.BatchNormalization)]
    momenta = [layer.momentum for layer in layers]
    for layer in layers:
        layer.momentum = 0.0
    model(scenes(rng, 32, crop)[0], training=True)
    for layer, momentum in zip(layers, momenta):
        layer.momentum = momentum
    return model


def encode_png(image: np.ndarray) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.asarray(image, np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def encode_jpeg(image: np.ndarray, quality: int = 90) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.asarray(image, np.uint8)).save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def write_scene_tfrecords(directory: str, split: str, images, labels, num_shards: int = 2):
    """Writes scenes as TFRecord shards in the project's schema (PNG images and labels)."""
    import tensorflow as tf

    from deeplab_tf.data import schema

    os.makedirs(directory, exist_ok=True)
    paths = [os.path.join(directory, schema.shard_name(split, i, num_shards))
             for i in range(num_shards)]
    writers = [tf.io.TFRecordWriter(path) for path in paths]
    for index, (image, label) in enumerate(zip(images, labels)):
        height, width = label.shape
        writers[index % num_shards].write(schema.encode_example(
            encode_png(image), "png", f"scene_{index}", height, width,
            encode_png(label.astype(np.uint8))))
    for writer in writers:
        writer.close()
