"""In-process model benchmarks: forward-pass latency per formulation, FLOP utilisation, and
the agreement of the fast formulations with the float32 model.

Achieved utilisation = 2 x multiply-adds / time / peak (``timing.peak_flops``). For the
side-by-side comparison of runtimes, each in its own process, see ``bench.compare``.
"""

from __future__ import annotations

import dataclasses
from typing import Dict, List, Optional

import numpy as np

from deeplab_tf.bench.timing import precision_of, time_call
from deeplab_tf.config import ModelConfig
from deeplab_tf.errors import ConfigError

INFERENCE_MODES = ("eager", "function", "function_folded", "xla", "bfloat16",
                   "bfloat16_folded")


@dataclasses.dataclass
class Result:
    """One timed benchmark: ``seconds`` per call of ``batch_size`` images, ``flops`` per call,
    computed in ``precision`` (its utilisation is against that precision's peak)."""

    name: str
    batch_size: int
    seconds: float
    flops: float
    note: str = ""
    precision: str = "float32"

    @property
    def images_per_second(self) -> float:
        return self.batch_size / self.seconds

    def utilisation(self, peak: float) -> float:
        return self.flops / self.seconds / peak


def randomize_weights(model, seed: int = 0):
    """Random weights with realistic batch-norm statistics (logits O(1)), reproducible from
    ``seed`` in any process; returns ``model``."""
    from deeplab_tf.modeling.layers.original_layer import original_variable_map

    rng = np.random.default_rng(seed)
    for name, var in sorted(original_variable_map(model).items()):
        shape = tuple(var.shape)
        if name.endswith("moving_variance"):
            value = rng.uniform(0.5, 1.5, shape)
        elif name.endswith("gamma"):
            value = rng.uniform(0.8, 1.2, shape)
        elif name.endswith(("moving_mean", "beta", "biases")):
            value = rng.normal(0, 0.1, shape)
        else:
            fan_in = int(np.prod(shape[:2] if "depthwise" in name else shape[:-1]))
            value = rng.normal(0, np.sqrt(2.0 / max(fan_in, 1)), shape)
        var.assign(value.astype(np.float32))
    return model


def _variant(model, config, precision="float32", fold=False):
    """The inference path's copy of ``model`` (``inference.prepare_model``) in ``precision``,
    batch norm folded or not; ``model`` itself for float32 unfolded."""
    from deeplab_tf.inference import InferenceSpec, prepare_model

    spec = InferenceSpec(output_stride=config.output_stride, pad_value=(0.0, 0.0, 0.0),
                         fold_batch_norm=fold, precision=precision)
    return prepare_model(model, spec, config)


def inference_benchmarks(config: ModelConfig, height: int, width: int, batch_size: int = 1,
                         modes=("eager", "function", "function_folded", "xla",
                                "bfloat16_folded"),
                         warmup: int = 1, repeats: int = 5, log=print) -> List[Result]:
    """Latency of one forward pass (batch ``batch_size``) in each of ``modes``, in this process.

    Modes: ``eager``, ``function`` (tf.function), ``function_folded`` (batch norm folded),
    ``xla`` (folded, jit_compile), ``bfloat16`` / ``bfloat16_folded`` (mixed_bfloat16).
    """
    import tensorflow as tf

    from deeplab_tf.model import build_model
    from deeplab_tf.modeling.madds import count_madds

    model = build_model(config)
    madds = count_madds(model, height, width) * batch_size
    images = tf.random.uniform([batch_size, height, width, 3], 0, 255, seed=1)
    results = []
    for mode in modes:
        if mode not in INFERENCE_MODES:
            raise ConfigError(f"Unknown benchmark mode (expected one of "
                             f"{', '.join(INFERENCE_MODES)}). Received: {mode!r}")
        log(f"  timing {mode} ...")
        if mode == "eager":
            target, jit = model, None
        elif mode == "function":
            target, jit = model, False
        elif mode in ("function_folded", "xla"):
            target, jit = _variant(model, config, fold=True), mode == "xla"
        else:
            target = _variant(model, config, "bfloat16", fold=mode.endswith("folded"))
            jit = False
        if jit is None:
            fn = lambda: target(images, training=False)  # noqa: E731
        else:
            compiled = tf.function(lambda x, m=target: m(x, training=False), jit_compile=jit)
            fn = (lambda f: lambda: f(images))(compiled)
        seconds = time_call(fn, warmup=warmup, repeats=repeats)
        results.append(Result(f"inference/{mode}", batch_size, seconds, 2.0 * madds,
                              precision=precision_of(mode)))
    return results


def agreement(config: ModelConfig, height: int, width: int, seed: int = 0) -> Dict[str, float]:
    """Max relative logit difference and argmax agreement of folded / bfloat16 vs float32
    (``randomize_weights``: realistic batch-norm statistics, so logits are O(1))."""
    import tensorflow as tf

    from deeplab_tf.model import build_model

    model = randomize_weights(build_model(config), seed)
    rng = np.random.default_rng(seed)
    images = tf.constant(rng.uniform(0, 255, (1, height, width, 3)).astype(np.float32))
    reference = model(images, training=False).numpy()
    scale = np.abs(reference).max()
    got = _variant(model, config, fold=True)(images, training=False).numpy()
    out = {"folded_max_rel_diff": float(np.abs(got - reference).max() / scale),
           "folded_argmax_agreement": float((got.argmax(-1) == reference.argmax(-1)).mean())}
    half = _variant(model, config, "bfloat16", fold=True)
    got = half(images, training=False).numpy()
    out["bfloat16_argmax_agreement"] = float((got.argmax(-1) == reference.argmax(-1)).mean())
    return out


def format_table(results: List[Result], peak, extra: Optional[Dict[str, str]] = None) -> str:
    """Aligned text table: time, images/s, GFLOP/s and utilisation per result.

    ``peak``: ``timing.peak_flops``' dict (each row against the peak of its own precision,
    float32's where that precision was not measured) or one number (every row against it).
    """
    peaks = peak.get("peaks", {"float32": peak["peak_flops"]}) if isinstance(peak, dict) \
        else {"float32": float(peak)}
    lines = [f"{'benchmark':32s} {'batch':>5s} {'time (s)':>10s} {'images/s':>10s} "
             f"{'GFLOP/s':>9s} {'util.':>6s} of"]
    for r in results:
        limit = peaks.get(r.precision, peaks["float32"])
        util = 100 * r.utilisation(limit) if r.flops else float("nan")
        against = r.precision if r.precision in peaks else "float32"
        lines.append(f"{r.name:32s} {r.batch_size:5d} {r.seconds:10.4f} "
                     f"{r.images_per_second:10.2f} {r.flops / r.seconds / 1e9:9.1f} "
                     f"{util:5.1f}% {against}")
    for key, value in (extra or {}).items():
        lines.append(f"{key}: {value}")
    return "\n".join(lines)
