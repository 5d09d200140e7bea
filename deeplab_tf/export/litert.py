"""``LiteRTModel``: runs an exported TFLite model with the LiteRT interpreter, pre-processing
included.

The TFLite model has a fixed input size; its pre-processing is the one inference path's
(``inference.pad_inputs`` / ``crop_outputs``) with the export's ``InferenceSpec``, which
``export_tflite`` writes into the ``.json`` beside the model (``inference_spec``): resize to
range if the export asks, pad bottom/right with the mean pixel to the input size, crop the
prediction back. An image too large for the input is downscaled by the same resize to range
(the largest ``max_resize_value`` that fits, ``fitting_spec``), its labels resized back
(nearest, align corners).

Example:

>>> runner = LiteRTModel("exports/deeplab_int8.tflite")  # its .json gives the spec
>>> labels = runner.predict_image(image)  # uint8 [H, W, 3] of any size -> int32 [H, W]
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Optional, Tuple

import numpy as np
import tensorflow as tf

from deeplab_tf import inference
from deeplab_tf.data.preprocess import resize_to_range_size
from deeplab_tf.export.errors import ExportError
from deeplab_tf.inference import InferenceSpec

METADATA_SUFFIX = ".json"
SPEC_KEY = "inference_spec"  # the pre-processing, in the .json beside the model


def _largest_padded(size: int, output_stride: int) -> int:
    """The largest ``k * output_stride + 1`` <= size: padded to that, an image still fits."""
    return (size - 1) // output_stride * output_stride + 1


def fitting_spec(spec: InferenceSpec, height: int, width: int,
                 input_size: Tuple[int, int]) -> InferenceSpec:
    """``spec`` for one ``height`` x ``width`` image and the fixed ``input_size``: ``spec``
    itself when the image, resized as ``spec`` says, pads to the input size; otherwise
    ``spec`` with the largest ``max_resize_value`` that makes it fit (aspect ratio kept).

    Raises:
        ValueError: ``spec`` is not single-pass (the TFLite model runs one pass).
    """
    if not spec.single_pass:
        raise ValueError("A TFLite model runs one pass: the spec must have scales=(1.0,), no "
                         f"flip and no sliding window. Received: {spec}")
    spec = dataclasses.replace(spec, crop_size=tuple(input_size))
    limit = [_largest_padded(n, spec.output_stride) for n in input_size]

    def fits(candidate):
        size = (height, width)
        if candidate.resizes:
            size = tuple(int(v) for v in resize_to_range_size(
                height, width, candidate.min_resize_value, candidate.max_resize_value,
                candidate.resize_factor).numpy())
        return size[0] <= limit[0] and size[1] <= limit[1]

    if fits(spec):
        return spec
    longest = max(height, width)
    max_size = max(1, int(longest * min(limit[0] / height, limit[1] / width)))
    if spec.max_resize_value:
        max_size = min(max_size, spec.max_resize_value)
    candidate = dataclasses.replace(spec, max_resize_value=max_size)
    while max_size > 1 and not fits(candidate):
        max_size -= 1
        candidate = dataclasses.replace(spec, max_resize_value=max_size)
    return candidate


def prepare_image(image: np.ndarray, spec: InferenceSpec, input_size: Tuple[int, int]):
    """One image, pre-processed for the fixed-size TFLite model by the one inference path.

    Args:
        image: [H, W, 3] pixels (uint8 or float).
        spec: InferenceSpec (``tflite_spec``).
        input_size: (h, w). The model's input size.

    Returns:
        (float32 [1, h, w, 3], sizes, spec used): pass ``sizes`` and the spec to
        ``inference.crop_outputs`` to bring the prediction back to H x W.
    """
    height, width = np.shape(image)[:2]
    spec = fitting_spec(spec, height, width, input_size)
    padded, sizes = inference.pad_inputs(np.asarray(image)[np.newaxis], spec)
    return padded.numpy(), sizes, spec


class LiteRTModel:
    """Runs an exported TFLite model with the LiteRT interpreter (``ai-edge-litert``).

    Args:
        model: bytes (flatbuffer) or a path to a ``.tflite`` file.
        num_threads: int or None. Interpreter threads.
        spec: InferenceSpec or None: the pre-processing of ``predict_image``. By default the
            ``inference_spec`` of the ``.json`` that ``export_tflite`` wrote beside the file.
    """

    def __init__(self, model, num_threads: Optional[int] = None,
                 spec: Optional[InferenceSpec] = None):
        try:
            from ai_edge_litert.interpreter import Interpreter
        except ImportError:
            raise ImportError("Running TFLite models needs the LiteRT interpreter: "
                              "pip install ai-edge-litert") from None
        if isinstance(model, (bytes, bytearray)):
            self.interpreter = Interpreter(model_content=bytes(model), num_threads=num_threads)
        else:
            self.interpreter = Interpreter(model_path=os.fspath(model), num_threads=num_threads)
            spec = spec or _spec_beside(os.fspath(model))
        self.spec = spec
        self.interpreter.allocate_tensors()
        self.input_details = self.interpreter.get_input_details()[0]
        self.output_details = self.interpreter.get_output_details()[0]

    @property
    def input_size(self) -> Tuple[int, int]:
        shape = self.input_details["shape"]
        return int(shape[1]), int(shape[2])

    @property
    def input_dtype(self):
        return self.input_details["dtype"]

    def op_names(self) -> set:
        """The TFLite operators of the model (e.g. to check for unsupported ones)."""
        return {op["op_name"] for op in self.interpreter._get_ops_details()}

    def run(self, images: np.ndarray) -> np.ndarray:
        """Raw call: images [1, h, w, 3] of the input size -> the model's output array."""
        images = np.asarray(images)
        if self.input_dtype == np.uint8:
            images = np.clip(np.round(images), 0, 255).astype(np.uint8)
        else:
            images = images.astype(self.input_dtype)
        self.interpreter.set_tensor(self.input_details["index"], images)
        self.interpreter.invoke()
        return self.interpreter.get_tensor(self.output_details["index"])

    def predict(self, images: np.ndarray) -> np.ndarray:
        """int32 labels [1, h, w] of input-size images.

        Scores (float, or uint8 / int8 quantized: their affine scale keeps the argmax) are
        upsampled to the input size first when the model stops at its output stride
        (align-corners bilinear, as the model would), then their argmax taken; labels at
        the output stride are resized (nearest, align corners).
        """
        output = self.run(images)
        size = self.input_size
        if output.ndim == 4:
            if tuple(output.shape[1:3]) != size:
                output = inference.upsample_logits(output.astype(np.float32), size).numpy()
            output = output.argmax(axis=-1)
        elif tuple(output.shape[1:3]) != size:
            output = tf.compat.v1.image.resize_nearest_neighbor(
                output[..., np.newaxis], size, align_corners=True).numpy()[..., 0]
        return output.astype(np.int32)

    def predict_image(self, image: np.ndarray, spec: Optional[InferenceSpec] = None) -> np.ndarray:
        """int32 labels [H, W] of one image [H, W, 3] of any size: ``prepare_image``, then
        ``predict``, then ``inference.crop_outputs`` (crop, resize back if resized).

        Args:
            image: [H, W, 3] pixels.
            spec: InferenceSpec or None (then the one given to, or found by, the constructor).

        Raises:
            ValueError: no spec known.
        """
        spec = spec or self.spec
        if spec is None:
            raise ValueError("predict_image needs the model's InferenceSpec: pass spec= (e.g. "
                             "tflite_spec(model_config, export_config)), or load the .tflite "
                             f"file with its {METADATA_SUFFIX} beside it")
        prepared, sizes, spec = prepare_image(image, spec, self.input_size)
        labels = self.predict(prepared)
        return inference.crop_outputs({inference.LABELS: labels}, sizes,
                                      spec)[inference.LABELS].numpy()[0]


def _spec_beside(path: str) -> Optional[InferenceSpec]:
    """The ``inference_spec`` of the ``.json`` beside a ``.tflite`` file, or None."""
    metadata_path = os.path.splitext(path)[0] + METADATA_SUFFIX
    try:
        with open(metadata_path) as f:
            fields = json.load(f)[SPEC_KEY]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    try:
        return InferenceSpec(**fields)
    except (TypeError, ValueError) as error:
        raise ExportError(f"{metadata_path}: {SPEC_KEY} is not an InferenceSpec ({error})") from None
