"""The inference path against NumPy recomputations from the model's raw logits."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from deeplab_tf.data.preprocess import padded_size
from deeplab_tf import inference
from deeplab_tf.evaluation.evaluator import make_predict_fn
from deeplab_tf.model import build_model
from helpers import np_resize_bilinear_align_corners, tiny_config

PAD = (127.5, 127.5, 127.5)  # mobilenet_v2's mean pixel


def calibrated_model(config, seed=0):
    """A randomly initialised model whose batch-norm statistics are those of random images
    (one training-mode pass with momentum 0), so its predictions vary over the image."""
    keras.utils.set_random_seed(seed)
    model = build_model(config)
    layers = [layer for layer in model._flatten_layers()
              if isinstance(layer, keras.layers.BatchNormalization)]
    momenta = [layer.momentum for layer in layers]
    for layer in layers:
        layer.momentum = 0.0
    model(_images(50, 61, batch=4, seed=seed), training=True)
    for layer, momentum in zip(layers, momenta):
        layer.momentum = momentum
    return model


@pytest.fixture(scope="module")
def model():
    return calibrated_model(tiny_config(num_classes=3))


def _images(height, width, batch=1, seed=0):
    return np.random.default_rng(seed).uniform(0, 255, (batch, height, width, 3)).astype("float32")


def np_softmax(x):
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def np_scale_dimension(dim, scale):
    return int((dim - 1) * scale + 1)


def assert_labels_match(labels, reference_scores):
    """Labels equal the reference argmax except where the reference's top two are ~tied."""
    expected = reference_scores.argmax(-1)
    top2 = np.sort(reference_scores, axis=-1)[..., -2:]
    clear = (top2[..., 1] - top2[..., 0]) > 1e-4
    assert clear.mean() > 0.95
    assert len(np.unique(expected)) > 1  # a test that only sees one class proves little
    np.testing.assert_array_equal(np.asarray(labels)[clear], expected[clear])


@pytest.mark.parametrize("height,width", [(65, 65), (37, 53)])
def test_predict_labels_is_upsampled_logits_argmax(model, height, width):
    images = _images(height, width)
    logits = model(images, training=False).numpy().astype(np.float64)
    reference = np_resize_bilinear_align_corners(logits, height, width)
    labels = inference.predict_labels(model, images)
    assert labels.dtype == tf.int32 and labels.shape == (1, height, width)
    assert_labels_match(labels, reference)
    # The contract, exactly: argmax(upsample_logits(model(images), (H, W))).
    exact = tf.argmax(inference.upsample_logits(model(images), (height, width)), axis=3)
    np.testing.assert_array_equal(labels.numpy(), exact.numpy())
    np.testing.assert_allclose(inference.upsample_logits(logits, (height, width)).numpy(),
                               reference, atol=1e-4)


def test_multi_scale_and_flip_matches_numpy(model):
    height, width, scales = 37, 53, (0.5, 0.75, 1.25)
    images = _images(height, width, batch=2, seed=1)
    probabilities = []
    for scale in scales:
        size = (np_scale_dimension(height, scale), np_scale_dimension(width, scale))
        for flip in (False, True):
            x = images[:, :, ::-1] if flip else images
            scaled = np_resize_bilinear_align_corners(x.astype(np.float64), *size)
            logits = model(scaled.astype(np.float32), training=False).numpy().astype(np.float64)
            if flip:
                logits = logits[:, :, ::-1]
            up = np_resize_bilinear_align_corners(logits, height, width)
            probabilities.append(np_softmax(up))
    expected = np.mean(probabilities, axis=0)
    got = inference.predict_probabilities(model, images, scales=scales, add_flipped_images=True)
    assert got.dtype == tf.float32 and got.shape == (2, height, width, 3)
    np.testing.assert_allclose(got.numpy(), expected, atol=2e-4)
    labels = inference.predict_labels(model, images, scales=scales, add_flipped_images=True)
    assert_labels_match(labels, expected)


def test_single_scale_probabilities_and_flip_only(model):
    images = _images(33, 41)
    logits = model(images).numpy().astype(np.float64)
    expected = np_softmax(np_resize_bilinear_align_corners(logits, 33, 41))
    np.testing.assert_allclose(inference.predict_probabilities(model, images).numpy(), expected,
                               atol=1e-5)
    flipped = model(images[:, :, ::-1].copy()).numpy().astype(np.float64)[:, :, ::-1]
    expected = (expected + np_softmax(np_resize_bilinear_align_corners(flipped, 33, 41))) / 2
    got = inference.predict_probabilities(model, images, add_flipped_images=True)
    np.testing.assert_allclose(got.numpy(), expected, atol=1e-5)


def test_low_precision_model_gives_float32():
    def bf16_model(images, training=False):
        return tf.cast(tf.nn.avg_pool2d(images, 4, 4, "VALID"), tf.bfloat16)

    images = _images(17, 21)
    probabilities = inference.predict_probabilities(bf16_model, images, scales=(1.0, 0.5))
    assert probabilities.dtype == tf.float32
    assert inference.predict_labels(bf16_model, images).shape == (1, 17, 21)


def test_graph_mode_any_size(model):
    fn = tf.function(lambda x: inference.predict_labels(model, x, scales=(0.75, 1.0)),
                     input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32)])
    for h, w in [(37, 53), (20, 70)]:
        eager = inference.predict_labels(model, _images(h, w), scales=(0.75, 1.0))
        np.testing.assert_array_equal(fn(_images(h, w)).numpy(), eager.numpy())


def test_pad_images_and_padded_size():
    assert [padded_size(n, 16) for n in (1, 16, 17, 18, 500, 513)] == \
        [1, 17, 17, 33, 513, 513]
    images = _images(5, 7, batch=2)
    padded = inference.pad_images(images, 9, 8, pad_value=(1.0, 2.0, 3.0)).numpy()
    assert padded.shape == (2, 9, 8, 3)
    np.testing.assert_array_equal(padded[:, :5, :7], images)
    np.testing.assert_array_equal(padded[:, 5:, :], np.broadcast_to([1.0, 2.0, 3.0], (2, 4, 8, 3)))
    np.testing.assert_array_equal(padded[:, :, 7:], np.broadcast_to([1.0, 2.0, 3.0], (2, 9, 1, 3)))
    assert inference.pad_images(images, 3, 3, PAD).shape == images.shape  # never crops


def test_sliding_window_matches_numpy_window_average(model):
    height, width, window, stride = 49, 70, (33, 33), (16, 24)
    images = _images(height, width, seed=2)
    total = np.zeros((1, height, width, 3))
    count = np.zeros((1, height, width, 1))
    # Window starts: every stride, the last flush with the edge.
    for y in (0, 16):
        for x in (0, 24, 37):
            crop = images[:, y:y + 33, x:x + 33]
            logits = model(crop).numpy().astype(np.float64)
            total[:, y:y + 33, x:x + 33] += np_softmax(
                np_resize_bilinear_align_corners(logits, 33, 33))
            count[:, y:y + 33, x:x + 33] += 1
    expected = total / count
    got = inference.predict_probabilities_sliding_window(model, images, window=window,
                                                         stride=stride, pad_value=PAD)
    np.testing.assert_allclose(got.numpy(), expected, atol=1e-5)
    labels = inference.predict_labels_sliding_window(model, images, window=window, stride=stride,
                                                      pad_value=PAD)
    assert_labels_match(labels, expected)


def test_sliding_window_larger_than_image_is_padded_whole_image(model):
    images = _images(20, 30)
    pad = (127.5, 127.5, 127.5)
    got = inference.predict_probabilities_sliding_window(model, images, window=33, overlap=0.5,
                                                         pad_value=pad)
    whole = inference.predict_probabilities(model, inference.pad_images(images, 33, 33, pad))
    np.testing.assert_allclose(got.numpy(), whole.numpy()[:, :20, :30], atol=1e-6)


def _spec(**kwargs):
    kwargs.setdefault("fold_batch_norm", False)
    return inference.InferenceSpec(output_stride=16, pad_value=PAD, **kwargs)


def test_make_predict_fn_pads_like_the_original(model):
    # 37x53 is padded to 49x65 (k*16+1) with the mean pixel, predicted and cropped back.
    images = _images(37, 53)
    predict = make_predict_fn(model, _spec())
    padded = inference.pad_images(images, 49, 65, PAD)
    expected = inference.predict_labels(model, padded)[:, :37, :53]
    np.testing.assert_array_equal(predict(images).numpy(), expected.numpy())
    # eval_crop_size pads further when larger than the image, never crops.
    predict = make_predict_fn(model, _spec(crop_size=(65, 33)))
    expected = inference.predict_labels(model, inference.pad_images(images, 65, 65, PAD))
    np.testing.assert_array_equal(predict(images).numpy(), expected.numpy()[:, :37, :53])


def test_make_predict_fn_sliding_window(model):
    images = _images(37, 70)
    predict = make_predict_fn(model, _spec(sliding_window_size=(33, 33),
                                           sliding_window_overlap=0.5, add_flipped_images=True))
    padded = inference.pad_images(images, 49, 81, PAD)
    expected = inference.predict_labels_sliding_window(
        model, padded, window=33, stride=16, add_flipped_images=True, pad_value=PAD)[:, :37, :70]
    np.testing.assert_array_equal(predict(images).numpy(), expected.numpy())
