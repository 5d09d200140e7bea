"""Writing evaluation results: the per-class table, results JSON, confusion matrix CSV and PNG.

Every file is written atomically (a temporary file renamed into place), so a reader polling
``eval_logdir`` during continuous evaluation never sees half a file.

* ``results_dict(result, class_names, **extra)``: the JSON-able summary (mIoU, per-class IoU by
  name, pixel accuracy, trimap results by width, confusion matrix).
* ``format_table(...)``: the plain-text per-class IoU table printed by deeplab-eval.
* ``write_json``, ``write_confusion_matrix_csv``, ``write_confusion_matrix_png``.
"""

from __future__ import annotations

import csv
import json
import math
from typing import Optional, Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from deeplab_tf.fileio import atomic_path
from deeplab_tf.evaluation import metrics


def class_names_for(num_classes: int, class_names: Optional[Sequence[str]] = None):
    """``class_names`` padded with ``class_<i>`` up to ``num_classes`` entries."""
    names = list(class_names or [])[:num_classes]
    return names + [f"class_{i}" for i in range(len(names), num_classes)]


def _number(value) -> Optional[float]:
    value = float(value)
    return None if math.isnan(value) else value


def summarize(cm, class_names: Sequence[str]) -> dict:
    """mIoU, pixel accuracy, per-class IoU (None for classes in neither ground truth nor
    prediction) and pixel counts of one confusion matrix."""
    cm = np.asarray(cm)
    iou = metrics.iou_per_class(cm)
    return {
        "miou": metrics.mean_iou(cm),
        "pixel_accuracy": metrics.pixel_accuracy(cm),
        "per_class_iou": {name: _number(v) for name, v in zip(class_names, iou)},
        "num_pixels": int(cm.sum()),
    }


def results_dict(result, class_names: Sequence[str], **extra) -> dict:
    """The results JSON of an ``evaluator.EvalResult``.

    Args:
        result: EvalResult.
        class_names: names of the classes (see ``class_names_for``).
        **extra: more top-level entries (checkpoint, step, scales, ...).
    """
    summary = summarize(result.confusion_matrix, class_names)
    out = dict(extra)
    out.update(summary)
    out["num_images"] = int(result.num_images)
    out["class_names"] = list(class_names)
    out["trimap"] = {str(width): summarize(cm, class_names)
                     for width, cm in sorted(result.trimap.items())}
    out["confusion_matrix"] = np.asarray(result.confusion_matrix).astype(int).tolist()
    return out


def format_table(results: dict) -> str:
    """Per-class IoU table (plus trimap columns) and the summary lines, as printed."""
    names = results["class_names"]
    widths = list(results.get("trimap", {}))
    width = max([len("class")] + [len(n) for n in names])
    header = f"{'class':<{width}}  {'IoU':>7}" + "".join(
        f"  {'trimap' + w:>9}" for w in widths)
    lines = [header, "-" * len(header)]

    def cell(value, size):
        return f"{'-':>{size}}" if value is None else f"{value:>{size}.4f}"

    for name in names:
        row = f"{name:<{width}}  {cell(results['per_class_iou'][name], 7)}"
        for w in widths:
            row += f"  {cell(results['trimap'][w]['per_class_iou'][name], 9)}"
        lines.append(row)
    lines.append("-" * len(header))
    row = f"{'mean':<{width}}  {results['miou']:>7.4f}"
    for w in widths:
        row += f"  {results['trimap'][w]['miou']:>9.4f}"
    lines.append(row)
    lines.append(f"pixel accuracy: {results['pixel_accuracy']:.4f} "
                 f"({results['num_images']} images)")
    return "\n".join(lines)


def write_json(path: str, data: dict) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "w") as f:
            json.dump(data, f, indent=2, sort_keys=False)
            f.write("\n")


def write_confusion_matrix_csv(path: str, cm, class_names: Sequence[str]) -> None:
    """CSV with a header row of predicted class names and one row per ground-truth class."""
    cm = np.asarray(cm)
    with atomic_path(path) as tmp:
        with open(tmp, "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["ground_truth\\prediction"] + list(class_names))
            for name, row in zip(class_names, cm):
                writer.writerow([name] + [int(v) for v in row])


def read_confusion_matrix_csv(path: str):
    """(cm int64 [C, C], class names) from ``write_confusion_matrix_csv``'s file."""
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    names = rows[0][1:]
    cm = np.array([[int(v) for v in row[1:]] for row in rows[1:]], dtype=np.int64)
    return cm, names


def _heat_color(value: np.ndarray) -> np.ndarray:
    """White (0) -> dark blue (1), uint8 RGB."""
    low = np.array([255.0, 255.0, 255.0])
    high = np.array([8.0, 48.0, 107.0])
    return (low + (high - low) * value[..., None]).round().astype(np.uint8)


def write_confusion_matrix_png(path: str, cm, class_names: Sequence[str]) -> None:
    """Heat map of the row-normalised confusion matrix (each ground-truth row sums to 1).

    Rows are ground truth, columns predictions, both in class order; a cell's darkness is the
    fraction of that class's pixels predicted as the column's class (the diagonal is the
    per-class recall). Class names label the axes when the cells are large enough to read.
    """
    cm = np.asarray(cm, dtype=np.float64)
    num = cm.shape[0]
    totals = cm.sum(axis=1, keepdims=True)
    normalized = np.divide(cm, totals, out=np.zeros_like(cm), where=totals > 0)
    cell = int(np.clip(720 // max(num, 1), 3, 32))
    font = ImageFont.load_default()
    labelled = cell >= 10
    names = [str(n)[:20] for n in class_names] if labelled else []
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    text_w = max([int(probe.textlength(n, font=font)) for n in names] + [0]) + 6
    margin = text_w if labelled else 4
    grid = np.kron(_heat_color(normalized), np.ones((cell, cell, 1), dtype=np.uint8))
    size = num * cell
    image = Image.new("RGB", (margin + size + 4, margin + size + 4), "white")
    image.paste(Image.fromarray(grid), (margin, margin))
    draw = ImageDraw.Draw(image)
    draw.rectangle([margin - 1, margin - 1, margin + size, margin + size], outline="black")
    if labelled:
        for i, name in enumerate(names):  # rows: ground truth
            draw.text((margin - 4 - probe.textlength(name, font=font),
                       margin + i * cell + (cell - 10) // 2), name, fill="black", font=font)
        top = Image.new("RGB", (margin, size), "white")  # column names, rotated upright
        top_draw = ImageDraw.Draw(top)
        for i, name in enumerate(names):
            top_draw.text((4, i * cell + (cell - 10) // 2), name, fill="black", font=font)
        image.paste(top.rotate(90, expand=True), (margin, 0))
    with atomic_path(path) as tmp:
        image.save(tmp, format="PNG")
