"""Integer TFLite models of a quantization-aware network: its learned ranges, no calibration.

The quantized evaluation graph (``ModelConfig.quantization``) carries a FakeQuant op on
every tensor the integer model needs a scale for: the pixels, the normalised input, each
folded kernel, each layer's output and residual sum. The converters take those ranges as
they are, so the integer model computes what the graph computes (up to integer rounding):

* ``"per_channel"`` weights (symmetric per output channel): TensorFlow 2's converter in its
  quantization-aware mode: int8 tensors, int32 biases, a uint8 input (the converter's
  uint8 -> int8 shift; scale 1, zero point 0: raw pixels), optionally uint8 outputs.
* ``"per_tensor"`` weights (the original's asymmetric ranges; int8 kernels need a zero
  point of 0): the converter's legacy uint8 mode (``inference_type=uint8``, the original's
  ``QUANTIZED_UINT8``), every tensor uint8 as in the original's converted models, with the
  input statistics (0, 1): raw pixels.

``convert_quantization_aware`` checks the result: a raw-pixel uint8 input and no float
tensor (except float logits when asked for).
"""

from __future__ import annotations

import warnings

import numpy as np
import tensorflow as tf

from deeplab_tf.export.litert import LiteRTModel


class QuantizedConversionError(ValueError):
    """An integer conversion that did not give the model asked for (one-line message)."""


def _per_channel(function, uint8_output: bool) -> bytes:
    converter = tf.lite.TFLiteConverter.from_concrete_functions([function])
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    # Not supported_ops={TFLITE_BUILTINS_INT8}: TF 2.21's converter then asks for a
    # representative dataset before it looks at the graph's FakeQuant ops. Integer-only is
    # checked on the result instead.
    converter.inference_input_type = tf.uint8
    if uint8_output:
        converter.inference_output_type = tf.uint8
    with warnings.catch_warnings():
        # The FakeQuant range of the input gives its statistics (checked below).
        warnings.filterwarnings("ignore", "Statistics for quantized inputs were expected")
        return converter.convert()


def _per_tensor(function) -> bytes:
    graph_def = function.graph.as_graph_def()
    input_name, output_name = function.inputs[0].name, function.outputs[0].name
    graph = tf.Graph()
    with graph.as_default():
        tf.compat.v1.import_graph_def(graph_def, name="")
        with tf.compat.v1.Session(graph=graph) as session:
            converter = tf.compat.v1.lite.TFLiteConverter.from_session(
                session, [graph.get_tensor_by_name(input_name)],
                [graph.get_tensor_by_name(output_name)])
            converter.inference_type = tf.uint8
            converter.quantized_input_stats = {input_name.split(":")[0]: (0.0, 1.0)}
            return converter.convert()


def _float_tensors(runner: LiteRTModel, allowed) -> list:
    return [detail["name"] for detail in runner.interpreter.get_tensor_details()
            if detail["dtype"] in (np.float32, np.float16) and detail["index"] not in allowed]


def convert_quantization_aware(function, quantization: str, float_output: bool = False,
                               uint8_output: bool = False) -> bytes:
    """The integer TFLite model of a frozen quantization-aware function (see above).

    Args:
        function: frozen concrete function float32 pixels [1, h, w, 3] -> one output.
        quantization: "per_channel" or "per_tensor" (the model's ``ModelConfig``).
        float_output: bool. The output may be float32 (logits of the int8 mode).
        uint8_output: bool. "per_channel": the output as uint8 (Edge TPU).

    Raises:
        QuantizedConversionError: the input is not raw uint8 pixels, or a tensor stayed
            float.
    """
    if quantization == "per_channel":
        content = _per_channel(function, uint8_output)
    else:
        content = _per_tensor(function)
    runner = LiteRTModel(content)
    details = runner.input_details
    scale, zero_point = details["quantization"]
    if details["dtype"] != np.uint8 or not (abs(scale - 1.0) < 1e-6 and zero_point == 0):
        raise QuantizedConversionError(
            f"The integer model's input is not raw uint8 pixels ({np.dtype(details['dtype'])}, "
            f"scale {scale}, zero point {zero_point})")
    allowed = {runner.output_details["index"]} if float_output else set()
    floats = _float_tensors(runner, allowed)
    if floats:
        raise QuantizedConversionError(
            f"{len(floats)} tensors of the integer model stayed float (no range for them in "
            f"the quantization-aware graph): {', '.join(floats[:6])}")
    return content
