"""Training benchmark: images/s of deeplab-train's own training step on synthetic data.

Times ``deeplab_tf.train.loop.Trainer`` (the real step: loss with the ignore label, weight
decay, gradient multipliers, momentum update) for each precision x XLA combination, each in
its own process, after one warm-up step; prints a table and a JSON summary (not a test).
Calls ``deeplab_tf.bench.train``.

Usage (xception_65 OS16 decoder at 513x513, batch 2):
  .venv/bin/python benchmarks/bench_train.py [--model_variant=xception_65] [--crop_size=513]
      [--batch_size=2] [--steps=3] [--precisions=float32,bfloat16] [--jit=false,true]
"""

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from deeplab_tf.bench.suite import recipe_config  # noqa: E402
from deeplab_tf.bench.train import format_train, train_benchmarks  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model_variant", default="xception_65")
    parser.add_argument("--output_stride", type=int, default=16)
    parser.add_argument("--crop_size", type=int, default=513)
    parser.add_argument("--batch_size", type=int, default=2)
    parser.add_argument("--num_classes", type=int, default=21)
    parser.add_argument("--steps", type=int, default=3, help="timed steps after one warm-up")
    parser.add_argument("--precisions", default="float32,bfloat16",
                        help="float32, bfloat16, float16 or auto (hardware.resolve_mixed_precision)")
    parser.add_argument("--jit", default="false,true")
    parser.add_argument("--output", default=None, help="also write the results as JSON")
    args = parser.parse_args()
    config = recipe_config(args.model_variant, args.num_classes, args.output_stride)
    results = train_benchmarks(config.to_dict(), args.crop_size, args.crop_size, args.batch_size,
                               args.precisions.split(","),
                               [v.strip().lower() == "true" for v in args.jit.split(",")],
                               steps=args.steps)
    print(format_train(results))
    summary = {"model_variant": args.model_variant, "output_stride": args.output_stride,
               "crop_size": args.crop_size, "batch_size": args.batch_size,
               "results": [{"name": r.name, "images_per_second": r.images_per_second,
                            "reason": r.reason, "error": r.error} for r in results]}
    print(json.dumps(summary, indent=2))
    if args.output:
        with open(args.output, "w") as f:
            json.dump(summary, f, indent=2)


if __name__ == "__main__":
    main()
