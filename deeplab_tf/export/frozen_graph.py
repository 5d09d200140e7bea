"""``export_frozen_graph``: the original export_model.py's ``frozen_inference_graph.pb``.

The GraphDef has the original's interface, so its demo notebook (``DeepLabModel``) and the
apps written against it run unchanged:

* input ``ImageTensor``: uint8 [1, H, W, 3], any H and W, plain RGB pixels;
* outputs ``SemanticPredictions``: int32 [1, H, W] labels, and ``SemanticProbabilities``:
  float32 [1, H, W, classes].

Inside is ``deeplab_tf.inference.predict`` with the export's ``InferenceSpec`` — optional
resize to range, padding with the backbone's mean pixel to ``crop_size`` (and to
``k * output_stride + 1``), single or multi-scale + flip inference, the padding cropped off,
nearest-neighbour resize back when a resize happened — on the prepared model (batch norm
folded by default), with every weight a constant. So its labels equal deeplab-eval's.
Client::

    graph_def = tf.compat.v1.GraphDef.FromString(open(path, "rb").read())
    graph = tf.Graph()
    with graph.as_default():
        tf.compat.v1.import_graph_def(graph_def, name="")
    labels = tf.compat.v1.Session(graph=graph).run(
        "SemanticPredictions:0", feed_dict={"ImageTensor:0": [image]})[0]
"""

from __future__ import annotations

import os
from typing import Optional, Tuple

import tensorflow as tf

from deeplab_tf import fileio, inference
from deeplab_tf.config import ExportConfig, ModelConfig
from deeplab_tf.export.destination import ExportResult, check_writable
from deeplab_tf.export.errors import ExportError

INPUT_NAME = "ImageTensor"
OUTPUT_NAME = "SemanticPredictions"
PROBABILITIES_NAME = "SemanticProbabilities"
INFERENCE_GRAPH_NAME = "inference_graph.pbtxt"


class FrozenGraphError(ExportError):
    """The frozen graph cannot be written as asked (one-line message)."""


def check_export_path(export_path: str) -> None:
    """Creates the export path's folder and checks that a file can be written there.

    Raises:
        FrozenGraphError: no path, a folder given, or the folder not writable.
    """
    if not export_path:
        raise FrozenGraphError("No export path given (e.g. --export_path="
                               "exp/export/frozen_inference_graph.pb)")
    if os.path.isdir(export_path):
        raise FrozenGraphError(f"--export_path={export_path} is a directory; expected a file "
                               "name such as frozen_inference_graph.pb")
    check_writable(os.path.dirname(os.path.abspath(export_path)), FrozenGraphError)


def inference_function(model, spec: inference.InferenceSpec):
    """The concrete function ImageTensor -> {SemanticPredictions, SemanticProbabilities}."""
    input_spec = tf.TensorSpec([1, None, None, 3], tf.uint8, name=INPUT_NAME)

    @tf.function(input_signature=[input_spec])
    def serve(images):
        outputs = inference.predict(model, images, spec)
        return {OUTPUT_NAME: tf.identity(outputs[inference.LABELS], name=OUTPUT_NAME),
                PROBABILITIES_NAME: tf.identity(outputs[inference.PROBABILITIES],
                                                name=PROBABILITIES_NAME)}

    return serve.get_concrete_function()


def frozen_graph_def(model, spec: inference.InferenceSpec):
    """(frozen GraphDef, unfrozen GraphDef) of ``model`` under ``spec``."""
    from tensorflow.python.framework.convert_to_constants import \
        convert_variables_to_constants_v2

    function = inference_function(model, spec)
    frozen = convert_variables_to_constants_v2(function)
    return frozen.graph.as_graph_def(add_shapes=True), function.graph.as_graph_def()


def input_size(crop_size) -> Optional[Tuple[int, int]]:
    """``crop_size`` as a fixed (height, width) input size, or None (dynamic).

    Raises:
        ExportError: not two positive integers.
    """
    if crop_size is None:
        return None
    size = tuple(int(v) for v in crop_size)
    if len(size) != 2 or min(size) < 1:
        raise ExportError(
            f"crop_size must be two positive integers (height, width). Received: {crop_size}")
    return size


def frozen_inference_graph(model, model_config, spec: inference.InferenceSpec):
    """The frozen GraphDef ImageTensor -> SemanticPredictions / SemanticProbabilities of the
    prepared model: what ``export_frozen_graph`` writes, and what the OpenVINO and ONNX
    exports convert."""
    prepared = inference.prepare_model(model, spec, model_config)
    return frozen_graph_def(prepared, spec)[0]


def pruned_graph(graph_def, outputs):
    """``graph_def`` reduced to the nodes that ``outputs`` (node names) need, in that order."""
    return tf.compat.v1.graph_util.extract_sub_graph(graph_def, list(outputs))


def export_frozen_graph(model, model_config, spec: inference.InferenceSpec, export_path: str,
                        *, num_classes=None, save_inference_graph: bool = False) -> str:
    """Writes the frozen ``frozen_inference_graph.pb`` (atomically); returns its path.

    Args:
        model: a DeepLab Keras model with its weights loaded.
        model_config: ModelConfig of ``model``.
        spec: ``InferenceSpec.from_export_config(model_config, export_config)``.
        export_path: str. The GraphDef file (its folder is created).
        num_classes: int or None. Checked against the model's class count when given (the
            original's ``--num_classes``).
        save_inference_graph: bool. Also write the unfrozen graph as text,
            ``inference_graph.pbtxt`` beside it (the original's flag).

    Raises:
        FrozenGraphError: an unwritable destination (before any work) or a class count that
            differs from the model's.
    """
    check_export_path(export_path)
    if num_classes is not None and int(num_classes) != model_config.num_classes:
        raise FrozenGraphError(f"--num_classes={num_classes} but the model has "
                               f"{model_config.num_classes} classes")
    prepared = inference.prepare_model(model, spec, model_config)
    frozen, unfrozen = frozen_graph_def(prepared, spec)
    names = {node.name for node in frozen.node}
    missing = {INPUT_NAME, OUTPUT_NAME, PROBABILITIES_NAME} - names
    if missing:  # A TensorFlow change renamed the nodes: never write a graph clients can't use.
        raise FrozenGraphError(f"Internal: frozen graph lacks nodes {sorted(missing)}")
    os.makedirs(os.path.dirname(os.path.abspath(export_path)), exist_ok=True)
    fileio.atomic_write_bytes(export_path, frozen.SerializeToString())
    if save_inference_graph:
        path = os.path.join(os.path.dirname(os.path.abspath(export_path)), INFERENCE_GRAPH_NAME)
        fileio.atomic_write_bytes(path, str(unfrozen).encode())
    return export_path


def check_destination(export_config: ExportConfig, export_dir: str, overwrite: bool = False):
    """Fails before any work when ``export_config.export_path`` cannot be written."""
    check_export_path(export_config.export_path)


def export(model, model_config: ModelConfig, export_config: ExportConfig, export_dir: str, *,
           metadata: dict = None, overwrite: bool = False) -> ExportResult:
    """The registry's entry point (``deeplab_tf.export.EXPORTERS``): ``export_frozen_graph``
    to ``export_config.export_path`` (``export_dir`` is not used)."""
    spec = inference.InferenceSpec.from_export_config(model_config, export_config)
    path = export_frozen_graph(model, model_config, spec, export_config.export_path,
                               num_classes=model_config.num_classes,
                               save_inference_graph=export_config.save_inference_graph)
    return ExportResult(path, f"Wrote frozen graph {path} (input {INPUT_NAME} uint8 "
                              f"[1, H, W, 3]; outputs {OUTPUT_NAME}, {PROBABILITIES_NAME}).")


def export_converted(write, model, model_config: ModelConfig, export_config: ExportConfig,
                     export_dir: str) -> ExportResult:
    """An export that converts this frozen graph (OpenVINO, ONNX): ``write(model, model_config,
    spec, export_dir, model_name=, crop_size=, probabilities=)`` with the export's spec, the
    input size fixed when ``export_config.crop_size`` is set."""
    path = write(model, model_config,
                 inference.InferenceSpec.from_export_config(model_config, export_config),
                 export_dir, model_name=export_config.model_name,
                 crop_size=export_config.crop_size,
                 probabilities=export_config.export_probabilities)
    return ExportResult(path, f"Wrote {export_config.format} model {path}.")
