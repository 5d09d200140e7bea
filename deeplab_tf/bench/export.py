"""Export benchmark: batch-1 latency and size on disk of the Keras model, the SavedModel
(with and without batch-norm folding) and each TFLite mode, side by side (one process, rounds
that call every path in turn; not a test).

Weights are random (batch-norm statistics set from one batch), so latency and size are the
real ones; agreement figures are in tests/test_export_tflite.py (on a trained model). For the
runtimes compared each in its own process (OpenVINO, ONNX Runtime, ...) see ``bench.compare``.
Run by ``benchmarks/bench_export.py``.
"""

import os
import statistics
import time

import numpy as np
import tensorflow as tf

from deeplab_tf.config import ExportConfig, ModelConfig
from deeplab_tf.inference import predict_labels
from deeplab_tf.export.saved_model import directory_size, export_saved_model
from deeplab_tf.export.litert import LiteRTModel
from deeplab_tf.export.tflite import export_tflite
from deeplab_tf.model import build_model

# The original's model-zoo configurations (PASCAL VOC, 21 classes, eval output stride 16).
CONFIGS = {
    "mobilenet_v2": dict(model_variant="mobilenet_v2", output_stride=16),
    "xception_65": dict(model_variant="xception_65", output_stride=16, atrous_rates=(6, 12, 18),
                        decoder_output_stride=(4,)),
}
MODES = ("float32", "float16", "dynamic_range", "int8")


def _set_batch_norm_statistics(model, images):
    """One training-mode pass with momentum 0: realistic activations for int8 calibration."""
    import keras

    layers = [layer for layer in model._flatten_layers()
              if isinstance(layer, keras.layers.BatchNormalization)]
    momenta = [layer.momentum for layer in layers]
    for layer in layers:
        layer.momentum = 0.0
    model(images, training=True)
    for layer, momentum in zip(layers, momenta):
        layer.momentum = momentum


def _time_round_robin(paths, repeats):
    """{name: (median, best) seconds}: one warm-up call each, then ``repeats`` rounds that
    call every path once, so load from other processes spreads evenly over the paths."""
    for fn in paths.values():
        fn()  # warm-up (tracing, allocation)
    times = {name: [] for name in paths}
    for _ in range(repeats):
        for name, fn in paths.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {name: (statistics.median(t), min(t)) for name, t in times.items()}


def bench_variant(name, size, repeats, workdir, calibration_steps, threads):
    config = ModelConfig(num_classes=21, **CONFIGS[name])
    model = build_model(config)
    rng = np.random.default_rng(0)
    images = rng.uniform(0, 255, (calibration_steps, size, size, 3)).astype(np.float32)
    _set_batch_norm_statistics(model, images[:2])
    image = images[:1]
    pixels = image.astype(np.uint8)
    paths, sizes, notes = {}, {}, {}

    keras_fn = tf.function(lambda x: predict_labels(model, x),
                           input_signature=[tf.TensorSpec([1, size, size, 3], tf.float32)])
    paths["keras"] = lambda: keras_fn(image).numpy()
    sizes["keras"] = sum(int(np.prod(v.shape)) * 4 for v in model.variables)
    notes["keras"] = "float32 variables"

    for path_name, fold in (("saved_model", False), ("saved_model_folded", True)):
        start = time.perf_counter()
        path = export_saved_model(model, config, ExportConfig(fold_batch_norm=fold),
                                  os.path.join(workdir, path_name))
        notes[path_name] = f"export {time.perf_counter() - start:.0f} s"
        signature = tf.saved_model.load(path).signatures["predict_images"]
        paths[path_name] = (lambda f: lambda: f(images=tf.constant(pixels))[
            "semantic_predictions"].numpy())(signature)
        sizes[path_name] = directory_size(path)

    for mode in MODES:
        export_config = ExportConfig(format="tflite", crop_size=(size, size), tflite_mode=mode,
                                     model_name=name)
        start = time.perf_counter()
        result = export_tflite(model, config, export_config, os.path.join(workdir, "tflite"),
                               representative_images=(x[None] for x in images))
        notes[f"tflite_{mode}"] = f"convert {time.perf_counter() - start:.0f} s"
        runner = LiteRTModel(result["path"], num_threads=threads)
        tflite_input = pixels if mode == "int8" else image
        paths[f"tflite_{mode}"] = (lambda r, x: lambda: r.predict(x))(runner, tflite_input)
        sizes[f"tflite_{mode}"] = result["size_bytes"]
        print(f"  {name}: exported tflite_{mode}", flush=True)

    rows = []
    for path_name, (median, best) in _time_round_robin(paths, repeats).items():
        rows.append({"variant": name, "path": path_name, "latency_ms": round(median * 1e3, 1),
                     "best_ms": round(best * 1e3, 1), "size_mb": round(sizes[path_name] / 1e6, 2),
                     "note": notes[path_name]})
        print(f"  {name:13s} {path_name:20s} {median * 1e3:9.1f} ms (best {best * 1e3:.1f})"
              f"  {sizes[path_name] / 1e6:8.2f} MB  ({notes[path_name]})", flush=True)
    return rows
