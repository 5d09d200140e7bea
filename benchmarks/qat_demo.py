"""Quantization-aware training on the demo data, measured: float vs post-training int8 vs QAT
int8 mIoU, and int8 vs float latency in LiteRT and OpenVINO (issue 23; not a test).

Usage (after ``make demo``, from the repository root):
  .venv/bin/python benchmarks/qat_demo.py [--workdir=demo_output] [--qat_steps=200]
      [--qat_learning_rate=0.003] [--latency_size=513] [--rounds=10] [--threads=2]

Steps, each through the console scripts (the commands are printed; a step whose output exists
is reused):

1. quantization-aware fine-tuning of the demo's float model, as the original's
   g3doc/quantize.md recipe does (``--quantize_delay_step=0``, a small learning rate):
   ``deeplab-train --flagfile=configs/demo/mobilenetv2_dm05_demo.flags
   --tf_initial_checkpoint=W/train --quantize_delay_step=0 ...`` into ``W/qat``; and, as a
   control, the same fine-tuning without quantization into ``W/float_ft`` (so that what the
   extra steps alone give is not credited to quantization);
2. TFLite models at the demo's evaluation size (113x113): float32 and int8 post-training
   (calibrated on 100 training scenes) of both float checkpoints, int8 QAT (the QAT
   checkpoint, no calibration data);
3. mIoU of each on the 60 validation scenes, run in LiteRT (``LiteRTModel.predict_image``,
   the export's pre-processing), beside the TensorFlow graphs (float; QAT's quantized
   evaluation graph) with the same pre-processing;
4. latency at ``--latency_size`` (batch 1): the three TFLite models in LiteRT (XNNPACK), and
   OpenVINO (``deeplab-export --format=openvino``: the float graph compiled in float32, the
   QAT checkpoint's quantized evaluation graph, whose FakeQuant ops OpenVINO runs in int8),
   each in its own process, timed in alternating rounds (``bench.worker.Pool``), so load
   from other processes on the machine spreads over all contenders alike.

Prints a Markdown table with the machine line (CPU model and vector flags, /proc/cpuinfo).
"""

import argparse
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

RECIPE = os.path.join("configs", "demo", "mobilenetv2_dm05_demo.flags")
EVAL_SIZE = 113
VECTOR_FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "amx_int8", "amx_bf16")


def _run(module, *args):
    print("$ " + " ".join([f"python -m {module}", *args]), flush=True)
    started = time.time()
    subprocess.run([sys.executable, "-m", module, *args], check=True)
    print(f"({time.time() - started:.0f} s)", flush=True)


def _export(checkpoint, export_dir, *args):
    _run("deeplab_tf.cli.export", f"--flagfile={RECIPE}", f"--checkpoint_path={checkpoint}",
         f"--export_dir={export_dir}", "--overwrite", *args)


def machine_line() -> str:
    from deeplab_tf.runtime.hardware import parse_cpuinfo

    with open("/proc/cpuinfo") as f:
        model, flags = parse_cpuinfo(f.read())
    present = [flag for flag in VECTOR_FLAGS if flag in flags]
    return f"{model}, {os.cpu_count()} cores visible; flags: {' '.join(present)}"


def prepare(work, steps, learning_rate, latency_size):
    """Steps 1 and 2 (and the latency models): returns {name: path}."""
    records, float_dir = os.path.join(work, "tfrecord"), os.path.join(work, "train")
    out = os.path.join(work, "qat_export")
    if not os.path.exists(os.path.join(float_dir, "checkpoint")):
        sys.exit(f"error: no trained demo model in {float_dir}: run `make demo` first")
    checkpoints = {"float": float_dir}
    for name, extra in (("qat", ["--quantize_delay_step=0"]), ("float_ft", [])):
        checkpoints[name] = os.path.join(work, name)
        _run("deeplab_tf.cli.train", f"--flagfile={RECIPE}", f"--dataset_dir={records}",
             f"--train_logdir={checkpoints[name]}", f"--tf_initial_checkpoint={float_dir}",
             f"--training_number_of_steps={steps}", f"--base_learning_rate={learning_rate}",
             f"--save_interval_steps={steps}", *extra)
    calibration = [f"--calibration_dataset_dir={records}", "--calibration_split=train",
                   "--calibration_steps=100"]
    exports = {"eval": (("float32", "float", "float32"), ("int8_ptq", "float", "int8"),
                        ("float32_ft", "float_ft", "float32"), ("int8_ptq_ft", "float_ft", "int8"),
                        ("int8_qat", "qat", "int8")),
               "latency": (("float32", "float", "float32"), ("int8_ptq", "float", "int8"),
                           ("int8_qat", "qat", "int8"))}
    paths = {f"checkpoint/{name}": path for name, path in checkpoints.items()}
    for folder, size in (("eval", EVAL_SIZE), ("latency", latency_size)):
        directory = os.path.join(out, folder)
        crop = f"--crop_size={size},{size}"
        for name, checkpoint, mode in exports[folder]:
            path = os.path.join(directory, f"{name}_{mode}.tflite")
            if not os.path.exists(path):
                extra = calibration if name.startswith("int8_ptq") else []
                _export(checkpoints[checkpoint], directory, "--format=tflite",
                        f"--model_name={name}", f"--tflite_mode={mode}", crop, *extra)
            paths[f"{folder}/tflite_{name}"] = path
    directory = os.path.join(out, "latency")
    for name, checkpoint in (("float32", "float"), ("int8_qat", "qat")):
        xml = os.path.join(directory, f"openvino_{name}.xml")
        if not os.path.exists(xml):
            _export(checkpoints[checkpoint], directory, "--format=openvino",
                    f"--model_name=openvino_{name}", f"--crop_size={latency_size},{latency_size}")
        paths[f"latency/openvino_{name}"] = xml
    return paths


def _validation(records):
    import tensorflow as tf

    from deeplab_tf.data import schema

    dataset = tf.data.TFRecordDataset(schema.list_shards(records, "val")).map(
        schema.parse_example)
    for record in dataset:
        image = schema.decode_image(record[schema.IMAGE_ENCODED])
        label = schema.decode_label(record[schema.LABEL_ENCODED], image, 255).numpy()[..., 0]
        image = image.numpy()
        yield image, label


def _miou(predict, records, num_classes, ignore_label):
    from deeplab_tf import metrics

    total = None
    for image, label in _validation(records):
        cm = metrics.confusion_matrix(label, predict(image), num_classes,
                                      ignore_label=ignore_label).numpy()
        total = cm if total is None else total + cm
    return metrics.mean_iou(total)


def accuracy(work, paths):
    """Step 3: {contender: mIoU} on the validation scenes."""
    from deeplab_tf import inference
    from deeplab_tf.checkpoints.strict import load_for_inference
    from deeplab_tf.checkpoints.quantization import config_for_checkpoint
    from deeplab_tf.config import ModelConfig
    from deeplab_tf.export.litert import LiteRTModel
    from deeplab_tf.model import build_model

    records = os.path.join(work, "tfrecord")
    with open(os.path.join(records, "manifest.json")) as f:
        manifest = json.load(f)
    classes, ignore = manifest["num_classes"], manifest["ignore_label"]
    results = {}
    for key in sorted(k for k in paths if k.startswith("eval/")):
        runner = LiteRTModel(paths[key], num_threads=2)
        results[f"LiteRT {key.split('_', 1)[1]}"] = _miou(runner.predict_image, records,
                                                          classes, ignore)
        spec = runner.spec
    with open(os.path.join(paths["checkpoint/float"], "config.json")) as f:
        float_config = ModelConfig.from_dict(json.load(f)["model"])
    for name in ("float", "float_ft", "qat"):
        import tensorflow as tf

        path = tf.train.latest_checkpoint(paths[f"checkpoint/{name}"])
        config = config_for_checkpoint(float_config, path)
        model = build_model(config)
        load_for_inference(model, path, config)

        def predict(image, model=model):
            padded, sizes = inference.pad_inputs(image[None], spec)
            logits = inference.upsample_logits(model(padded, training=False),
                                               tf.shape(padded)[1:3])
            labels = tf.argmax(logits, axis=3, output_type=tf.int32)
            return inference.crop_outputs({inference.LABELS: labels}, sizes,
                                          spec)[inference.LABELS].numpy()[0]

        results[f"TensorFlow {name}" + (" (quantized graph)" if config.quantization
                                         else "")] = _miou(predict, records, classes, ignore)
    return results


def _litert_factory(path, threads):
    import numpy as np

    from deeplab_tf.export.litert import LiteRTModel

    runner = LiteRTModel(path, num_threads=threads)
    size = runner.input_size
    image = np.random.default_rng(0).integers(0, 256, (1, *size, 3)).astype(np.float32)
    return (lambda: runner.run(image).shape), {}


def _openvino_factory(xml, threads):
    import numpy as np
    import openvino

    from deeplab_tf.export.openvino import F32_CONFIG

    config = dict(F32_CONFIG)
    if threads:
        config["INFERENCE_NUM_THREADS"] = threads
    compiled = openvino.Core().compile_model(xml, "CPU", config)
    shape = compiled.input(0).get_shape()
    image = np.random.default_rng(0).integers(0, 256, tuple(shape)).astype(np.uint8)
    request = compiled.create_infer_request()
    return (lambda: request.infer({0: image})[compiled.output(0)].shape), {}


def latency(paths, rounds, threads):
    """Step 4: {contender: Summary} of batch-1 seconds, alternating rounds."""
    from deeplab_tf.bench.timing import Summary
    from deeplab_tf.bench.worker import Pool, Worker

    workers = []
    for key, path in paths.items():
        if not key.startswith("latency/"):
            continue
        name = key.split("/", 1)[1]
        factory = _openvino_factory if name.startswith("openvino") else _litert_factory
        workers.append(Worker(name, factory, (path, threads)))
    pool = Pool(workers)
    try:
        pool.round(0)  # warm-up
        times = {w.name: [] for w in workers}
        for index in range(rounds):
            for name, (seconds, _) in pool.round(index).items():
                times[name].append(seconds)
    finally:
        pool.close()
    return {name: Summary.of(values) for name, values in times.items()}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", default="demo_output")
    parser.add_argument("--qat_steps", type=int, default=200)
    parser.add_argument("--qat_learning_rate", type=float, default=0.003)
    parser.add_argument("--latency_size", type=int, default=513)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    work = os.path.abspath(args.workdir)
    paths = prepare(work, args.qat_steps, args.qat_learning_rate, args.latency_size)
    miou = accuracy(work, paths)
    timings = latency(paths, args.rounds, args.threads)
    print(f"\nmachine: {machine_line()}")
    print(f"QAT and its float control (_ft): {args.qat_steps} steps at base_learning_rate "
          f"{args.qat_learning_rate} from the demo's float checkpoint\n")
    print("| model (demo val, 60 scenes, 113x113) | mIoU |\n|---|---|")
    for name, value in miou.items():
        print(f"| {name} | {value:.4f} |")
    size = args.latency_size
    print(f"\n| runtime, {size}x{size}, batch 1, {args.threads} threads | median ms | "
          f"best..worst ms | vs float32 |\n|---|---|---|---|")
    for name, summary in timings.items():
        base = timings["openvino_float32" if name.startswith("openvino") else "tflite_float32"]
        print(f"| {name} | {summary.median * 1e3:.1f} | {summary.best * 1e3:.1f}.."
              f"{summary.worst * 1e3:.1f} | {base.median / summary.median:.2f}x |")


if __name__ == "__main__":
    main()
