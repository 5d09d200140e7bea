"""TFLite export: a fixed-size model, four quantisation modes (run it with ``export.litert``).

The TFLite graph is ``model -> align-corners upsample to the input size -> [ArgMax]``, with
the input size fixed (``ExportConfig.crop_size``, batch 1). Pre-processing stays outside the
graph (quantisation needs a plain input) and is the one inference path's: ``tflite_spec`` is
the export's ``InferenceSpec``, written into the ``.json`` beside the model, and
``litert.LiteRTModel.predict_image`` / the int8 calibration pre-process with it through
``inference.pad_inputs``. The normalisation to the backbone's range is the model's first
layer, so the input is plain RGB pixels in every mode.

Modes (``ExportConfig.tflite_mode``):

* ``float32``: as trained.
* ``float16``: float16 weights (half the size), float32 compute on CPU.
* ``dynamic_range``: int8 weights, float activations (about a quarter of the size).
* ``int8``: full integer. The input is **uint8** pixels (quantisation scale 1, zero point 0:
  raw pixels, checked after conversion), activations int8 calibrated on representative images
  (``calibration.representative_images``); the argmax output is int32 labels, the logits
  output float32. A quantization-aware model (``ModelConfig.quantization``) needs no
  calibration: its learned ranges are used (``tflite_qat``; all uint8 for per-tensor weights,
  as the original's converted models).
* ``edgetpu``: ``int8`` with uint8 class scores out and only Edge TPU operations
  (``edgetpu.edgetpu_problems`` checks; ``edgetpu_compiler`` runs where it is installed).

Outputs (``tflite_output``): int32 labels, uint8 labels (``argmax_uint8``) or scores;
``tflite_output_size="output_stride"`` leaves the final upsample out of the model
(``LiteRTModel`` does it on the host).

Conversion note: ``TFLiteConverter`` keeps Keras 3 variables as resource variables
(``VAR_HANDLE``/``READ_VARIABLE``, batch norm left unfolded) even from a SavedModel, so the
concrete function is frozen first (variables -> constants); the converter then folds batch
norm into the convolutions.

Example:

>>> content = convert_tflite(model, ExportConfig(format="tflite", crop_size=(513, 513)))
>>> runner = LiteRTModel(content, spec=tflite_spec(model_config, export_config))
>>> labels = runner.predict_image(image)  # uint8 [H, W, 3] of any size -> int32 [H, W]
"""

from __future__ import annotations

import dataclasses
import json
import os
import warnings
from typing import Iterable, Optional, Tuple

import numpy as np
import tensorflow as tf

from deeplab_tf import fileio, inference
from deeplab_tf.config import ExportConfig, ModelConfig
from deeplab_tf.export import calibration
from deeplab_tf.export.destination import (ExportResult, check_new_file,
                                           check_writable)
from deeplab_tf.export.errors import ExportError
from deeplab_tf.export.litert import METADATA_SUFFIX, SPEC_KEY, LiteRTModel
from deeplab_tf.inference import InferenceSpec
from deeplab_tf.modeling.layers.quantize import is_quantized

INPUT_NAME = "images"
PREDICTIONS = "semantic_predictions"
LOGITS = "logits"
TFLITE_SUFFIX = ".tflite"


class TFLiteExportError(ExportError):
    """A TFLite conversion that cannot be done as asked (one-line message)."""


def tflite_path(export_dir: str, export_config: ExportConfig) -> str:
    """``export_dir/<model_name>_<tflite_mode>.tflite``."""
    name = f"{export_config.model_name}_{export_config.tflite_mode}{TFLITE_SUFFIX}"
    return os.path.join(export_dir, name)


def tflite_function(model, crop_size: Tuple[int, int], output: str = "argmax",
                    output_size: str = "input", upsampled_logits: bool = True):
    """The frozen concrete function float32 images [1, h, w, 3] -> {output name: tensor}.

    ``output``, ``output_size``: ``ExportConfig.tflite_output`` / ``tflite_output_size``.
    ``upsampled_logits``: labels at the input size are the argmax of the upsampled logits,
    or the argmax at logits resolution resized nearest-neighbour
    (``inference.single_pass_outputs``).
    """
    height, width = crop_size
    spec = tf.TensorSpec([1, height, width, 3], tf.float32, name=INPUT_NAME)

    @tf.function(input_signature=[spec])
    def serve(images):
        logits = model(images, training=False)
        if output == "logits":
            if output_size == "input":
                logits = inference.upsample_logits(logits, (height, width))
            return {LOGITS: logits}
        if output_size == "input":
            labels, _ = inference.single_pass_outputs(logits, (height, width), upsampled_logits)
        else:
            labels = tf.argmax(logits, axis=3, output_type=tf.int32)
        return {PREDICTIONS: tf.cast(labels, tf.uint8) if output == "argmax_uint8" else labels}

    # No public API freezes a concrete function's variables (see the module docstring).
    from tensorflow.python.framework.convert_to_constants import \
        convert_variables_to_constants_v2

    return convert_variables_to_constants_v2(serve.get_concrete_function())


def convert_tflite(model, export_config: ExportConfig,
                   representative_images: Optional[Iterable[np.ndarray]] = None,
                   model_config: Optional[ModelConfig] = None) -> bytes:
    """Converts ``model`` to a TFLite flatbuffer as ``export_config`` says.

    Args:
        model: a DeepLab Keras model (weights loaded).
        export_config: ExportConfig. ``crop_size``, ``tflite_mode``, ``tflite_output``.
        representative_images: int8 only: an iterable of float32 [1, h, w, 3] pixel arrays of
            the input size (e.g. ``representative_images_from_tfrecords``).
        model_config: ModelConfig of ``model`` (default: ``model.config``), for its
            ``prediction_with_upsampled_logits``.

    Returns:
        The flatbuffer bytes.

    Raises:
        TFLiteExportError: int8 / edgetpu of a float model without representative images, a
            calibration that did not give a raw-pixel uint8 input, an integer conversion
            that left float tensors, an Edge TPU model with unsupported operations.
    """
    mode = export_config.tflite_mode
    model_config = model_config or getattr(model, "config", None)
    upsampled = getattr(model_config, "prediction_with_upsampled_logits", True)
    integer = mode in ("int8", "edgetpu")
    if export_config.tflite_output == "argmax_uint8" and model.output.shape[-1] > 256:
        raise TFLiteExportError(f"tflite_output='argmax_uint8' holds at most 256 classes. "
                                f"Received: {model.output.shape[-1]} classes")
    function = tflite_function(model, export_config.crop_size, export_config.tflite_output,
                               export_config.tflite_output_size, upsampled)
    quantization = _quantization(model)
    if integer and quantization:
        from deeplab_tf.export.tflite_qat import (QuantizedConversionError,
                                                  convert_quantization_aware)

        try:
            content = convert_quantization_aware(
                function, quantization, float_output=export_config.tflite_output == "logits"
                and mode == "int8", uint8_output=mode == "edgetpu")
        except QuantizedConversionError as error:
            raise TFLiteExportError(str(error)) from None
        return _checked_for_edgetpu(content, mode)
    converter = tf.lite.TFLiteConverter.from_concrete_functions([function])
    if mode != "float32":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if mode == "float16":
        converter.target_spec.supported_types = [tf.float16]
    if integer:
        if representative_images is None:
            raise TFLiteExportError(f"tflite_mode={mode!r} of a float model needs "
                                    "representative images (--calibration_dataset_dir)")
        converter.representative_dataset = calibration.calibration_samples(
            representative_images, (1,) + tuple(export_config.crop_size) + (3,))
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.uint8
        if mode == "edgetpu":
            converter.inference_output_type = tf.uint8
    with warnings.catch_warnings():
        # The calibrated input range replaces these statistics (checked below).
        warnings.filterwarnings("ignore", "Statistics for quantized inputs were expected")
        content = converter.convert()
    if integer:
        scale, zero_point = LiteRTModel(content).input_details["quantization"]
        if not (abs(scale - 1.0) < 1e-6 and zero_point == 0):
            raise TFLiteExportError(f"The int8 model's uint8 input is not raw pixels (scale "
                                    f"{scale}, zero point {zero_point})")
    return _checked_for_edgetpu(content, mode)


def _quantization(model):
    """The quantization of a quantization-aware Keras model (its config's), else None."""
    if not is_quantized(model):
        return None
    config = getattr(model, "config", None)
    quantization = getattr(config, "quantization", None)
    if quantization is None:
        raise TFLiteExportError("The model is quantization-aware but has no ModelConfig "
                                "saying how (build it with deeplab_tf.build_model)")
    return quantization


def _checked_for_edgetpu(content: bytes, mode: str) -> bytes:
    if mode == "edgetpu":
        from deeplab_tf.export.edgetpu import edgetpu_problems

        problems = edgetpu_problems(content)
        if problems:
            raise TFLiteExportError(f"Not an Edge TPU model: {'; '.join(problems[:5])}"
                                    + (f" ({len(problems)} problems)" if len(problems) > 5
                                       else ""))
    return content


def tflite_spec(model_config: ModelConfig, export_config: ExportConfig) -> InferenceSpec:
    """The TFLite model's pre- and post-processing: the export's ``InferenceSpec``
    (``from_export_config``: the model's stride and mean pixel, resize to range), single
    scale, padded up to the fixed input size ``crop_size``."""
    spec = InferenceSpec.from_export_config(model_config, export_config)
    return dataclasses.replace(spec, scales=(1.0,), add_flipped_images=False,
                               crop_size=tuple(export_config.crop_size))


def export_tflite(model, model_config: ModelConfig, export_config: ExportConfig,
                  export_dir: str, *, representative_images=None, overwrite: bool = False,
                  metadata: Optional[dict] = None) -> dict:
    """Converts and writes ``export_dir/<model_name>_<mode>.tflite`` plus a ``.json`` beside it.

    The JSON describes the input (name, shape, dtype, padding value), the output and the
    pre-processing (``inference_spec``, read by ``LiteRTModel``), so a runtime needs no other
    knowledge of the model.

    Args:
        model, export_config, representative_images: see ``convert_tflite``. For int8 without
            ``representative_images``, they are read from
            ``export_config.calibration_dataset_dir``.
        model_config: ModelConfig of ``model``.
        export_dir: str. Output folder.
        overwrite: bool. Replace an existing file of the same name.
        metadata: dict or None. Extra facts for the JSON (e.g. the checkpoint).

    Returns:
        dict: ``path``, ``metadata_path``, ``size_bytes`` and the JSON's contents.
    """
    os.makedirs(export_dir, exist_ok=True)
    path = tflite_path(export_dir, export_config)
    if os.path.exists(path) and not overwrite:
        raise TFLiteExportError(f"{path} already exists (pass overwrite / --overwrite to "
                                "replace it)")
    spec = tflite_spec(model_config, export_config)
    if (export_config.tflite_mode in ("int8", "edgetpu") and representative_images is None
            and export_config.calibration_dataset_dir and not is_quantized(model)):
        representative_images = calibration.representative_images(
            export_config.calibration_dataset_dir, export_config.calibration_split, spec,
            export_config.crop_size, export_config.calibration_steps)
    content = convert_tflite(model, export_config, representative_images, model_config)
    runner = LiteRTModel(content)
    height, width = export_config.crop_size
    output = runner.output_details
    info = {
        "tflite_mode": export_config.tflite_mode,
        "quantization": model_config.quantization or (
            "post_training" if export_config.tflite_mode in ("int8", "edgetpu") else None),
        "input": {"name": INPUT_NAME, "shape": [1, height, width, 3],
                  "dtype": np.dtype(runner.input_dtype).name,
                  "pixels": "RGB 0..255 (normalisation is inside the model)",
                  "pad_value": list(spec.pad_value)},
        "output": {"name": LOGITS if export_config.tflite_output == "logits" else PREDICTIONS,
                   "shape": [int(v) for v in output["shape"]],
                   "dtype": np.dtype(output["dtype"]).name},
        SPEC_KEY: dataclasses.asdict(spec),
        "num_classes": model_config.num_classes,
        "model": model_config.to_dict(),
        "export": export_config.to_dict(),
        "size_bytes": len(content),
        **(metadata or {}),
    }
    scale, zero_point = output["quantization"]
    if scale:  # quantized scores: real = scale * (q - zero_point)
        info["output"]["quantization"] = {"scale": float(scale), "zero_point": int(zero_point)}
    metadata_path = path[:-len(TFLITE_SUFFIX)] + METADATA_SUFFIX
    fileio.atomic_write_text(metadata_path, json.dumps(info, indent=2, sort_keys=True))
    fileio.atomic_write_bytes(path, content)
    if export_config.tflite_mode == "edgetpu":
        from deeplab_tf.export.edgetpu import compile_edgetpu

        info["edgetpu_compiler"] = compile_edgetpu(path)  # None: not installed
        fileio.atomic_write_text(metadata_path, json.dumps(info, indent=2, sort_keys=True))
    return {"path": path, "metadata_path": metadata_path, **info}


def check_destination(export_config: ExportConfig, export_dir: str, overwrite: bool = False):
    """Fails before any work when the .tflite file cannot be written (or exists and
    ``overwrite`` is false), or the calibration folder of an integer model has no shards
    (whether a model needs calibration depends on its checkpoint: ``convert_tflite``)."""
    check_writable(export_dir)
    check_new_file(tflite_path(export_dir, export_config), overwrite)
    if export_config.tflite_mode in ("int8", "edgetpu") and export_config.calibration_dataset_dir:
        from deeplab_tf.data import schema

        schema.list_shards(export_config.calibration_dataset_dir,
                           export_config.calibration_split)


def export(model, model_config: ModelConfig, export_config: ExportConfig, export_dir: str, *,
           metadata: dict = None, overwrite: bool = False) -> ExportResult:
    """The registry's entry point (``deeplab_tf.export.EXPORTERS``): ``export_tflite``."""
    result = export_tflite(model, model_config, export_config, export_dir,
                           overwrite=overwrite, metadata=metadata)
    spec, output = result["input"], result["output"]
    return ExportResult(result["path"], (
        f"Wrote {result['path']} ({result['size_bytes'] / 1e6:.2f} MB, "
        f"{export_config.tflite_mode}; input {spec['name']} {spec['dtype']} {spec['shape']}, "
        f"output {output['name']} {output['dtype']} {output['shape']}) and "
        f"{result['metadata_path']}."), result)
