"""Export benchmark: batch-1 latency at 513x513 and size on disk of the Keras model, the
SavedModel and each TFLite mode, side by side, for mobilenet_v2 and xception_65 (not a test).

Weights are random (batch-norm statistics set from one batch), so latency and size are the
real ones; agreement figures are in tests/test_export_tflite.py (on a trained model).

* keras: ``inference.predict_labels`` (deeplab-eval's path) in a ``tf.function``;
* saved_model: the exported ``predict_images`` signature (uint8 in, labels out), and with
  ``--fold_batch_norm``;
* tflite_<mode>: the LiteRT interpreter (``ai-edge-litert``), labels by in-graph ArgMax.

Usage:
  .venv/bin/python benchmarks/bench_export.py [--variants=mobilenet_v2,xception_65]
      [--size=513] [--repeats=mobilenet_v2:10,xception_65:3]
      [--output=bench_output/bench_export.json]
"""

import argparse
import json
import os
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402

from deeplab_tf.bench.export import bench_variant  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", default="mobilenet_v2,xception_65")
    parser.add_argument("--size", type=int, default=513)
    parser.add_argument("--repeats", default="mobilenet_v2:10,xception_65:3",
                        help="Timed rounds per variant (after one warm-up call per path).")
    parser.add_argument("--calibration_steps", type=int, default=4)
    parser.add_argument("--threads", type=int, default=os.cpu_count(),
                        help="LiteRT interpreter threads (TensorFlow uses every core).")
    parser.add_argument("--output", default="bench_output/bench_export.json")
    args = parser.parse_args()
    repeats = {k: int(v) for k, v in (item.split(":") for item in args.repeats.split(","))}
    print(f"Batch 1, {args.size}x{args.size}, {os.cpu_count()} CPU cores, TensorFlow "
          f"{tf.__version__}, LiteRT threads {args.threads}; median of the timed rounds "
          "(every path called in turn).")
    rows = []
    with tempfile.TemporaryDirectory() as workdir:
        for name in args.variants.split(","):
            rows += bench_variant(name, args.size, repeats.get(name, 3), workdir,
                                  args.calibration_steps, args.threads)
    print("\n| variant | path | latency (ms) | size (MB) |\n|---|---|---:|---:|")
    for row in rows:
        print(f"| {row['variant']} | {row['path']} | {row['latency_ms']} | {row['size_mb']} |")
    os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
    with open(args.output, "w") as f:
        json.dump({"size": args.size, "cpu_count": os.cpu_count(), "rows": rows}, f, indent=2)
    print(f"\nWrote {args.output}")


if __name__ == "__main__":
    main()
