"""Timing primitives: medians of repeated calls, summaries with spread, the machine's peak.

Every timing is the median of ``repeats`` calls after ``warmup`` calls, with results forced to
host memory. The peak is the better of a large fp32 matmul and a large 3x3 convolution,
measured in the same run as what it is compared with (the CPU model varies between machines,
and on an AVX2 CPU TensorFlow's large convolutions beat its matmul); ``peak_flops`` also
measures it per precision (bfloat16 in TensorFlow; int8 in LiteRT and OpenVINO), so that each
row's utilisation is against the limit of the precision it computes in.
"""

from __future__ import annotations

import dataclasses
import os
import resource
import statistics
import time
from typing import Callable, Dict, List, Optional, Sequence

MATMUL_SIZE = 2048
CONV_SHAPE = (4, 64, 64, 256)  # batch, height, width, channels (in = out), kernel 3x3
CONV_MADDS = CONV_SHAPE[0] * CONV_SHAPE[1] * CONV_SHAPE[2] * CONV_SHAPE[3] ** 2 * 9


def block(result):
    """Forces every tensor in ``result`` to host memory (waits for the computation)."""
    import tensorflow as tf

    for value in tf.nest.flatten(result):
        if hasattr(value, "numpy"):
            value.numpy()
    return result


def time_call(fn: Callable[[], object], warmup: int = 1, repeats: int = 5) -> float:
    """Median wall time of ``fn()`` in seconds (see ``time_calls``)."""
    return statistics.median(time_calls(fn, warmup, repeats))


def time_calls(fn: Callable[[], object], warmup: int = 1, repeats: int = 5) -> List[float]:
    """Wall times of ``repeats`` calls of ``fn()`` after ``warmup`` untimed ones."""
    for _ in range(warmup):
        block(fn())
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        block(fn())
        times.append(time.perf_counter() - start)
    return times


@dataclasses.dataclass(frozen=True)
class Summary:
    """Median and spread of a list of timings (seconds)."""

    median: float
    best: float
    worst: float
    count: int

    @classmethod
    def of(cls, times: Sequence[float]) -> "Summary":
        if not times:
            raise ValueError("No timings to summarise")
        return cls(statistics.median(times), min(times), max(times), len(times))

    @property
    def spread(self) -> float:
        """(worst - best) / median."""
        return (self.worst - self.best) / self.median if self.median else 0.0


PRECISIONS = ("float32", "bfloat16", "int8")


def _tf_peak(dtype, repeats: int):
    """(matmul FLOP/s, 3x3 conv FLOP/s) of TensorFlow in ``dtype``."""
    import tensorflow as tf

    n = MATMUL_SIZE
    a = tf.cast(tf.random.normal([n, n]), dtype)
    b = tf.cast(tf.random.normal([n, n]), dtype)
    matmul_time = time_call(tf.function(lambda: tf.matmul(a, b)), warmup=2, repeats=repeats)
    batch, height, width, channels = CONV_SHAPE
    x = tf.cast(tf.random.normal([batch, height, width, channels]), dtype)
    w = tf.cast(tf.random.normal([3, 3, channels, channels]), dtype)
    conv_time = time_call(tf.function(lambda: tf.nn.conv2d(x, w, 1, "SAME")), warmup=2,
                          repeats=repeats)
    return 2.0 * n ** 3 / matmul_time, CONV_MADDS * 2.0 / conv_time


def _litert_int8_conv(repeats: int) -> Optional[float]:
    """int8 ops/s of the 3x3 convolution converted to a full-integer TFLite model, in
    LiteRT (XNNPACK, all cores): what the int8 TFLite export runs on; None without LiteRT."""
    import importlib.util

    if importlib.util.find_spec("ai_edge_litert") is None:
        return None
    import numpy as np
    import tensorflow as tf
    from ai_edge_litert.interpreter import Interpreter

    batch, height, width, channels = CONV_SHAPE
    kernel = tf.random.normal([3, 3, channels, channels], stddev=0.05, seed=1)
    function = tf.function(lambda x: tf.nn.conv2d(x, kernel, 1, "SAME"), input_signature=[
        tf.TensorSpec([batch, height, width, channels], tf.float32)])
    converter = tf.lite.TFLiteConverter.from_concrete_functions(
        [function.get_concrete_function()], function)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    rng = np.random.default_rng(0)
    converter.representative_dataset = lambda: (
        [rng.normal(size=(batch, height, width, channels)).astype(np.float32)]
        for _ in range(2))
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = converter.inference_output_type = tf.int8
    interpreter = Interpreter(model_content=converter.convert(),
                              num_threads=os.cpu_count() or 1)
    interpreter.allocate_tensors()
    detail = interpreter.get_input_details()[0]
    interpreter.set_tensor(detail["index"], rng.integers(
        -100, 100, detail["shape"]).astype(np.int8))
    seconds = time_call(interpreter.invoke, warmup=2, repeats=repeats)
    return CONV_MADDS * 2.0 / seconds


def _openvino_int8_conv(repeats: int) -> Optional[float]:
    """int8 ops/s of the 3x3 convolution with quantized (FakeQuantize) input and weights in
    OpenVINO's CPU plugin: what its int8 models run on; None without OpenVINO."""
    import importlib.util

    if importlib.util.find_spec("openvino") is None:
        return None
    import numpy as np
    import openvino as ov
    from openvino import opset13 as ops

    batch, height, width, channels = CONV_SHAPE
    rng = np.random.default_rng(0)

    def fake_quantize(node, low, high, levels=256):
        bounds = [ops.constant(np.float32(v)) for v in (low, high, low, high)]
        return ops.fake_quantize(node, *bounds, levels)

    x = ops.parameter([batch, channels, height, width], np.float32)
    weights = ops.constant(rng.normal(0, 0.05, (channels, channels, 3, 3)).astype(np.float32))
    conv = ops.convolution(fake_quantize(x, 0.0, 4.0), fake_quantize(weights, -0.2, 0.2),
                           [1, 1], [1, 1], [1, 1], [1, 1])
    compiled = ov.Core().compile_model(ov.Model([conv], [x]), "CPU",
                                       {"PERFORMANCE_HINT": "LATENCY"})
    request = compiled.create_infer_request()
    data = rng.uniform(0, 4, (batch, channels, height, width)).astype(np.float32)
    seconds = time_call(lambda: request.infer({0: data}), warmup=2, repeats=repeats)
    return CONV_MADDS * 2.0 / seconds


def peak_flops(repeats: int = 5, precisions=("float32",)) -> Dict[str, object]:
    """Measured FLOP/s of a large matmul and of a large 3x3 convolution, and the better,
    per precision.

    Args:
        repeats: int. Timed calls per measurement (median).
        precisions: some of ``PRECISIONS``. float32 is always measured; ``"bfloat16"``:
            TensorFlow's matmul and convolution in bfloat16; ``"int8"``: the convolution
            quantized to int8 in LiteRT and in OpenVINO (the runtimes of the int8 exports;
            TensorFlow has no int8 convolution of its own to time), where installed.

    Returns:
        {"matmul_flops", "conv_flops", "peak_flops"} (float32), ``"<precision>_<what>"``
        for the others (int8: ``int8_litert_conv_ops``, ``int8_openvino_conv_ops``,
        ``int8_peak_ops``; None where a runtime is missing), and ``"peaks"``: {precision:
        best figure} for every precision measured (utilisation is against the row's own).
    """
    import tensorflow as tf

    unknown = [p for p in precisions if p not in PRECISIONS]
    if unknown:
        raise ValueError(f"precisions must be some of {', '.join(PRECISIONS)}. Received: "
                         f"{unknown}")
    matmul, conv = _tf_peak(tf.float32, repeats)
    out: Dict[str, object] = {"matmul_flops": matmul, "conv_flops": conv,
                              "peak_flops": max(matmul, conv)}
    peaks = {"float32": max(matmul, conv)}
    if "bfloat16" in precisions:
        matmul, conv = _tf_peak(tf.bfloat16, repeats)
        out.update(bfloat16_matmul_flops=matmul, bfloat16_conv_flops=conv,
                   bfloat16_peak_flops=max(matmul, conv))
        peaks["bfloat16"] = max(matmul, conv)
    if "int8" in precisions:
        litert, openvino = _litert_int8_conv(repeats), _openvino_int8_conv(repeats)
        measured = [v for v in (litert, openvino) if v]
        out.update(int8_litert_conv_ops=litert, int8_openvino_conv_ops=openvino,
                   int8_peak_ops=max(measured) if measured else None)
        if measured:
            peaks["int8"] = max(measured)
    out["peaks"] = peaks
    return out


def precision_of(name: str) -> str:
    """The precision a benchmark row or contender computes in, from its name:
    ``...int8...`` int8, ``...bfloat16...`` bfloat16, anything else float32."""
    return "int8" if "int8" in name else "bfloat16" if "bfloat16" in name else "float32"


def describe_peaks(peak: Dict[str, object]) -> str:
    """One line: the peak of each precision measured (GFLOP/s; int8: GOP/s)."""
    parts = []
    for precision, value in peak.get("peaks", {"float32": peak["peak_flops"]}).items():
        unit = "GOP/s" if precision == "int8" else "GFLOP/s"
        parts.append(f"{precision} {value / 1e9:.1f} {unit}")
    return ", ".join(parts)


def load_average() -> str:
    """The 1-, 5- and 15-minute load averages (/proc/loadavg), or "unknown"."""
    try:
        with open("/proc/loadavg") as f:
            return " ".join(f.read().split()[:3])
    except OSError:
        return "unknown"


def machine_line() -> str:
    """The machine a figure was measured on, in one line: CPU model, logical CPUs, the
    avx512f / avx512_bf16 / AMX flags and the load averages now (print it at the start and
    the end of a run)."""
    from deeplab_tf.runtime.hardware import detect

    hardware = detect(gpus=())
    return (f"cpu: {hardware.cpu_model or 'unknown'} ({hardware.cpu_count} logical CPUs); "
            f"{hardware.flags_line()}; load average {load_average()}")


def peak_memory_mb() -> float:
    """Peak resident memory of this process so far (MiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
