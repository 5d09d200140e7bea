"""One registry of export formats (``deeplab_tf.export.EXPORTERS``), one ExportError base."""

import importlib

import pytest

from deeplab_tf import export
from deeplab_tf.config import EXPORT_FORMATS, ExportConfig
from deeplab_tf.errors import UserError
from deeplab_tf.export.errors import ExportError


def test_every_format_has_an_exporter_with_the_two_entry_points():
    assert set(export.EXPORTERS) == set(EXPORT_FORMATS)
    for name in EXPORT_FORMATS:
        module = export.exporter(name)
        assert callable(module.check_destination) and callable(module.export), name


def test_unknown_format_and_bad_sizes_are_export_errors():
    with pytest.raises(ExportError, match="format must be one of .* Received: format='bmp'"):
        export.exporter("bmp")
    from deeplab_tf.export.frozen_graph import input_size

    with pytest.raises(ExportError, match=r"crop_size must be two positive integers"):
        input_size((0, 33))
    assert input_size(None) is None and input_size([33, 65]) == (33, 65)


@pytest.mark.parametrize("module, name", [
    ("deeplab_tf.export.openvino", "OpenVINOExportError"),
    ("deeplab_tf.export.onnx", "OnnxExportError"),
    ("deeplab_tf.export.tflite", "TFLiteExportError"),
    ("deeplab_tf.export.frozen_graph", "FrozenGraphError"),
])
def test_format_errors_share_the_base(module, name):
    error = getattr(importlib.import_module(module), name)
    assert issubclass(error, ExportError) and issubclass(error, UserError)


def test_destination_checks_run_before_any_work(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    config = ExportConfig(format="onnx", crop_size=None)
    with pytest.raises(ExportError, match="is a file, not a directory"):
        export.exporter("onnx").check_destination(config, str(blocker))
    empty = tmp_path / "no_shards"
    empty.mkdir()
    tflite = ExportConfig(format="tflite", tflite_mode="int8", calibration_dataset_dir=str(empty))
    with pytest.raises(UserError, match="no_shards"):  # the calibration shards, before any work
        export.exporter("tflite").check_destination(tflite, str(tmp_path / "out"))
    assert not (tmp_path / "out").exists()
