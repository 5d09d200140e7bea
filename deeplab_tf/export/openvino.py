"""OpenVINO export and runtime: the frozen graph's computation as an OpenVINO IR.

``export_openvino`` writes ``<export_dir>/<model_name>.xml`` + ``.bin``, converted with
``openvino.convert_model`` from the same frozen GraphDef as ``export_frozen_graph`` (so it
computes ``deeplab_tf.inference.predict`` on the prepared model: padding with the mean pixel,
single/multi-scale + flip, the padding cropped off, labels at the input size):

* input 0 ``ImageTensor``: uint8 [1, H, W, 3], plain RGB pixels; H and W dynamic unless
  ``crop_size`` fixes them;
* output 0 ``SemanticPredictions``: int32 [1, H, W] labels; with ``probabilities=True`` also
  output 1 ``SemanticProbabilities``: float32 [1, H, W, classes].

Weights stay float32 (no float16 compression). OpenVINO's CPU plugin, though, computes in
bfloat16 by default where the CPU has native bfloat16 (AVX512_BF16, AMX): about 1 % of the
labels of a tiny test model then differ from TensorFlow's. Compile with ``F32_CONFIG``
(``INFERENCE_PRECISION_HINT=f32``, as ``OpenVINOPredictor`` and deeplab-bench do) for labels
equal to TensorFlow's up to float rounding; the IR cannot carry that setting.
``OpenVINOPredictor`` converts in memory for ``deeplab-eval --inference_backend=openvino``.
Needs the ``openvino`` package (``pip install 'deeplab_tf[openvino]'``).

Example:

>>> xml = export_openvino(model, model_config, spec, "exp/openvino")
>>> compiled = openvino.Core().compile_model(xml, "CPU", F32_CONFIG)
>>> labels = compiled(image[np.newaxis])[0]     # int32 [1, H, W]
"""

from __future__ import annotations

import collections
import dataclasses
import os
import shutil
import tempfile
from typing import Optional

import numpy as np

from deeplab_tf.config import ExportConfig, ModelConfig
from deeplab_tf.export.destination import ExportResult, check_writable
from deeplab_tf.export.errors import ExportError
from deeplab_tf.export.frozen_graph import (INPUT_NAME, OUTPUT_NAME,
                                            PROBABILITIES_NAME,
                                            export_converted, frozen_inference_graph,
                                            input_size,
                                            pruned_graph)

# Compile settings for TensorFlow's float32 results (OpenVINO's CPU default is bfloat16 on
# CPUs with native bfloat16).
F32_CONFIG = {"INFERENCE_PRECISION_HINT": "f32"}
# ... and for bfloat16 (``--inference_precision=bfloat16``, or ``auto`` where it is native).
BF16_CONFIG = {"INFERENCE_PRECISION_HINT": "bf16"}


class OpenVINOExportError(ExportError):
    """The OpenVINO export cannot be done as asked (one-line message)."""


def _import_openvino():
    try:
        import openvino
    except ImportError as error:
        raise OpenVINOExportError(
            "OpenVINO is not installed: pip install 'deeplab_tf[openvino]' "
            f"(import failed: {error})") from None
    return openvino


def convert(model, model_config, spec, *, crop_size=None, probabilities: bool = False):
    """The ``openvino.Model`` of ``export_openvino`` (in memory)."""
    ov = _import_openvino()
    crop = input_size(crop_size)
    outputs = [OUTPUT_NAME] + ([PROBABILITIES_NAME] if probabilities else [])
    # The float32 graph: OpenVINO's compile settings choose the precision it computes in.
    spec = dataclasses.replace(spec, precision="float32")
    graph_def = pruned_graph(frozen_inference_graph(model, model_config, spec), outputs)
    shape = [1, crop[0], crop[1], 3] if crop else [1, -1, -1, 3]
    try:
        converted = ov.convert_model(graph_def, input=[(INPUT_NAME + ":0", shape, ov.Type.u8)])
    except Exception as error:  # OpenVINO raises its own error types
        raise OpenVINOExportError(f"OpenVINO conversion failed: {error}") from None
    ports = {name: port for port in converted.outputs for name in outputs
             if any(n.split(":")[0] == name for n in port.get_names())}
    if sorted(ports) != sorted(outputs):
        raise OpenVINOExportError(f"Internal: converted outputs {[p.get_names() for p in converted.outputs]} "
                                  f"lack {sorted(set(outputs) - set(ports))}")
    for name in outputs:
        ports[name].get_tensor().set_names({name})
    converted.inputs[0].get_tensor().set_names({INPUT_NAME})
    return converted


def export_openvino(model, model_config, spec, export_dir: str, *, model_name: str = "deeplab",
                    crop_size=None, probabilities: bool = False) -> str:
    """Writes the IR ``<export_dir>/<model_name>.xml`` + ``.bin``; returns the .xml path.

    Args:
        model: a DeepLab Keras model with its weights loaded.
        model_config: ModelConfig of ``model``.
        spec: InferenceSpec (``InferenceSpec.from_export_config``).
        export_dir: str. Created if needed; existing files of the same name are replaced
            (the new ones are written beside them first, then renamed).
        model_name: str. File stem.
        crop_size: (height, width) or None. Fix the input size (None: dynamic).
        probabilities: bool. Also output the probabilities.

    Raises:
        OpenVINOExportError: OpenVINO missing, an unwritable export_dir (before any work), a
            bad crop_size or a failed conversion.
    """
    ov = _import_openvino()
    input_size(crop_size)
    if not model_name or "/" in model_name or model_name.startswith("."):
        raise OpenVINOExportError(f"model_name must be a plain file stem. Received: {model_name!r}")
    try:
        os.makedirs(export_dir, exist_ok=True)
        staging = tempfile.mkdtemp(prefix=f".{model_name}.", dir=export_dir)
    except OSError as error:
        raise OpenVINOExportError(f"export_dir {export_dir} is not writable: "
                                  f"{error.strerror or error}") from None
    try:
        converted = convert(model, model_config, spec, crop_size=crop_size,
                            probabilities=probabilities)
        ov.save_model(converted, os.path.join(staging, model_name + ".xml"),
                      compress_to_fp16=False)
        xml = os.path.join(export_dir, model_name + ".xml")
        for suffix in (".bin", ".xml"):  # the .xml last: it names a complete model
            target = os.path.join(export_dir, model_name + suffix)
            os.chmod(os.path.join(staging, model_name + suffix), 0o644)
            os.replace(os.path.join(staging, model_name + suffix), target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return xml


class OpenVINOPredictor:
    """``inference.predict`` computed by OpenVINO on the CPU (``--inference_backend=openvino``).

    Args:
        model: a DeepLab Keras model with its weights loaded.
        model_config: ModelConfig of ``model``.
        spec: InferenceSpec. Its ``precision`` sets OpenVINO's inference precision hint
            (``F32_CONFIG`` or ``BF16_CONFIG``); the converted graph is float32.
        device: str. OpenVINO device name.
        num_threads: int or None. Inference threads (None: OpenVINO's choice).
    """

    def __init__(self, model, model_config, spec, *, device: str = "CPU",
                 num_threads: Optional[int] = None, max_shapes: int = 8):
        ov = _import_openvino()
        self._core = ov.Core()
        self._model = convert(model, model_config, spec, probabilities=True)
        self._device = device
        self._config = {"PERFORMANCE_HINT": "LATENCY",
                        **(BF16_CONFIG if spec.precision == "bfloat16" else F32_CONFIG)}
        if num_threads:
            self._config["INFERENCE_NUM_THREADS"] = int(num_threads)
        self._max_shapes = max(1, int(max_shapes))
        self._compiled = collections.OrderedDict()  # (H, W) -> (compiled model, request)

    def _request(self, height: int, width: int):
        """A request compiled for this input size: OpenVINO's CPU plugin runs static shapes
        much faster than dynamic ones; the ``max_shapes`` most recent sizes are kept."""
        key = (height, width)
        if key not in self._compiled:
            static = self._model.clone()
            static.reshape({0: [1, height, width, 3]})
            compiled = self._core.compile_model(static, self._device, self._config)
            self._compiled[key] = (compiled, compiled.create_infer_request())
            while len(self._compiled) > self._max_shapes:
                self._compiled.popitem(last=False)
        self._compiled.move_to_end(key)
        return self._compiled[key]

    def predict(self, images) -> dict:
        """{"labels": int32 [B, H, W], "probabilities": float32 [B, H, W, C]} of uint8 or
        float32 RGB images [B, H, W, 3] (float pixels are rounded to uint8, as an image
        file holds them)."""
        images = np.asarray(images)
        if images.ndim != 4 or images.shape[-1] != 3:
            raise ValueError(f"images must be [B, H, W, 3]. Received shape {images.shape}")
        if images.dtype != np.uint8:
            images = np.clip(np.round(images), 0, 255).astype(np.uint8)
        labels, probabilities = [], []
        for image in images:
            compiled, request = self._request(*image.shape[:2])
            outputs = request.infer({0: image[np.newaxis]})
            labels.append(outputs[compiled.outputs[0]][0])
            probabilities.append(outputs[compiled.outputs[1]][0])
        return {"labels": np.stack(labels).astype(np.int32),
                "probabilities": np.stack(probabilities).astype(np.float32)}


def check_destination(export_config: ExportConfig, export_dir: str, overwrite: bool = False):
    """Fails before any work when ``export_dir`` is not writable."""
    check_writable(export_dir)


def export(model, model_config: ModelConfig, export_config: ExportConfig, export_dir: str, *,
           metadata: dict = None, overwrite: bool = False) -> ExportResult:
    """The registry's entry point (``deeplab_tf.export.EXPORTERS``): ``export_openvino``."""
    return export_converted(export_openvino, model, model_config, export_config, export_dir)
