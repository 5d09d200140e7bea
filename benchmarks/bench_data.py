"""Data benchmark: conversion throughput with 1 and 2 workers, and the training input pipeline
with full augmentation at a 513x513 crop, on a synthetic VOC-sized dataset (not a test).

Usage:
  .venv/bin/python benchmarks/bench_data.py [--num_images=96] [--batches=16] [--workdir=DIR]
"""

import argparse
import os
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from deeplab_tf.bench import data as benchmark  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num_images", type=int, default=96)
    parser.add_argument("--height", type=int, default=375)
    parser.add_argument("--width", type=int, default=500)
    parser.add_argument("--workers", default="1,2", help="Worker counts to time, e.g. 1,2")
    parser.add_argument("--crop", type=int, default=513)
    parser.add_argument("--batch_size", type=int, default=4)
    parser.add_argument("--batches", type=int, default=16)
    parser.add_argument("--workdir", default=None, help="Default: a temporary folder.")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        results = benchmark.run_benchmark(
            args.workdir or tmp, num_images=args.num_images, image_size=(args.height, args.width),
            workers=[int(w) for w in args.workers.split(",")], crop_size=(args.crop, args.crop),
            batch_size=args.batch_size, num_batches=args.batches)
    print(benchmark.format_results(results))


if __name__ == "__main__":
    main()
