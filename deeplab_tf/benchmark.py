"""Benchmarks: the machine's peak FLOP rate and a model's speed, measured in the same run.

Achieved FLOP utilisation = 2 x multiply-adds / time / peak, where the peak is the best of a
large fp32 matrix multiplication and a large convolution timed here, now. Every timing is
the median of ``repeats`` runs after ``warmup`` runs. Used by ``deeplab-bench``.
"""

from __future__ import annotations

import dataclasses
import resource
import statistics
import time
from typing import Callable, Dict, List, Optional

import keras
import numpy as np
import tensorflow as tf

from deeplab_tf.config import ModelConfig
from deeplab_tf.model import build_model, count_madds, fold_batch_norm


def time_call(fn: Callable[[], object], warmup: int = 1, repeats: int = 5) -> float:
    """Median wall time of ``fn()`` in seconds; results are forced to host memory."""
    for _ in range(warmup):
        _block(fn())
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        _block(fn())
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _block(result):
    for t in tf.nest.flatten(result):
        if hasattr(t, "numpy"):
            t.numpy()


def peak_flops(repeats: int = 5) -> Dict[str, float]:
    """Measured fp32 FLOP/s of a 2048^3 matmul and of a 3x3 conv (256 -> 256, 64x64 x4)."""
    a = tf.random.normal([2048, 2048])
    b = tf.random.normal([2048, 2048])
    matmul = tf.function(lambda: tf.matmul(a, b))
    matmul_time = time_call(matmul, warmup=2, repeats=repeats)
    x = tf.random.normal([4, 64, 64, 256])
    w = tf.random.normal([3, 3, 256, 256])
    conv = tf.function(lambda: tf.nn.conv2d(x, w, 1, "SAME"))
    conv_time = time_call(conv, warmup=2, repeats=repeats)
    matmul_flops = 2 * 2048 ** 3 / matmul_time
    conv_flops = 2 * 4 * 64 * 64 * 256 * 256 * 9 / conv_time
    return {"matmul_flops": matmul_flops, "conv_flops": conv_flops,
            "peak_flops": max(matmul_flops, conv_flops)}


@dataclasses.dataclass
class Result:
    name: str
    batch_size: int
    seconds: float  # median time of one call (one batch)
    flops: float  # floating-point operations of one call (2 x multiply-adds)
    note: str = ""

    @property
    def images_per_second(self) -> float:
        return self.batch_size / self.seconds

    def utilisation(self, peak: float) -> float:
        return self.flops / self.seconds / peak


def _copy_weights(source: keras.Model, target: keras.Model):
    for s, t in zip(source.weights, target.weights):
        t.assign(tf.cast(s, t.dtype))


def _with_policy(policy: str, fn):
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(policy)
    try:
        return fn()
    finally:
        keras.config.set_dtype_policy(previous)


def inference_benchmarks(config: ModelConfig, height: int, width: int, batch_size: int = 1,
                         modes=("eager", "function", "function_folded", "xla",
                                "bfloat16_folded"),
                         warmup: int = 1, repeats: int = 5, log=print) -> List[Result]:
    """Latency of one forward pass (batch ``batch_size``) in each of ``modes``.

    Modes: ``eager`` (model called eagerly), ``function`` (tf.function), ``function_folded``
    (tf.function, batch norm folded into the convolutions), ``xla`` (tf.function with
    jit_compile, folded), ``bfloat16`` / ``bfloat16_folded`` (mixed_bfloat16 policy).
    """
    model = build_model(config)
    madds = count_madds(model, height, width) * batch_size
    images = tf.random.uniform([batch_size, height, width, 3], 0, 255, seed=1)
    results = []
    folded = None
    for mode in modes:
        log(f"  timing {mode} ...")
        if mode == "eager":
            fn = lambda: model(images, training=False)  # noqa: E731
        elif mode == "function":
            fn = tf.function(lambda x: model(x, training=False)).get_concrete_function(images)
            fn = (lambda f: lambda: f(images))(fn)
        elif mode in ("function_folded", "xla"):
            if folded is None:
                folded = build_model(config)
                _copy_weights(model, folded)
                fold_batch_norm(folded)
            compiled = tf.function(lambda x: folded(x, training=False),
                                   jit_compile=(mode == "xla"))
            fn = (lambda f: lambda: f(images))(compiled)
        elif mode in ("bfloat16", "bfloat16_folded"):
            half = _with_policy("mixed_bfloat16", lambda: build_model(config))
            _copy_weights(model, half)
            if mode.endswith("folded"):
                fold_batch_norm(half)
            compiled = tf.function(lambda x, m=half: m(x, training=False))
            fn = (lambda f: lambda: f(images))(compiled)
        else:
            raise ValueError(f"Unknown benchmark mode. Received: {mode!r}")
        seconds = time_call(fn, warmup=warmup, repeats=repeats)
        results.append(Result(f"inference/{mode}", batch_size, seconds, 2.0 * madds))
    return results


def agreement(config: ModelConfig, height: int, width: int, seed: int = 0) -> Dict[str, float]:
    """Max relative logit difference and argmax agreement of folded / bfloat16 vs float32.

    Weights are random but with realistic batch-norm statistics, so logits are O(1).
    """
    from deeplab_tf.layers import original_variable_map

    model = build_model(config)
    rng = np.random.default_rng(seed)
    for name, var in original_variable_map(model).items():
        shape = tuple(var.shape)
        if name.endswith("moving_variance"):
            value = rng.uniform(0.5, 1.5, shape)
        elif name.endswith("gamma"):
            value = rng.uniform(0.8, 1.2, shape)
        elif name.endswith(("moving_mean", "beta", "biases")):
            value = rng.normal(0, 0.1, shape)
        else:
            fan_in = int(np.prod(shape[:-1])) if "depthwise" not in name else int(np.prod(shape[:2]))
            value = rng.normal(0, np.sqrt(2.0 / max(fan_in, 1)), shape)
        var.assign(value.astype(np.float32))
    images = tf.constant(rng.uniform(0, 255, (1, height, width, 3)).astype(np.float32))
    reference = model(images, training=False).numpy()
    scale = np.abs(reference).max()
    out = {}
    folded = build_model(config)
    _copy_weights(model, folded)
    fold_batch_norm(folded)
    got = folded(images, training=False).numpy()
    out["folded_max_rel_diff"] = float(np.abs(got - reference).max() / scale)
    out["folded_argmax_agreement"] = float((got.argmax(-1) == reference.argmax(-1)).mean())
    half = _with_policy("mixed_bfloat16", lambda: build_model(config))
    _copy_weights(model, half)
    fold_batch_norm(half)
    got = tf.cast(half(images, training=False), tf.float32).numpy()
    out["bfloat16_argmax_agreement"] = float((got.argmax(-1) == reference.argmax(-1)).mean())
    return out


def train_benchmarks(config: ModelConfig, height: int, width: int, batch_size: int = 2,
                     modes=("float32", "bfloat16"), jit: bool = False, steps: int = 3,
                     log=print) -> List[Result]:
    """Images/s of a training step (forward, softmax loss at full size, backward, SGD update).

    FLOPs are counted as 3 x forward multiply-adds x 2 (forward + two backward products).
    """
    results = []
    madds = count_madds(build_model(config), height, width) * batch_size
    images = tf.random.uniform([batch_size, height, width, 3], 0, 255, seed=2)
    labels = tf.random.uniform([batch_size, height, width], 0, config.num_classes, tf.int32,
                               seed=3)
    for mode in modes:
        log(f"  timing train/{mode}{'/xla' if jit else ''} ...")
        policy = "mixed_bfloat16" if mode == "bfloat16" else "float32"
        model = _with_policy(policy, lambda: build_model(config))
        optimizer = keras.optimizers.SGD(0.001, momentum=0.9)

        def step(x, y, model=model, optimizer=optimizer):
            with tf.GradientTape() as tape:
                logits = tf.cast(model(x, training=True), tf.float32)
                logits = tf.compat.v1.image.resize_bilinear(logits, [height, width],
                                                            align_corners=True)
                loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(y, logits))
            grads = tape.gradient(loss, model.trainable_variables)
            optimizer.apply_gradients(zip(grads, model.trainable_variables))
            return loss

        compiled = tf.function(step, jit_compile=jit)
        seconds = time_call(lambda: compiled(images, labels), warmup=1, repeats=steps)
        results.append(Result(f"train/{mode}{'/xla' if jit else ''}", batch_size, seconds,
                              3 * 2.0 * madds))
    return results


def peak_memory_mb() -> float:
    """Peak resident memory of this process so far (MiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def format_table(results: List[Result], peak: float, extra: Optional[Dict[str, str]] = None) -> str:
    lines = [f"{'benchmark':32s} {'batch':>5s} {'time (s)':>10s} {'images/s':>10s} "
             f"{'GFLOP/s':>9s} {'util.':>6s}"]
    for r in results:
        lines.append(f"{r.name:32s} {r.batch_size:5d} {r.seconds:10.4f} "
                     f"{r.images_per_second:10.2f} {r.flops / r.seconds / 1e9:9.1f} "
                     f"{100 * r.utilisation(peak) if r.flops else float('nan'):5.1f}%")
    for key, value in (extra or {}).items():
        lines.append(f"{key}: {value}")
    return "\n".join(lines)
