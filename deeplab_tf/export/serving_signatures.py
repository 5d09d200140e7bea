"""``ServingModule``: the SavedModel's signatures, pre-processing and inference in the graph.

Two signatures, both computing ``deeplab_tf.inference.predict`` with the export's
``InferenceSpec`` (mean-pixel padding to ``k * output_stride + 1`` and the crop size, optional
resize to range, scales and flips baked in), on the same formulation as deeplab-eval
(``inference.prepare_model``), so an export and deeplab-eval agree pixel for pixel.

* ``serving_default``: ``image_bytes`` string [batch] of encoded images (JPEG, PNG, GIF or
  BMP, sniffed from the bytes; ``{"b64": ...}`` in TF Serving's REST JSON), each decoded to RGB
  (grayscale and CMYK JPEG, RGBA / LA / palette PNG converted; alpha dropped) and predicted at
  its own size. Outputs: ``semantic_predictions`` int32 [batch, H, W], where H x W is the
  largest image of the batch and pixels beyond an image's own size are -1; ``image_height``
  and ``image_width`` int32 [batch]; with probabilities, ``semantic_probabilities`` float32
  [batch, H, W, classes] (0 beyond an image).
* ``predict_images``: ``images`` uint8 [batch, height, width, 3] (dynamic height and width).
  Outputs: ``semantic_predictions`` int32 [batch, height, width] and optionally
  ``semantic_probabilities`` float32 [batch, height, width, classes].

Bad requests raise ``InvalidArgumentError`` (TF Serving answers INVALID_ARGUMENT / HTTP 400)
and the model keeps serving: empty or undecodable bytes, and images with more pixels than
``max_image_pixels`` — the size is read from the PNG / JPEG / GIF / BMP header before the
image is decoded, so a decompression bomb is never decoded.

Example:

>>> spec = InferenceSpec.from_export_config(model_config, ExportConfig())
>>> module = ServingModule(prepare_model(model, spec, model_config), spec)
>>> tf.saved_model.save(module, path, signatures=module.signatures())
"""

from __future__ import annotations

import tensorflow as tf

from deeplab_tf.data import schema
from deeplab_tf.data.image_io import DEFAULT_MAX_IMAGE_PIXELS, header_pixels
from deeplab_tf import inference

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


def decode_checked(encoded, max_image_pixels: int):
    """uint8 [H, W, 3] RGB of one encoded image; InvalidArgument if it is empty or declares
    more than ``max_image_pixels`` pixels (checked before decoding)."""
    not_empty = tf.debugging.assert_greater(
        tf.strings.length(encoded), 0,
        message="Empty image bytes (expected a JPEG, PNG, GIF or BMP)")
    with tf.control_dependencies([not_empty]):
        pixels = header_pixels(encoded)
    small_enough = tf.debugging.assert_less_equal(
        pixels, tf.constant(int(max_image_pixels), tf.int64),
        message=f"Image too large: more pixels than max_image_pixels={int(max_image_pixels)} "
                "(the size is in its header; --max_image_pixels at export sets the limit)")
    with tf.control_dependencies([small_enough]):
        return schema.decode_image(tf.identity(encoded))


class ServingModule(tf.Module):
    """Holds the model and the ``tf.function`` of each signature.

    Args:
        model: the model to run (``inference.prepare_model``: batch norm folded by default).
        spec: ``inference.InferenceSpec`` (the export's; ``from_export_config``).
        export_probabilities: bool. Also output ``semantic_probabilities``.
        max_image_pixels: int. ``serving_default`` rejects larger images (InvalidArgument).
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
        return self.predict(tf.cast(images, tf.float32))

    def _predict_encoded(self, image_bytes):
        num_classes = self.num_classes

        def one(encoded):
            image = decode_checked(encoded, self.max_image_pixels)
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
        results = tf.map_fn(one, image_bytes, fn_output_signature=signature)
        outputs = {PREDICTIONS: results[PREDICTIONS].to_tensor(default_value=PADDING_LABEL),
                   IMAGE_HEIGHT: results["size"][:, 0],
                   IMAGE_WIDTH: results["size"][:, 1]}
        if self.export_probabilities:
            outputs[PROBABILITIES] = results[PROBABILITIES].to_tensor(
                default_value=0.0, shape=[None, None, None, num_classes])
        return outputs
