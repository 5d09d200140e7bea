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
from PIL import Image

from deeplab_tf.fileio import atomic_path
from deeplab_tf import metrics


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


def write_confusion_matrix_png(path: str, cm, class_names: Sequence[str]) -> None:
    """Picture of the confusion matrix (matplotlib, Agg backend), written atomically as PNG.

    Rows are ground truth, columns predictions, both labelled with the class names; a cell's
    colour is the fraction of that ground-truth class's pixels predicted as the column's class
    (each row sums to 1, so the diagonal is the per-class recall), with a colour scale. Up to
    30 classes every cell also shows its percentage; above that the names are thinned to stay
    readable and the cells carry colour only.
    """
    import io

    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    cm = np.asarray(cm, dtype=np.float64)
    num = cm.shape[0]
    totals = cm.sum(axis=1, keepdims=True)
    normalized = np.divide(cm, totals, out=np.zeros_like(cm), where=totals > 0)
    names = [str(n)[:20] for n in class_names]
    side = float(np.clip(0.45 * num + 2.5, 4.0, 24.0))
    figure = Figure(figsize=(side + 1.5, side), dpi=100)
    axes = figure.add_subplot()
    shown = axes.imshow(normalized, cmap="Blues", vmin=0.0, vmax=1.0)
    colorbar = figure.colorbar(shown, ax=axes, fraction=0.046, pad=0.04)
    colorbar.set_label("fraction of the ground-truth class's pixels")
    step = max(1, int(math.ceil(num / 60)))
    ticks = list(range(0, num, step))
    axes.set_xticks(ticks, [names[i] for i in ticks], rotation=90, fontsize=8)
    axes.set_yticks(ticks, [names[i] for i in ticks], fontsize=8)
    axes.set_xlabel("predicted class")
    axes.set_ylabel("ground-truth class")
    axes.set_title(f"Confusion matrix ({int(cm.sum())} pixels)")
    if num <= 30:
        for i in range(num):
            for j in range(num):
                value = normalized[i, j]
                axes.text(j, i, f"{100 * value:.0f}%", ha="center", va="center", fontsize=7,
                          color="white" if value > 0.5 else "black")
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    buffer.seek(0)
    with Image.open(buffer) as image:
        rgb = image.convert("RGB")
    with atomic_path(path) as tmp:
        rgb.save(tmp, format="PNG")
