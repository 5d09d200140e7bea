"""deeplab-bench: speed of a model config on this machine, against the machine's own peak.

    deeplab-bench --flagfile=configs/pascal_voc_seg/xception65_os16.flags --crop_size=513,513

Prints what ``auto`` picks on this machine, and why (``--inference_precision`` for deeplab-eval,
deeplab-vis and the SavedModel; ``--mixed_precision`` for deeplab-train). Measures, in one
run: the machine's peak per precision (float32 and bfloat16: the better of a large matmul and
a large 3x3 conv in TensorFlow; int8: that conv quantized, in LiteRT and OpenVINO); params and
multiply-adds; inference latency at batch 1 (eager, tf.function, batch norm folded, XLA,
bfloat16) and throughput at --batch_size; optionally training-step images/s (float32 and
bfloat16, with and without XLA), the input pipeline's images/s, SavedModel and TFLite
latency; peak memory. Prints a table (time, images/s, GFLOP/s, utilisation = 2 x
multiply-adds / time / the peak of the row's precision) and writes everything to
--output_json.

Side by side (``--contenders`` and/or ``--compare_frozen_graph``; instead of the above):

    deeplab-bench --model_variant=mobilenet_v2 --crop_size=513,513 \\
        --contenders=tf_folded,tf_frozen,openvino,onnxruntime,tflite \\
        [--compare_frozen_graph=frozen_inference_graph.pb] [--checkpoint_path=CKPT] \\
        [--compare_rounds=5]

times each contender in its own process in alternating rounds (``bench.compare``) and prints
its table: median, spread, ratios to the fastest, to tf_function and to the original's graph,
GFLOP/s, utilisation of the peak measured in the same run, argmax agreement with tf_function.
"""

from __future__ import annotations

import json
import os
import platform

from deeplab_tf.cli._common import run_app
from deeplab_tf.cli.flags import bench as bench_flags
from deeplab_tf.cli.flags import data, export, inference, model, parse_size
from deeplab_tf.errors import UserError
from deeplab_tf.fileio import atomic_write_text
from deeplab_tf.runtime.onednn import prefer_onednn

_CROP_SIZE = export.CROP_SIZE
_BATCH_SIZE = bench_flags.BATCH_SIZE
_MODES = bench_flags.MODES
_REPEATS = bench_flags.REPEATS
_THROUGHPUT = bench_flags.THROUGHPUT
_TRAIN = bench_flags.TRAIN
_TRAIN_BATCH_SIZE = bench_flags.BENCH_TRAIN_BATCH_SIZE
_TRAIN_JIT = bench_flags.TRAIN_JIT
_PIPELINE_DIR = bench_flags.PIPELINE_DATASET_DIR
_SAVED_MODEL = bench_flags.SAVED_MODEL_DIR
_TFLITE = bench_flags.TFLITE_MODEL
_AGREEMENT = bench_flags.AGREEMENT
_OUTPUT_JSON = bench_flags.OUTPUT_JSON


def _bool_list(values, name):
    out = []
    for v in values:
        if v.lower() not in ("true", "false"):
            raise UserError(f"--{name} takes true/false values. Received: --{name}={v}")
        out.append(v.lower() == "true")
    return out


def _time_saved_model(path, height, width, repeats):
    import tensorflow as tf

    from deeplab_tf.bench.timing import time_call

    loaded = tf.saved_model.load(path)
    fn = loaded.signatures["predict_images"]
    images = tf.cast(tf.random.uniform([1, height, width, 3], 0, 255), tf.uint8)
    arg = list(fn.structured_input_signature[1])[0]
    return time_call(lambda: fn(**{arg: images}), warmup=1, repeats=repeats)


def _saved_model_precision(path) -> str:
    """The precision a SavedModel export computes in (its deeplab_export.json; float32 for
    exports that do not say)."""
    from deeplab_tf.export.saved_model import METADATA_FILE

    try:
        with open(os.path.join(path, "assets.extra", METADATA_FILE)) as f:
            return json.load(f).get("precision", "float32")
    except (OSError, ValueError):
        return "float32"


def _time_tflite(path, repeats):
    import numpy as np
    from ai_edge_litert.interpreter import Interpreter

    from deeplab_tf.bench.timing import time_call

    interpreter = Interpreter(model_path=path, num_threads=os.cpu_count())
    interpreter.allocate_tensors()
    detail = interpreter.get_input_details()[0]
    data = np.random.default_rng(0).uniform(0, 255, detail["shape"]).astype(detail["dtype"])

    def call():
        interpreter.set_tensor(detail["index"], data)
        interpreter.invoke()

    return time_call(call, warmup=1, repeats=repeats)


def _comparing() -> bool:
    """Whether this run is the side-by-side comparison (--contenders or --compare_frozen_graph)."""
    return bench_flags.CONTENDERS.present or bool(bench_flags.COMPARE_FROZEN_GRAPH.value)


def _check_comparison_flags():
    """The comparison's flags checked before any work: one-line errors naming the flag."""
    if inference.CHECKPOINT_PATH.value and not _comparing():
        raise UserError("--checkpoint_path is read by the comparison only (--contenders or "
                        "--compare_frozen_graph); the in-process modes time random weights")
    if not _comparing():
        return
    from deeplab_tf.bench import contenders as contenders_lib

    contenders_lib.check_contenders(bench_flags.CONTENDERS.value or (),
                                    bench_flags.COMPARE_FROZEN_GRAPH.value)
    if bench_flags.COMPARE_FROZEN_GRAPH.value:  # readable, with the original's nodes
        contenders_lib.load_graph_def(bench_flags.COMPARE_FROZEN_GRAPH.value)
    _assignments(bench_flags.CONTENDER_ENV)
    _assignments(bench_flags.ORIGINAL_ENV)


def _assignments(holder) -> dict:
    """{NAME: VALUE} of a repeatable NAME=VALUE flag; UserError naming it otherwise."""
    out = {}
    for text in holder.value or ():
        name, equals, value = text.partition("=")
        if not equals or not name:
            raise UserError(f"--{holder.name} takes NAME=VALUE. Received: --{holder.name}={text}")
        out[name] = value
    return out


def _compare(config, height, width, stats, choices):
    """The side-by-side comparison (``bench.compare``): prints the table, writes the JSON.

    Weights: --checkpoint_path's (resolved and loaded here first, so that a bad checkpoint
    is one error before any process starts), else random ones with realistic batch-norm
    statistics.
    """
    from deeplab_tf.bench import compare as compare_lib
    from deeplab_tf.bench import contenders as contenders_lib
    from deeplab_tf.bench.timing import load_average

    frozen_graph = bench_flags.COMPARE_FROZEN_GRAPH.value
    names = contenders_lib.check_contenders(
        bench_flags.CONTENDERS.value or contenders_lib.available_contenders(), frozen_graph)
    checkpoint = inference.CHECKPOINT_PATH.value
    if checkpoint:
        from deeplab_tf.checkpoints.paths import resolve_checkpoint_path
        from deeplab_tf.checkpoints.strict import load_for_inference
        from deeplab_tf.model import build_model

        checkpoint = resolve_checkpoint_path(checkpoint)
        load_for_inference(build_model(config), checkpoint, config)
    setup = contenders_lib.Setup(
        config.to_dict(), height, width, checkpoint_path=checkpoint, frozen_graph=frozen_graph,
        scenes=bench_flags.COMPARE_SCENES.value,
        calibration_images=bench_flags.COMPARE_CALIBRATION_IMAGES.value)
    print(f"comparing {', '.join(dict.fromkeys([contenders_lib.REFERENCE, *names]))}"
          f"{', original' if frozen_graph else ''}; {bench_flags.COMPARE_ROUNDS.value} rounds; "
          f"weights: {checkpoint or 'random'}", flush=True)
    ours = _assignments(bench_flags.CONTENDER_ENV)
    environments = {name: dict(ours) for name in names + (contenders_lib.REFERENCE,)}
    environments["original"] = _assignments(bench_flags.ORIGINAL_ENV)
    if ours or environments["original"]:
        print(f"contenders' environment: {ours or 'inherited'}; original's: "
              f"{environments['original'] or 'TensorFlow defaults for this CPU'}", flush=True)
    report = compare_lib.compare(setup, names, rounds=bench_flags.COMPARE_ROUNDS.value,
                                 environments=environments,
                                 log=lambda line: print(line, flush=True))
    table = compare_lib.format_comparison(report)
    print(table)
    print(f"load average at the end: {load_average()}")
    record = {"config": config.to_dict(), "height": height, "width": width, **stats,
              "machine": _machine(), "precision_choices": choices,
              "comparison": report.to_dict(), "table": table}
    atomic_write_text(_OUTPUT_JSON.value, json.dumps(record, indent=2))
    print(f"Wrote {_OUTPUT_JSON.value}")


def _train_rows(config, height, width, batch_size, jit_values, madds):
    """Rows of the table for the real Trainer step (``bench.train``), float32 and bfloat16."""
    from deeplab_tf.bench.model import Result
    from deeplab_tf.bench.train import train_benchmarks

    rows = []
    for r in train_benchmarks(config.to_dict(), height, width, batch_size,
                              ("float32", "bfloat16"), tuple(jit_values), steps=3):
        if r.summary:  # forward + two backward products: 3 x forward FLOPs
            rows.append(Result(r.name, batch_size, r.summary.median,
                               3 * 2.0 * madds * batch_size, r.reason, r.precision))
    return rows


def _precision_choices() -> dict:
    """What ``auto`` picks here, and why: ``--inference_precision`` (deeplab-eval, deeplab-vis,
    the SavedModel) and ``--mixed_precision`` (deeplab-train), as lines to print."""
    from deeplab_tf.runtime.hardware import (detect, resolve_inference_precision,
                                             resolve_mixed_precision)

    from deeplab_tf.bench.timing import machine_line

    hardware = detect()
    inference_choice = resolve_inference_precision(inference.INFERENCE_PRECISION.value,
                                                   hardware)
    return {"machine": machine_line(),
            "inference": f"--inference_precision={inference.INFERENCE_PRECISION.value} -> "
                         "%s (%s)" % inference_choice,
            "training": "--mixed_precision=auto -> %s (%s)" % resolve_mixed_precision(
                "auto", hardware)}


def _machine(**extra) -> dict:
    """The machine facts of the JSON record: processor, cores, kernels (onednn), ``extra``."""
    return {"processor": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(), "kernels": prefer_onednn(), **extra}


def main(argv):
    if len(argv) > 1:
        raise UserError(f"Unexpected arguments: {' '.join(argv[1:])}")
    _check_comparison_flags()
    from deeplab_tf.bench.model import (Result, agreement, format_table,
                                        inference_benchmarks)
    from deeplab_tf.bench.timing import (PRECISIONS, describe_peaks, load_average,
                                         peak_flops, peak_memory_mb, precision_of)
    from deeplab_tf.model import model_stats

    height, width = parse_size(_CROP_SIZE.value, "crop_size")
    config = model.model_config(num_classes=data.dataset_num_classes())
    jit_values = _bool_list(_TRAIN_JIT.value, "train_jit")
    print(f"deeplab-bench: {config.model_variant} OS{config.output_stride} "
          f"decoder={list(config.decoder_output_stride)} at {height}x{width}")
    stats = model_stats(config, height, width)
    print(f"params: {stats['params']:,}  multiply-adds: {stats['madds'] / 1e9:.2f}B")
    print(f"kernels: {prefer_onednn()}")
    choices = _precision_choices()
    for line in choices.values():
        print(line)
    if _comparing():
        return _compare(config, height, width, stats, choices)
    peak = peak_flops(precisions=PRECISIONS)
    print(f"machine peak: {peak['peak_flops'] / 1e9:.1f} GFLOP/s fp32 "
          f"(matmul {peak['matmul_flops'] / 1e9:.1f}, conv {peak['conv_flops'] / 1e9:.1f}); "
          f"per precision: {describe_peaks(peak)}")

    results = inference_benchmarks(config, height, width, 1, _MODES.value,
                                   repeats=_REPEATS.value)
    if _THROUGHPUT.value and _BATCH_SIZE.value > 1:
        best = min((r for r in results if r.name != "inference/eager"),
                   key=lambda r: r.seconds, default=None)
        mode = best.name.split("/", 1)[1] if best else "function"
        results += inference_benchmarks(config, height, width, _BATCH_SIZE.value, (mode,),
                                        repeats=max(2, _REPEATS.value // 2))
        results[-1].name += f"@batch{_BATCH_SIZE.value}"
    extra = {}
    if _SAVED_MODEL.value:
        seconds = _time_saved_model(_SAVED_MODEL.value, height, width, _REPEATS.value)
        precision = _saved_model_precision(_SAVED_MODEL.value)
        results.append(Result(f"inference/saved_model ({precision})", 1, seconds,
                              2.0 * stats["madds"], precision=precision))
    for path in _TFLITE.value or ():
        seconds = _time_tflite(path, _REPEATS.value)
        name = f"inference/tflite:{os.path.basename(path)}"
        results.append(Result(name, 1, seconds, 2.0 * stats["madds"],
                              precision=precision_of(name)))
    if _TRAIN.value:
        results += _train_rows(config, height, width, _TRAIN_BATCH_SIZE.value, jit_values,
                               stats["madds"])
    if _PIPELINE_DIR.value:
        from deeplab_tf.bench import data as data_benchmark

        rate = data_benchmark.pipeline_throughput(_PIPELINE_DIR.value, crop_size=(height, width))
        extra["input pipeline (images/s)"] = f"{rate:.1f}"
    if _AGREEMENT.value:
        for key, value in agreement(config, height, width).items():
            extra[key] = f"{value:.6g}"
    extra["peak memory (MiB)"] = f"{peak_memory_mb():.0f}"
    print(format_table(results, peak, extra))
    print(f"load average at the end: {load_average()}")

    peaks = peak["peaks"]
    record = {
        "config": config.to_dict(), "height": height, "width": width, **stats,
        "machine": _machine(**peak), "precision_choices": choices,
        "results": [{"name": r.name, "batch_size": r.batch_size, "seconds": r.seconds,
                     "images_per_second": r.images_per_second, "precision": r.precision,
                     "utilisation": r.utilisation(peaks.get(r.precision, peaks["float32"]))}
                    for r in results],
        **extra,
    }
    atomic_write_text(_OUTPUT_JSON.value, json.dumps(record, indent=2))
    print(f"Wrote {_OUTPUT_JSON.value}")


def run():
    run_app(main, "deeplab-bench")


if __name__ == "__main__":
    run()
