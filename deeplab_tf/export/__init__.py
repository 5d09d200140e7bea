"""Exports, one registry: ``EXPORTERS`` maps each ``--format`` to its module.

Every exporter module has the same two entry points:

* ``check_destination(export_config, export_dir, overwrite=False)``: fails (``ExportError``,
  one line) before any work when the output cannot be written;
* ``export(model, model_config, export_config, export_dir, *, metadata=None,
  overwrite=False) -> ExportResult``: writes the export and says what it wrote.

All start from a model whose weights ``checkpoints.strict.load_for_inference`` loaded exactly
and compute through ``deeplab_tf.inference.predict``, so they predict what deeplab-eval
evaluates. Formats: SavedModel for TF Serving, the original's frozen GraphDef, TFLite,
OpenVINO IR and ONNX. Beside them: ``tflite_qat`` (the integer TFLite model of a
quantization-aware network, from its learned ranges, which ``tflite`` calls) and ``edgetpu``
(the Edge TPU op-set check and, where installed, its compiler).

Example:

>>> from deeplab_tf import export
>>> exporter = export.exporter("tflite")
>>> exporter.check_destination(export_config, "exports")
>>> print(exporter.export(model, model_config, export_config, "exports").summary)
"""

import importlib

from deeplab_tf.export.errors import ExportError

EXPORTERS = {
    "saved_model": "deeplab_tf.export.saved_model",
    "frozen_graph": "deeplab_tf.export.frozen_graph",
    "tflite": "deeplab_tf.export.tflite",
    "openvino": "deeplab_tf.export.openvino",
    "onnx": "deeplab_tf.export.onnx",
}


def exporter(export_format: str):
    """The exporter module of ``export_format`` (one of ``EXPORTERS``).

    Raises:
        ExportError: an unknown format.
    """
    if export_format not in EXPORTERS:
        raise ExportError(f"format must be one of {', '.join(EXPORTERS)}. "
                          f"Received: format={export_format!r}")
    return importlib.import_module(EXPORTERS[export_format])
