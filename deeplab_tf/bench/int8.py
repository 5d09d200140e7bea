"""Post-training int8 in LiteRT and in OpenVINO: the int8 contenders of ``bench.compare`` and
of ``benchmarks/precision_agreement.py``.

* ``tflite_int8``: the int8 TFLite export (``export.tflite.convert_tflite`` with
  ``tflite_mode="int8"``: full-integer, uint8 pixel input, calibrated on sample images) run
  by LiteRT (XNNPACK, all cores);
* ``openvino_tflite_int8``: that same .tflite file read by OpenVINO's TFLite front end, so
  OpenVINO runs the quantization TFLite's converter chose;
* ``openvino_int8``: OpenVINO's own post-training quantization (NNCF ``nncf.quantize``, its
  default ``PERFORMANCE`` preset) of the float32 OpenVINO model (``export.openvino.convert``),
  calibrated on the same images. Needs the ``nncf`` package (``pip install nncf``).

Each ``BUILDERS`` entry takes (model, model_config, spec, size, samples, threads): the
fixed padded input size (h, w), the calibration images (uint8 [1, H, W, 3]) and the runtime's
threads; it returns a callable uint8 image [1, H, W, 3] (any size that pads within ``size``)
-> int32 labels [1, H, W], with the one inference path's pre- and post-processing
(mean-pixel padding, the padding cropped off).
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
from typing import List, Optional, Tuple

import numpy as np


def _prepared(samples, spec, size) -> List[np.ndarray]:
    from deeplab_tf.export.litert import prepare_image

    return [prepare_image(image[0], spec, size)[0] for image in samples]


def tflite_int8_model(model, config, spec, size: Tuple[int, int], samples) -> bytes:
    """The int8 TFLite flatbuffer of the export at input ``size``, calibrated on ``samples``."""
    from deeplab_tf.config import ExportConfig
    from deeplab_tf.export.tflite import convert_tflite
    from deeplab_tf.inference import prepare_model

    return convert_tflite(prepare_model(model, dataclasses.replace(spec, precision="float32"),
                                        config),
                          ExportConfig(format="tflite", crop_size=tuple(size),
                                       tflite_mode="int8"),
                          representative_images=_prepared(samples, spec, size))


def build_tflite_int8(model, config, spec, size, samples, threads: Optional[int] = None):
    from deeplab_tf.export.litert import LiteRTModel

    runner = LiteRTModel(tflite_int8_model(model, config, spec, size, samples),
                         num_threads=threads or os.cpu_count(), spec=spec)
    return lambda image: runner.predict_image(image[0])[np.newaxis]


def _openvino_runner(ov_model, spec, size, threads):
    """A callable uint8 [1, H, W, 3] -> labels [1, H, W] of an OpenVINO model whose input is
    the padded image (``size``) and whose output is labels (or logits) at that size."""
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


def build_openvino_tflite_int8(model, config, spec, size, samples,
                               threads: Optional[int] = None):
    import openvino as ov

    content = tflite_int8_model(model, config, spec, size, samples)
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "int8.tflite")
        with open(path, "wb") as f:
            f.write(content)
        ov_model = ov.convert_model(path)
    return _openvino_runner(ov_model, spec, size, threads)


def build_openvino_int8(model, config, spec, size, samples, threads: Optional[int] = None):
    """NNCF's post-training quantization of the float32 OpenVINO model (input ``size``)."""
    import nncf

    from deeplab_tf.export.openvino import convert

    ov_model = convert(model, config, dataclasses.replace(spec, crop_size=tuple(size)),
                       crop_size=tuple(size))
    calibration = [np.clip(np.round(image), 0, 255).astype(np.uint8)
                   for image in _prepared(samples, spec, size)]
    quantized = nncf.quantize(ov_model, nncf.Dataset(calibration),
                              subset_size=len(calibration))
    return _openvino_runner(quantized, spec, size, threads)


BUILDERS = {"tflite_int8": build_tflite_int8,
            "openvino_tflite_int8": build_openvino_tflite_int8,
            "openvino_int8": build_openvino_int8}
