"""The int8 contenders of ``bench.compare``: post-training int8 in LiteRT and in OpenVINO.

* ``tflite_int8``: the int8 TFLite export (``export.tflite.convert_tflite`` with
  ``tflite_mode="int8"``: full-integer, uint8 pixel input, calibrated on
  ``calibration_images``) run by LiteRT (XNNPACK, all cores);
* ``openvino_tflite_int8``: that same .tflite file read by OpenVINO's TFLite front end, so
  OpenVINO runs the quantization TFLite's converter chose;
* ``openvino_int8``: OpenVINO's own post-training quantization (NNCF ``nncf.quantize``, its
  default ``PERFORMANCE`` preset) of the float32 OpenVINO model (``export.openvino.convert``),
  calibrated on the same images. Needs the ``nncf`` package (``pip install nncf``).

Each builder returns a callable uint8 image [1, H, W, 3] -> int32 labels [1, H, W], with the
one inference path's pre- and post-processing (mean-pixel padding to ``k * output_stride + 1``,
the padding cropped off).
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
from typing import Callable, List

import numpy as np


def calibration_images(setup, make_image: Callable) -> List[np.ndarray]:
    """``setup.calibration_images`` uint8 images [1, H, W, 3] like the timed one (other seeds)."""
    return [make_image(dataclasses.replace(setup, seed=setup.seed + 100 + index))
            for index in range(setup.calibration_images)]


def _padded_size(setup, spec):
    from deeplab_tf.data.preprocess import padded_size

    return (padded_size(setup.height, spec.output_stride),
            padded_size(setup.width, spec.output_stride))


def tflite_int8_model(model, config, spec, setup, make_image) -> bytes:
    """The int8 TFLite flatbuffer of the export, at the benchmark's padded input size."""
    from deeplab_tf.config import ExportConfig
    from deeplab_tf.export.litert import prepare_image
    from deeplab_tf.export.tflite import convert_tflite
    from deeplab_tf.inference import prepare_model

    size = _padded_size(setup, spec)
    samples = (prepare_image(image[0], spec, size)[0]
               for image in calibration_images(setup, make_image))
    return convert_tflite(prepare_model(model, spec, config),
                          ExportConfig(format="tflite", crop_size=size, tflite_mode="int8"),
                          representative_images=samples)


def build_tflite_int8(model, config, spec, setup, make_image):
    from deeplab_tf.export.litert import LiteRTModel

    runner = LiteRTModel(tflite_int8_model(model, config, spec, setup, make_image),
                         num_threads=setup.threads or os.cpu_count(), spec=spec)
    return lambda image: runner.predict_image(image[0])[np.newaxis]


def _openvino_runner(ov_model, spec, size, threads):
    """A callable uint8 [1, H, W, 3] -> labels [1, H, W] of an OpenVINO model whose input is
    the padded image and whose output is labels (or logits) at that size."""
    import openvino as ov

    from deeplab_tf import inference
    from deeplab_tf.export.litert import prepare_image

    properties = {"PERFORMANCE_HINT": "LATENCY"}
    if threads:
        properties["INFERENCE_NUM_THREADS"] = int(threads)
    compiled = ov.Core().compile_model(ov_model, "CPU", properties)
    request = compiled.create_infer_request()
    dtype = np.uint8 if compiled.inputs[0].get_element_type() == ov.Type.u8 else np.float32

    def call(image):
        prepared, sizes, used = prepare_image(image[0], spec, size)
        output = request.infer({0: np.clip(np.round(prepared), 0, 255).astype(dtype)})
        labels = output[compiled.outputs[0]]
        if labels.ndim == 4:
            labels = labels.argmax(-1)
        return inference.crop_outputs({inference.LABELS: labels.astype(np.int32)}, sizes,
                                      used)[inference.LABELS].numpy()

    return call


def build_openvino_tflite_int8(model, config, spec, setup, make_image):
    import openvino as ov

    content = tflite_int8_model(model, config, spec, setup, make_image)
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "int8.tflite")
        with open(path, "wb") as f:
            f.write(content)
        ov_model = ov.convert_model(path)
    return _openvino_runner(ov_model, spec, _padded_size(setup, spec), setup.threads)


def build_openvino_int8(model, config, spec, setup, make_image):
    """NNCF's post-training quantization of the float32 OpenVINO model (fixed padded size)."""
    import nncf

    from deeplab_tf.export.litert import prepare_image
    from deeplab_tf.export.openvino import convert

    size = _padded_size(setup, spec)
    ov_model = convert(model, config, dataclasses.replace(spec, crop_size=size), crop_size=size)
    samples = [np.clip(np.round(prepare_image(image[0], spec, size)[0]), 0, 255)
               .astype(np.uint8) for image in calibration_images(setup, make_image)]
    quantized = nncf.quantize(ov_model, nncf.Dataset(samples),
                              subset_size=len(samples))
    return _openvino_runner(quantized, spec, size, setup.threads)

