"""``ServingModule``: the SavedModel's signatures, pre-processing and inference in the graph.

Two signatures, both computing ``deeplab_tf.inference.predict`` with the export's
``InferenceSpec`` (mean-pixel padding to ``k * output_stride + 1`` and the crop size, optional
resize to range, scales and flips baked in), on the same formulation as deeplab-eval
(``inference.prepare_model``), so an export and deeplab-eval agree pixel for pixel.

* ``serving_default``: ``image_bytes`` string [batch] of encoded images (JPEG, PNG, GIF,
  BMP or WebP, sniffed from the bytes; ``{"b64": ...}`` in TF Serving's REST JSON), each decoded to RGB
  (grayscale and CMYK JPEG, RGBA / LA / palette PNG converted; alpha dropped) and predicted at
  its own size. Outputs: ``semantic_predictions`` int32 [batch, H, W], where H x W is the
  largest image of the batch and pixels beyond an image's own size are -1; ``image_height``
  and ``image_width`` int32 [batch]; with probabilities, ``semantic_probabilities`` float32
  [batch, H, W, classes] (0 beyond an image).
* ``predict_images``: ``images`` uint8 [batch, height, width, 3] (dynamic height and width).
  Outputs: ``semantic_predictions`` int32 [batch, height, width] and optionally
  ``semantic_probabilities`` float32 [batch, height, width, classes].

Bad requests raise ``InvalidArgumentError`` (TF Serving answers INVALID_ARGUMENT / HTTP 400)
and the model keeps serving: empty bytes, a format whose header is not read here (anything but
PNG, JPEG, GIF, BMP and WebP: ``data.image_headers``), undecodable bytes, and requests that
would allocate more than ``max_image_pixels`` pixels. That measure is what the request
really costs (``InferenceSpec.pixels``): each image's size read from its header before
anything is decoded, padded to ``k * output_stride + 1`` and the crop size, times the scale
and flip passes, summed over the batch (and at least the batch's padded output, batch x
largest height x largest width), so neither a decompression bomb nor a thin image that the
padding blows up is ever decoded. Images of a batch are predicted one after the other.

Example:

>>> spec = InferenceSpec.from_export_config(model_config, ExportConfig())
>>> module = ServingModule(prepare_model(model, spec, model_config), spec)
>>> tf.saved_model.save(module, path, signatures=module.signatures())
"""

from __future__ import annotations

import tensorflow as tf

from deeplab_tf import inference
from deeplab_tf.config import DEFAULT_MAX_IMAGE_PIXELS
from deeplab_tf.data import image_headers, schema

PREDICTIONS = "semantic_predictions"
PROBABILITIES = "semantic_probabilities"
IMAGE_HEIGHT = "image_height"
IMAGE_WIDTH = "image_width"
ENCODED_INPUT = "image_bytes"
IMAGES_INPUT = "images"
PREDICT_IMAGES = "predict_images"
SERVING_DEFAULT = "serving_default"
# semantic_predictions beyond an image's own size in a batch of differently sized images.
PADDING_LABEL = -1


def _header_cost(encoded, spec: inference.InferenceSpec):
    """float64 [3]: height, width (-1: a format not read) and the pixels predicting it costs."""
    height, width, decoded = image_headers.header_size(encoded)
    cost = tf.maximum(tf.cast(decoded, tf.float64),
                      spec.pixels(tf.maximum(height, 1), tf.maximum(width, 1)))
    return tf.stack([tf.cast(height, tf.float64), tf.cast(width, tf.float64),
                     tf.where(height >= 0, cost, 0.0)])


def check_request(heights, widths, costs, spec: inference.InferenceSpec, max_image_pixels: int):
    """The assertion (an op) that a request of images of these sizes and costs (float64 [B])
    stays within ``max_image_pixels``: the sum of the costs, and the batch's padded output
    (B x largest height x largest width). No op for ``max_image_pixels`` 0 (no limit)."""
    if not max_image_pixels:
        return tf.no_op()
    count = tf.cast(tf.shape(costs)[0], tf.float64)
    total = tf.maximum(tf.reduce_sum(costs),
                       count * tf.reduce_max(tf.concat([heights, [0.0]], 0)) *
                       tf.reduce_max(tf.concat([widths, [0.0]], 0)))
    shown = tf.strings.as_string(tf.cast(tf.minimum(total, 2.0 ** 62), tf.int64))
    message = tf.strings.join([
        "Image too large: the request needs ", shown, " pixels (each image padded to "
        f"k * output_stride + 1 and to the crop size, times {spec.passes:g} scale/flip "
        f"pass(es)), more than max_image_pixels={int(max_image_pixels)} (the limit set at "
        "export by --max_image_pixels)"])
    return tf.debugging.Assert(total <= float(max_image_pixels), [message], summarize=1)


def _check_encoded(image_bytes, spec, max_image_pixels: int):
    """The assertions on a batch of encoded images, before any of them is decoded."""
    not_empty = tf.debugging.assert_greater(
        tf.reduce_min(tf.concat([tf.strings.length(image_bytes), [1]], 0)), 0,
        message=f"Empty image bytes (expected {image_headers.FORMATS})")
    with tf.control_dependencies([not_empty]):
        headers = tf.map_fn(lambda encoded: _header_cost(encoded, spec), image_bytes,
                            fn_output_signature=tf.TensorSpec([3], tf.float64))
    known = tf.debugging.assert_non_negative(
        tf.reduce_min(tf.concat([headers[:, 0], [0.0]], 0)),
        message=f"Unsupported or unreadable image: expected {image_headers.FORMATS} "
                "(recognised from the first bytes; JPEG XL, TIFF and others are refused "
                "before decoding)")
    with tf.control_dependencies([known]):
        return [known, check_request(headers[:, 0], headers[:, 1], headers[:, 2], spec,
                                     max_image_pixels)]


class ServingModule(tf.Module):
    """Holds the model and the ``tf.function`` of each signature.

    Args:
        model: the model to run (``inference.prepare_model``: batch norm folded by default).
        spec: ``inference.InferenceSpec`` (the export's; ``from_export_config``).
        export_probabilities: bool. Also output ``semantic_probabilities``.
        max_image_pixels: int. Both signatures reject a request that would allocate more
            pixels than this (InvalidArgument; see the module docstring); 0: no limit.
        track_variables: bool. Save the model's variables with the module. False for a model
            whose call reads none (a folded model): ``predict`` then runs its frozen graph
            (``inference.compiled_predict``: the weights ``Const`` nodes, as deeplab-eval
            runs it), one function that both signatures call, so the SavedModel holds the
            weights once and runs as fast as the frozen graph.
    """

    def __init__(self, model, spec: inference.InferenceSpec, *,
                 export_probabilities: bool = False,
                 max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS, track_variables: bool = True):
        super().__init__(name="deeplab_serving")
        self.num_classes = int(model.output_shape[-1])
        self.spec = spec
        self.export_probabilities = bool(export_probabilities)
        names = (inference.LABELS,) + ((inference.PROBABILITIES,) if export_probabilities
                                       else ())
        if track_variables:
            self.model = model
            # A plain function (not tracked): the graph calls the model through it.
            call_model = lambda images, training=False: model(images, training=training)  # noqa: E731
            self._predict = lambda images: inference.predict(call_model, images, spec)
        else:
            # Not an attribute of the module: saved as a function the signatures call.
            frozen = inference.compiled_predict(model, spec, names)
            self._predict = lambda images: dict(zip(names, frozen(images)))
        self.max_image_pixels = int(max_image_pixels)
        self.predict_images = tf.function(
            self._predict_images,
            input_signature=[tf.TensorSpec([None, None, None, 3], tf.uint8, name=IMAGES_INPUT)])
        self.predict_encoded = tf.function(
            self._predict_encoded,
            input_signature=[tf.TensorSpec([None], tf.string, name=ENCODED_INPUT)])

    def signatures(self) -> dict:
        """``{"serving_default": ..., "predict_images": ...}`` for ``tf.saved_model.save``."""
        return {SERVING_DEFAULT: self.predict_encoded.get_concrete_function(),
                PREDICT_IMAGES: self.predict_images.get_concrete_function()}

    def predict(self, images) -> dict:
        """images [B, H, W, 3] -> {semantic_predictions, [semantic_probabilities]}:
        ``inference.predict`` with the export's spec."""
        outputs = self._predict(tf.cast(images, tf.float32))
        result = {PREDICTIONS: outputs[inference.LABELS]}
        if self.export_probabilities:
            result[PROBABILITIES] = outputs[inference.PROBABILITIES]
        return result

    def _predict_images(self, images):
        shape = tf.shape(images)
        count = shape[0]
        cost = tf.fill([count], self.spec.pixels(shape[1], shape[2]))
        height = tf.fill([count], tf.cast(shape[1], tf.float64))
        width = tf.fill([count], tf.cast(shape[2], tf.float64))
        with tf.control_dependencies([check_request(height, width, cost, self.spec,
                                                    self.max_image_pixels)]):
            return self.predict(tf.cast(images, tf.float32))

    def _predict_encoded(self, image_bytes):
        num_classes = self.num_classes

        def one(encoded):
            image = schema.decode_image(encoded)
            outputs = self.predict(tf.cast(image, tf.float32)[tf.newaxis])
            result = {PREDICTIONS: tf.RaggedTensor.from_tensor(outputs[PREDICTIONS][0]),
                      "size": tf.shape(image)[:2]}
            if self.export_probabilities:
                result[PROBABILITIES] = tf.RaggedTensor.from_tensor(outputs[PROBABILITIES][0])
            return result

        signature = {PREDICTIONS: tf.RaggedTensorSpec([None, None], tf.int32, ragged_rank=1),
                     "size": tf.TensorSpec([2], tf.int32)}
        if self.export_probabilities:
            signature[PROBABILITIES] = tf.RaggedTensorSpec([None, None, num_classes],
                                                           tf.float32, ragged_rank=1)
        checks = _check_encoded(image_bytes, self.spec, self.max_image_pixels)
        with tf.control_dependencies(checks):
            image_bytes = tf.identity(image_bytes)
        # One image at a time: the request's cost is the sum of its images' (checked above).
        results = tf.map_fn(one, image_bytes, fn_output_signature=signature,
                            parallel_iterations=1)
        outputs = {PREDICTIONS: results[PREDICTIONS].to_tensor(default_value=PADDING_LABEL),
                   IMAGE_HEIGHT: results["size"][:, 0],
                   IMAGE_WIDTH: results["size"][:, 1]}
        if self.export_probabilities:
            outputs[PROBABILITIES] = results[PROBABILITIES].to_tensor(
                default_value=0.0, shape=[None, None, None, num_classes])
        return outputs
