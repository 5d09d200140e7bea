"""Timing primitives: medians of repeated calls, summaries with spread, the machine's peak.

Every timing is the median of ``repeats`` calls after ``warmup`` calls, with results forced to
host memory. The peak is the better of a large fp32 matmul and a large 3x3 convolution,
measured in the same run as what it is compared with (the CPU model varies between machines,
and on an AVX2 CPU TensorFlow's large convolutions beat its matmul).
"""

from __future__ import annotations

import dataclasses
import resource
import statistics
import time
from typing import Callable, Dict, List, Sequence

MATMUL_SIZE = 2048
CONV_SHAPE = (4, 64, 64, 256)  # batch, height, width, channels (in = out), kernel 3x3


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


def peak_flops(repeats: int = 5) -> Dict[str, float]:
    """Measured fp32 FLOP/s of a large matmul and of a large 3x3 convolution, and the better.

    Returns:
        {"matmul_flops", "conv_flops", "peak_flops"} in FLOP/s.
    """
    import tensorflow as tf

    n = MATMUL_SIZE
    a = tf.random.normal([n, n])
    b = tf.random.normal([n, n])
    matmul_time = time_call(tf.function(lambda: tf.matmul(a, b)), warmup=2, repeats=repeats)
    batch, height, width, channels = CONV_SHAPE
    x = tf.random.normal([batch, height, width, channels])
    w = tf.random.normal([3, 3, channels, channels])
    conv_time = time_call(tf.function(lambda: tf.nn.conv2d(x, w, 1, "SAME")), warmup=2,
                          repeats=repeats)
    matmul = 2.0 * n ** 3 / matmul_time
    conv = 2.0 * batch * height * width * channels * channels * 9 / conv_time
    return {"matmul_flops": matmul, "conv_flops": conv, "peak_flops": max(matmul, conv)}


def peak_memory_mb() -> float:
    """Peak resident memory of this process so far (MiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
