"""Ready-made benchmark runs: the recipes' model configurations and the GPU suite that
``benchmarks/gpu.sh`` prints (``--smoke``: a tiny version that runs anywhere in minutes).
"""

from __future__ import annotations

import time

from deeplab_tf.config import ModelConfig

# The original's model-zoo heads: ASPP rates and decoder for the big backbones.
RECIPES = {
    "xception_65": dict(atrous_rates=(6, 12, 18), decoder_output_stride=(4,)),
    "xception_41": dict(atrous_rates=(6, 12, 18), decoder_output_stride=(4,)),
    "xception_71": dict(atrous_rates=(6, 12, 18), decoder_output_stride=(4,)),
    "mobilenet_v2": dict(),
}


def recipe_config(model_variant: str, num_classes: int = 21, output_stride: int = 16,
                  **overrides) -> ModelConfig:
    """The PASCAL VOC recipe's ModelConfig of ``model_variant`` (OS16 eval heads)."""
    return ModelConfig(model_variant=model_variant, num_classes=num_classes,
                       output_stride=output_stride,
                       **{**RECIPES.get(model_variant, {}), **overrides})


def _gpu_plan(smoke: bool):
    """(variants, size, batch, training combinations, inference contenders, rounds, steps)."""
    if smoke:
        tiny = recipe_config("mobilenet_v2", 3, depth_multiplier=0.25)
        return {"mobilenet_v2 (tiny)": tiny}, 65, 2, {"mobilenet_v2 (tiny)": [
            ("float32", False, "one_device"), ("float32", False, "mirrored")]}, \
            ("tf_function", "tf_folded"), 1, 1
    variants = {"xception_65": recipe_config("xception_65"),
                "mobilenet_v2": recipe_config("mobilenet_v2")}
    train = {
        "xception_65": [("float32", False, "one_device"), ("bfloat16", False, "one_device"),
                        ("float16", False, "one_device"), ("bfloat16", True, "one_device"),
                        ("float32", False, "mirrored")],
        "mobilenet_v2": [("float32", False, "one_device"), ("bfloat16", True, "one_device")],
    }
    return variants, 513, 8, train, ("tf_function", "tf_folded", "tf_frozen"), 10, 3


def gpu_suite(smoke: bool = False, log=print) -> dict:
    """Training images/s (precisions, +-XLA, MirroredStrategy on one device) and inference
    latency for xception_65 and mobilenet_v2; prints the tables; returns them as text."""
    from deeplab_tf.bench.compare import compare, format_comparison
    from deeplab_tf.bench.contenders import Setup
    from deeplab_tf.bench.train import format_train, train_benchmarks
    from deeplab_tf.runtime.hardware import detect, resolve_mixed_precision
    from deeplab_tf.runtime.onednn import prefer_onednn

    started = time.perf_counter()
    variants, size, batch, train, contenders, rounds, steps = _gpu_plan(smoke)
    hardware = detect()
    log(f"machine: {hardware.describe()}")
    log("mixed_precision=auto -> %s (%s)" % resolve_mixed_precision("auto", hardware))
    log(f"kernels: {prefer_onednn()}")
    tables = {}
    for name, config in variants.items():
        results = []
        for precision, jit, strategy in train[name]:
            rows = train_benchmarks(config.to_dict(), size, size, batch, (precision,), (jit,),
                                    steps=steps, strategy=strategy, log=log)
            for row in rows:
                if strategy != "one_device":
                    row.precision += f" {strategy}"
            results += rows
        tables[f"{name} training"] = format_train(results)
        log(f"\n## {name}: training, {size}x{size}\n" + tables[f"{name} training"])
        report = compare(Setup(config.to_dict(), size, size), contenders, rounds=rounds, log=log)
        tables[f"{name} inference"] = format_comparison(report)
        log(f"\n## {name}: inference\n" + tables[f"{name} inference"] + "\n")
    log(f"total {time.perf_counter() - started:.0f} s")
    return tables
