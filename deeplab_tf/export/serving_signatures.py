"""``ServingModule``: the SavedModel's signatures, pre-processing and inference in the graph.

Two signatures, both predicting exactly as deeplab-eval does (``evaluation.evaluator``): each
image is padded at the bottom/right with the model's mean pixel to ``k * output_stride + 1``
(and at least deeplab-eval's ``eval_crop_size``, if given),
predicted with ``evaluation.inference`` (the one inference path; scales and flips baked in)
and cropped back, so an export and deeplab-eval agree pixel for pixel.

* ``serving_default``: ``image_bytes`` string [batch] of encoded images (JPEG, PNG, GIF or
  BMP; ``{"b64": ...}`` in TF Serving's REST JSON), each decoded and predicted at its own
  size. Outputs: ``semantic_predictions`` int32 [batch, H, W], where H x W is the largest
  image of the batch and pixels beyond an image's own size are -1; ``image_height`` and
  ``image_width`` int32 [batch]; with probabilities, ``semantic_probabilities`` float32
  [batch, H, W, classes] (0 beyond an image).
* ``predict_images``: ``images`` uint8 [batch, height, width, 3] (dynamic height and width).
  Outputs: ``semantic_predictions`` int32 [batch, height, width] and optionally
  ``semantic_probabilities`` float32 [batch, height, width, classes].

Undecodable image bytes raise ``InvalidArgumentError`` (TF Serving answers INVALID_ARGUMENT /
HTTP 400).

Example:

>>> module = ServingModule(model, output_stride=16, pad_value=(127.5,) * 3,
...                        scales=(0.75, 1.0, 1.25), add_flipped_images=True)
>>> tf.saved_model.save(module, path, signatures=module.signatures())
"""

from __future__ import annotations

from typing import Sequence

import tensorflow as tf

from deeplab_tf.data import schema
from deeplab_tf.evaluation import inference

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


class ServingModule(tf.Module):
    """Holds the model and the ``tf.function`` of each signature.

    Args:
        model: a DeepLab Keras model (float32 RGB [0, 255] in, logits out).
        output_stride: int. The model's encoder output stride (``ModelConfig.output_stride``):
            images are padded to ``k * output_stride + 1``, as deeplab-eval does.
        pad_value: 3 floats. The padding pixel (``deeplab_tf.model.mean_pixel``).
        scales: sequence of float. Input scales averaged in the graph.
        add_flipped_images: bool. Also average left-right flipped inputs.
        export_probabilities: bool. Also output ``semantic_probabilities``.
        min_size: (h, w) or None. Smaller images are padded to at least this size
            (deeplab-eval's ``eval_crop_size``).
        track_variables: bool. Save the model's variables with the module. False for a model
            whose call reads none (``model.fold_batch_norm``: its weights are constants in the
            graph), so the SavedModel does not hold the weights twice.
    """

    def __init__(self, model, *, output_stride: int, pad_value, scales: Sequence[float] = (1.0,),
                 add_flipped_images: bool = False, export_probabilities: bool = False,
                 min_size=None, track_variables: bool = True):
        super().__init__(name="deeplab_serving")
        if track_variables:
            self.model = model
        # A plain function (not tracked): the graph calls the model through it.
        self._call_model = lambda images, training=False: model(images, training=training)
        self.num_classes = int(model.output_shape[-1])
        self.output_stride = int(output_stride)
        self.pad_value = tuple(float(v) for v in pad_value)
        self.scales = tuple(float(s) for s in scales)
        self.add_flipped_images = bool(add_flipped_images)
        self.export_probabilities = bool(export_probabilities)
        self.min_size = tuple(int(v) for v in min_size) if min_size else (1, 1)
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
        """float32 images [B, H, W, 3] -> {semantic_predictions, [semantic_probabilities]}.

        The computation of deeplab-eval's ``make_predict_fn``: pad, predict, crop. The labels
        are ``inference.predict_labels`` of the padded images; the probabilities (when
        exported) come from the same forward pass.
        """
        shape = tf.shape(images)
        height = tf.maximum(inference.valid_size(shape[1], self.output_stride), self.min_size[0])
        width = tf.maximum(inference.valid_size(shape[2], self.output_stride), self.min_size[1])
        padded = inference.pad_images(images, height, width, self.pad_value)
        kwargs = dict(scales=self.scales, add_flipped_images=self.add_flipped_images)
        outputs = {}
        if not self.export_probabilities:
            labels = inference.predict_labels(self._call_model, padded, **kwargs)
        elif self.scales == (1.0,) and not self.add_flipped_images:
            # predict_labels' single-scale path (argmax of the logits), sharing the forward pass.
            logits = inference.upsample_logits(self._call_model(padded, training=False),
                                               tf.shape(padded)[1:3])
            labels = tf.argmax(logits, axis=3, output_type=tf.int32)
            outputs[PROBABILITIES] = tf.nn.softmax(logits)
        else:
            probabilities = inference.predict_probabilities(self._call_model, padded, **kwargs)
            labels = tf.argmax(probabilities, axis=3, output_type=tf.int32)
            outputs[PROBABILITIES] = probabilities
        outputs[PREDICTIONS] = labels
        return {key: value[:, :shape[1], :shape[2]] for key, value in outputs.items()}

    def _predict_images(self, images):
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
        results = tf.map_fn(one, image_bytes, fn_output_signature=signature)
        outputs = {PREDICTIONS: results[PREDICTIONS].to_tensor(default_value=PADDING_LABEL),
                   IMAGE_HEIGHT: results["size"][:, 0],
                   IMAGE_WIDTH: results["size"][:, 1]}
        if self.export_probabilities:
            outputs[PROBABILITIES] = results[PROBABILITIES].to_tensor(
                default_value=0.0, shape=[None, None, None, num_classes])
        return outputs
