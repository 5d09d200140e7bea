"""Training benchmark: images/s of deeplab-train's own training step on synthetic data.

Runs the real loop (``deeplab_tf.train.loop.Trainer``: strategy.run step, softmax loss at
label size, weight decay, momentum SGD update) for one warm-up step (tracing / XLA compile,
not timed) and ``--steps`` timed steps, for each precision x XLA combination, and prints one
line per combination plus a JSON summary (not a test).

Usage (the issue's figure: xception_65 OS16 at 513x513, float32 / bfloat16, with and
without XLA):
  .venv/bin/python benchmarks/bench_train.py [--model_variant=xception_65] [--crop_size=513]
      [--batch_size=1] [--steps=2] [--precisions=float32,bfloat16] [--jit=false,true]
"""

import argparse
import gc
import json
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from deeplab_tf.config import ModelConfig, TrainConfig  # noqa: E402
from deeplab_tf.train.loop import Trainer  # noqa: E402

RECIPES = {  # the recipes' heads: ASPP rates and decoder for the big backbones
    "xception_65": dict(atrous_rates=(6, 12, 18), decoder_output_stride=(4,)),
    "mobilenet_v2": dict(),
}


def _dataset_fn(batch, size, num_classes):
    rng = np.random.default_rng(0)
    images = rng.uniform(0, 255, (batch, size, size, 3)).astype(np.float32)
    labels = rng.integers(0, num_classes, (batch, size, size, 1)).astype(np.int32)

    def dataset_fn(input_context):
        return tf.data.Dataset.from_tensors((images, labels)).repeat()

    return dataset_fn


def bench(args, precision, jit):
    model_config = ModelConfig(model_variant=args.model_variant, num_classes=args.num_classes,
                               output_stride=args.output_stride,
                               **RECIPES.get(args.model_variant, {}))
    train_config = TrainConfig(
        train_batch_size=args.batch_size, training_number_of_steps=1 + args.steps,
        base_learning_rate=1e-4, log_steps=1 + args.steps, save_interval_steps=1000,
        mixed_precision=precision, jit_compile=jit, strategy="one_device")
    with tempfile.TemporaryDirectory() as logdir:
        started = time.perf_counter()
        trainer = Trainer(model_config, train_config, train_logdir=logdir,
                          dataset_fn=_dataset_fn(args.batch_size, args.crop_size,
                                                 args.num_classes),
                          ignore_label=255)
        result = trainer.run()
        total = time.perf_counter() - started
    del trainer
    gc.collect()
    return {"precision": precision, "jit_compile": jit,
            "images_per_second": result.images_per_second,
            "seconds_per_step": args.batch_size / result.images_per_second,
            "total_seconds_with_warmup": total, "loss": result.loss}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model_variant", default="xception_65")
    parser.add_argument("--output_stride", type=int, default=16)
    parser.add_argument("--crop_size", type=int, default=513)
    parser.add_argument("--batch_size", type=int, default=1)
    parser.add_argument("--num_classes", type=int, default=21)
    parser.add_argument("--steps", type=int, default=2, help="timed steps after one warm-up")
    parser.add_argument("--precisions", default="float32,bfloat16")
    parser.add_argument("--jit", default="false,true")
    parser.add_argument("--output", default=None, help="also write the results as JSON")
    args = parser.parse_args()
    results = []
    for jit in [value.strip().lower() == "true" for value in args.jit.split(",")]:
        for precision in args.precisions.split(","):
            row = bench(args, precision, jit)
            results.append(row)
            print(f"{args.model_variant} OS{args.output_stride} {args.crop_size}x{args.crop_size} "
                  f"batch {args.batch_size} {precision:8s} jit={str(jit):5s} "
                  f"{row['images_per_second']:.3f} images/s ({row['seconds_per_step']:.2f} s/step; "
                  f"{row['total_seconds_with_warmup']:.0f} s with warm-up)", flush=True)
    summary = {"model_variant": args.model_variant, "output_stride": args.output_stride,
               "crop_size": args.crop_size, "batch_size": args.batch_size,
               "timed_steps": args.steps, "cpu_count": os.cpu_count(), "results": results}
    print(json.dumps(summary, indent=2))
    if args.output:
        with open(args.output, "w") as f:
            json.dump(summary, f, indent=2)


if __name__ == "__main__":
    main()
