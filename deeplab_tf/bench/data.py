"""Throughput of the data path: conversion (images/s per worker count) and the training input
pipeline with full augmentation (images/s), on a synthetic VOC-sized dataset.

Used by ``benchmarks/bench_data.py`` and ``deeplab-bench --pipeline_dataset_dir``; not a test.

Example:
    >>> results = run_benchmark("/tmp/bench", num_images=96)
    >>> print(format_results(results))
"""

from __future__ import annotations

import os
import shutil
import time
from typing import Dict, Sequence, Tuple

import numpy as np
from PIL import Image

from deeplab_tf.data.converters import folder
from deeplab_tf.data.converters.conversion import convert_dataset
from deeplab_tf.data.converters.labels import read_index_png


def make_synthetic_dataset(root: str, num_images: int = 96, size: Tuple[int, int] = (375, 500),
                           num_classes: int = 21, seed: int = 0) -> Tuple[str, str]:
    """Writes JPEG images and index-PNG masks (VOC-like sizes and content); returns the dirs."""
    rng = np.random.default_rng(seed)
    image_dir = os.path.join(root, "images")
    label_dir = os.path.join(root, "masks")
    os.makedirs(image_dir, exist_ok=True)
    os.makedirs(label_dir, exist_ok=True)
    height, width = size
    yy, xx = np.mgrid[0:height, 0:width]
    for i in range(num_images):
        cells = rng.integers(0, num_classes, (height // 40 + 1, width // 40 + 1))
        label = np.repeat(np.repeat(cells, 40, 0), 40, 1)[:height, :width].astype(np.uint8)
        label[(yy + xx + i) % 97 == 0] = 255  # Thin ignored lines, as VOC's boundaries.
        base = rng.integers(0, 256, (num_classes + 1, 3))
        image = base[np.minimum(label, num_classes)] + rng.normal(0, 12, (height, width, 3))
        image = np.clip(image, 0, 255).astype(np.uint8)
        Image.fromarray(image).save(os.path.join(image_dir, f"{i:05d}.jpg"), quality=90)
        Image.fromarray(label).save(os.path.join(label_dir, f"{i:05d}.png"))
    return image_dir, label_dir


def time_conversion(image_dir: str, label_dir: str, output_dir: str, num_workers: int,
                    num_classes: int = 21, num_shards: int = 8) -> Dict[str, float]:
    """Converts the folder; returns images/s over the whole run and after the first 10% of the
    images (the latter leaves out worker start-up, which large datasets amortise)."""
    shutil.rmtree(output_dir, ignore_errors=True)
    splits = folder.collect_splits(image_dir, label_dir, read_index_png)
    total = sum(len(s) for s in splits.values())
    stamps = []
    start = time.perf_counter()
    convert_dataset(
        output_dir=output_dir, dataset_name="bench", ignore_label=255,
        class_names=[f"c{i}" for i in range(num_classes)], splits=splits,
        num_shards=num_shards, num_workers=num_workers, show_progress=False,
        on_progress=lambda n: stamps.append((time.perf_counter(), n)))
    elapsed = time.perf_counter() - start
    # Steady rate: from the moment 10% of the images were done to the last one.
    steady, done = total / elapsed, 0
    for stamp, count in stamps:
        done += count
        if done >= 0.1 * total:
            if stamps[-1][0] > stamp:
                steady = (total - done) / (stamps[-1][0] - stamp)
            break
    return {"images": total, "seconds": elapsed, "images_per_s": total / elapsed,
            "steady_images_per_s": steady}


def time_pipeline(dataset_dir: str, crop_size: Sequence[int] = (513, 513), batch_size: int = 4,
                  num_batches: int = 16, warmup_batches: int = 2, dataset: str = "",
                  split: str = "train") -> Dict[str, float]:
    """images/s of ``train_dataset`` with the original's full augmentation (scale 0.5-2.0 in
    0.25 steps, pad, crop, flip) at ``crop_size``.

    Args:
        dataset_dir: str. Converted shards.
        dataset: str. Registry name; "" for the manifest in ``dataset_dir``.
        split: str. Split to read.
    """
    from deeplab_tf.config import DataConfig
    from deeplab_tf.data import pipeline

    config = DataConfig(dataset=dataset, dataset_dir=dataset_dir, train_split=split,
                        train_crop_size=tuple(crop_size), min_scale_factor=0.5,
                        max_scale_factor=2.0, scale_factor_step_size=0.25)
    iterator = iter(pipeline.train_dataset(config, batch_size=batch_size, mean_pixel=127.5))
    for _ in range(warmup_batches):
        next(iterator)
    start = time.perf_counter()
    for _ in range(num_batches):
        images, _ = next(iterator)
    images.numpy()
    elapsed = time.perf_counter() - start
    return {"images": num_batches * batch_size, "seconds": elapsed,
            "images_per_s": num_batches * batch_size / elapsed}


def pipeline_throughput(dataset_dir: str, crop_size: Sequence[int] = (513, 513),
                        batch_size: int = 4, num_batches: int = 16, dataset: str = "",
                        split: str = "train") -> float:
    """images/s of the training input pipeline (see ``time_pipeline``)."""
    return time_pipeline(dataset_dir, crop_size, batch_size, num_batches, dataset=dataset,
                         split=split)["images_per_s"]


def run_benchmark(workdir: str, num_images: int = 96, image_size: Tuple[int, int] = (375, 500),
                  workers: Sequence[int] = (1, 2), crop_size: Sequence[int] = (513, 513),
                  batch_size: int = 4, num_batches: int = 16) -> dict:
    """Both benchmarks on one synthetic dataset; returns their figures."""
    image_dir, label_dir = make_synthetic_dataset(os.path.join(workdir, "raw"), num_images, image_size)
    results = {"conversion": {}, "num_images": num_images, "image_size": list(image_size)}
    output_dir = os.path.join(workdir, "shards")
    for count in workers:
        results["conversion"][count] = time_conversion(image_dir, label_dir, output_dir, count)
    results["pipeline"] = time_pipeline(output_dir, crop_size, batch_size, num_batches)
    results["pipeline"]["crop_size"] = list(crop_size)
    return results


def format_results(results: dict) -> str:
    height, width = results["image_size"]
    lines = [f"Synthetic dataset: {results['num_images']} JPEG images {height}x{width} + PNG masks"]
    for count, figures in results["conversion"].items():
        lines.append(
            f"conversion, {count} worker(s): {figures['images_per_s']:.1f} images/s overall "
            f"({figures['steady_images_per_s']:.1f} images/s after start-up; "
            f"{figures['seconds']:.2f} s)")
    p = results["pipeline"]
    lines.append(
        f"input pipeline, full training augmentation, {p['crop_size'][0]}x{p['crop_size'][1]} "
        f"crop: {p['images_per_s']:.1f} images/s ({p['images']} images in {p['seconds']:.2f} s)")
    return "\n".join(lines)
