"""ONNX export (best effort) and an ONNX Runtime predictor.

``export_onnx`` converts the frozen GraphDef of ``export_frozen_graph`` (the same
computation: ``deeplab_tf.inference.predict`` on the prepared model, weights frozen to
constants — tf2onnx would otherwise leave the variables as graph inputs) with tf2onnx to
``<export_dir>/<model_name>.onnx``: input ``ImageTensor`` uint8 [1, H, W, 3] (dynamic H, W
unless ``crop_size`` fixes them), output ``SemanticPredictions`` int32 [1, H, W]. tf2onnx
writes a dilated 'SAME' convolution (atrous ASPP without separable convolutions, NAS's atrous
operations, ResNet's dilated blocks) with ``auto_pad=SAME_UPPER``, which ONNX Runtime refuses
for dilations: those get the same padding written out (``_explicit_dilated_padding``).

tf2onnx is lightly maintained: when it cannot import or convert with the installed
TensorFlow, ``OnnxExportError`` says so in one line. Needs ``pip install 'deeplab_tf[onnx]'``
(tf2onnx, onnx, onnxruntime).

Example:

>>> path = export_onnx(model, model_config, spec, "exp/onnx")
>>> labels = ONNXRuntimePredictor(path).predict(images)["labels"]
"""

from __future__ import annotations

import os
from typing import Optional

import numpy as np

from deeplab_tf import fileio
from deeplab_tf.config import ExportConfig, ModelConfig
from deeplab_tf.export.destination import ExportResult, check_writable
from deeplab_tf.export.errors import ExportError
from deeplab_tf.export.frozen_graph import (INPUT_NAME, OUTPUT_NAME,
                                            PROBABILITIES_NAME,
                                            export_converted, frozen_inference_graph,
                                            input_size)

OPSET = 17


class OnnxExportError(ExportError):
    """The ONNX export cannot be done as asked (one-line message)."""


def _import_tf2onnx():
    try:
        import tf2onnx
    except Exception as error:  # ImportError, or a TF/protobuf incompatibility at import
        raise OnnxExportError(
            "tf2onnx cannot be imported with this TensorFlow/protobuf (pip install "
            f"'deeplab_tf[onnx]'): {type(error).__name__}: {error}") from None
    return tf2onnx


def convert_onnx(model, model_config, spec, *, crop_size=None,
                 probabilities: bool = False) -> bytes:
    """The serialized ONNX model of ``export_onnx``."""
    tf2onnx = _import_tf2onnx()
    crop = input_size(crop_size)
    graph_def = frozen_inference_graph(model, model_config, spec)
    outputs = [OUTPUT_NAME + ":0"] + ([PROBABILITIES_NAME + ":0"] if probabilities else [])
    override = {INPUT_NAME + ":0": [1, crop[0], crop[1], 3]} if crop else None
    try:
        proto, _ = tf2onnx.convert.from_graph_def(
            graph_def, input_names=[INPUT_NAME + ":0"], output_names=outputs, opset=OPSET,
            shape_override=override)
    except Exception as error:
        raise OnnxExportError(f"tf2onnx {tf2onnx.__version__} could not convert the graph "
                              f"(opset {OPSET}): {type(error).__name__}: {error}") from None
    _explicit_dilated_padding(proto)
    return proto.SerializeToString()


def _explicit_dilated_padding(proto) -> int:
    """Rewrites every stride-1 dilated Conv with ``auto_pad`` SAME_UPPER / SAME_LOWER to the
    same padding given explicitly (``pads``); returns how many were rewritten.

    Stride 1 'SAME' pads ``rate * (kernel - 1)`` per axis, the odd pixel at the end (UPPER)
    or the beginning (LOWER), whatever the input size.
    """
    import onnx

    count = 0
    for node in proto.graph.node:
        if node.op_type != "Conv":
            continue
        attributes = {a.name: a for a in node.attribute}
        auto_pad = attributes.get("auto_pad")
        if auto_pad is None or auto_pad.s not in (b"SAME_UPPER", b"SAME_LOWER"):
            continue
        value = lambda name, default: (  # noqa: E731
            list(attributes[name].ints) if name in attributes else default)
        kernel = value("kernel_shape", None)
        dilations = value("dilations", [1] * len(kernel or []))
        if not kernel or all(d == 1 for d in dilations) or any(
                s != 1 for s in value("strides", [1] * len(kernel))):
            continue
        totals = [d * (k - 1) for k, d in zip(kernel, dilations)]
        small = [t // 2 for t in totals]
        large = [t - t // 2 for t in totals]
        begin, end = (small, large) if auto_pad.s == b"SAME_UPPER" else (large, small)
        node.attribute.remove(auto_pad)
        node.attribute.extend([onnx.helper.make_attribute("pads", begin + end)])
        count += 1
    return count


def export_onnx(model, model_config, spec, export_dir: str, *, model_name: str = "deeplab",
                crop_size=None, probabilities: bool = False) -> str:
    """Writes ``<export_dir>/<model_name>.onnx`` atomically; returns its path.

    Raises:
        OnnxExportError: tf2onnx missing or broken, an unwritable export_dir (checked
            before the conversion), a bad crop_size or a failed conversion.
    """
    if not model_name or "/" in model_name or model_name.startswith("."):
        raise OnnxExportError(f"model_name must be a plain file stem. Received: {model_name!r}")
    path = os.path.join(export_dir, model_name + ".onnx")
    try:
        os.makedirs(export_dir, exist_ok=True)
        if not os.access(export_dir, os.W_OK):
            raise PermissionError(13, "Permission denied")
    except OSError as error:
        raise OnnxExportError(f"export_dir {export_dir} is not writable: "
                              f"{error.strerror or error}") from None
    content = convert_onnx(model, model_config, spec, crop_size=crop_size,
                           probabilities=probabilities)
    with fileio.atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(content)
        os.chmod(tmp, 0o644)
    return path


class ONNXRuntimePredictor:
    """Runs an exported .onnx (or its bytes) with ONNX Runtime on the CPU.

    Args:
        model: str path or bytes.
        num_threads: int or None. Intra-op threads (None: ONNX Runtime's choice).
        spinning: bool. Let idle worker threads spin (ONNX Runtime's default; off here, as
            spinning threads slow whatever runs next on the same cores).
    """

    def __init__(self, model, num_threads: Optional[int] = None, spinning: bool = False):
        try:
            import onnxruntime as ort
        except ImportError as error:
            raise OnnxExportError("onnxruntime is not installed: pip install "
                                  f"'deeplab_tf[onnx]' ({error})") from None
        options = ort.SessionOptions()
        if num_threads:
            options.intra_op_num_threads = int(num_threads)
        options.add_session_config_entry("session.intra_op.allow_spinning",
                                         "1" if spinning else "0")
        self._session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
        self._input = self._session.get_inputs()[0].name
        self._outputs = [o.name for o in self._session.get_outputs()]

    def predict(self, images) -> dict:
        """{"labels": int32 [B, H, W]} (and "probabilities" when exported) of uint8 [B, H, W, 3]."""
        images = np.asarray(images)
        if images.dtype != np.uint8:
            images = np.clip(np.round(images), 0, 255).astype(np.uint8)
        results = [self._session.run(None, {self._input: image[np.newaxis]})
                   for image in images]
        out = {"labels": np.concatenate([r[0] for r in results]).astype(np.int32)}
        if len(self._outputs) > 1:
            out["probabilities"] = np.concatenate([r[1] for r in results])
        return out


def check_destination(export_config: ExportConfig, export_dir: str, overwrite: bool = False):
    """Fails before any work when ``export_dir`` is not writable."""
    check_writable(export_dir)


def export(model, model_config: ModelConfig, export_config: ExportConfig, export_dir: str, *,
           metadata: dict = None, overwrite: bool = False) -> ExportResult:
    """The registry's entry point (``deeplab_tf.export.EXPORTERS``): ``export_onnx``."""
    return export_converted(export_onnx, model, model_config, export_config, export_dir)
