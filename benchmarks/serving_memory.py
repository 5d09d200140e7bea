"""Peak memory of one serving request, by model and image cost: where ``max_image_pixels``'
default comes from (docs/reliability.md).

    python benchmarks/serving_memory.py [--settings demo,xception65_os8_ms_flip] \\
        [--costs 1e6,2e6,4e6] [--max_rss_gib 8]

For each setting (a built-in family at the demo's or a recipe's flags, random weights: memory
does not depend on their values) the model is exported as a SavedModel with no pixel limit
(deeplab-export's code path, batch norm folded); then, for each request cost (the pixels
``max_image_pixels`` limits: ``InferenceSpec.pixels``, the padded size times the scale/flip
passes), a fresh process loads the SavedModel, serves one small request (so the graph is
built and its one-off buffers allocated), resets its peak-RSS counter and serves one
single-colour PNG of that cost through ``serving_default``. It prints, per request, the peak
resident memory of the serving process (VmHWM), the memory it held before the request, and
the difference per million pixels of cost. A cost whose peak would pass ``--max_rss_gib``
(extrapolated from the previous ones) is skipped.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile

SETTINGS = {
    # name: (ModelConfig fields, ExportConfig fields): the demo's and the recipes' flags.
    "demo_mobilenetv2_dm05": (
        dict(model_variant="mobilenet_v2", depth_multiplier=0.5, output_stride=16,
             decoder_output_stride=(4,), num_classes=5), dict(eval_crop_size=(513, 513))),
    "voc_mobilenetv2_os16": (
        dict(model_variant="mobilenet_v2", output_stride=16, num_classes=21),
        dict(eval_crop_size=(513, 513))),
    "voc_xception65_os16": (
        dict(model_variant="xception_65", output_stride=16, atrous_rates=(6, 12, 18),
             decoder_output_stride=(4,), num_classes=21), dict(eval_crop_size=(513, 513))),
    "ade20k_xception65_os16": (
        dict(model_variant="xception_65", output_stride=16, atrous_rates=(6, 12, 18),
             decoder_output_stride=(4,), num_classes=151),
        dict(eval_crop_size=(513, 513), min_resize_value=513, max_resize_value=513,
             resize_factor=16)),
    "voc_xception65_os8_ms_flip": (
        dict(model_variant="xception_65", output_stride=8, atrous_rates=(12, 24, 36),
             decoder_output_stride=(4,), num_classes=21),
        dict(eval_crop_size=(513, 513), inference_scales=(0.5, 0.75, 1.0, 1.25, 1.5, 1.75),
             add_flipped_images=True)),
    "voc_xception65_os8": (
        dict(model_variant="xception_65", output_stride=8, atrous_rates=(12, 24, 36),
             decoder_output_stride=(4,), num_classes=21), dict(eval_crop_size=(513, 513))),
}


def _status(key: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    raise KeyError(key)


def _export(setting: str, path: str) -> None:
    from deeplab_tf.config import ExportConfig, ModelConfig
    from deeplab_tf.export.saved_model import export_saved_model
    from deeplab_tf.model import build_model

    model_fields, export_fields = SETTINGS[setting]
    config = ModelConfig(**model_fields)
    model = build_model(config)
    export_config = ExportConfig(max_image_pixels=0, export_version=1, **export_fields)
    print(export_saved_model(model, config, export_config, path), flush=True)


def _png(height: int, width: int) -> bytes:
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (120, 110, 100)).save(buffer, format="PNG")
    return buffer.getvalue()


def _request(setting: str, path: str, height: int, width: int) -> None:
    import tensorflow as tf

    from deeplab_tf.config import ExportConfig, ModelConfig
    from deeplab_tf.inference import InferenceSpec

    model_fields, export_fields = SETTINGS[setting]
    spec = InferenceSpec.from_export_config(ModelConfig(**model_fields),
                                            ExportConfig(**export_fields))
    signature = tf.saved_model.load(path).signatures["serving_default"]
    signature(image_bytes=tf.constant([_png(65, 65)]))
    data = _png(height, width)
    with open("/proc/self/clear_refs", "w") as f:  # reset VmHWM to the current RSS
        f.write("5")
    before = _status("VmRSS")
    outputs = signature(image_bytes=tf.constant([data]))
    assert int(outputs["image_height"][0]) == height
    peak = _status("VmHWM")
    print(json.dumps({"setting": setting, "height": height, "width": width,
                      "cost": float(spec.pixels(height, width)), "passes": spec.passes,
                      "rss_before": before, "peak_rss": peak}), flush=True)


def _side(setting: str, cost: float) -> int:
    """The square image side whose request costs about ``cost`` pixels."""
    from deeplab_tf.config import ExportConfig, ModelConfig
    from deeplab_tf.inference import InferenceSpec

    model_fields, export_fields = SETTINGS[setting]
    spec = InferenceSpec.from_export_config(ModelConfig(**model_fields),
                                            ExportConfig(**export_fields))
    if spec.resizes:  # resized to a fixed range: the decoded image is the cost
        return int(math.sqrt(cost))
    return int(math.sqrt(cost / spec.passes))


def _child(*args) -> str:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    result = subprocess.run([sys.executable, __file__, *map(str, args)], env=env,
                            capture_output=True, text=True)
    if result.returncode:
        return json.dumps({"error": result.stderr.strip().splitlines()[-1:],
                           "returncode": result.returncode})
    return result.stdout.strip().splitlines()[-1]


def main():
    if len(sys.argv) > 1 and sys.argv[1] in ("_export", "_request"):
        if sys.argv[1] == "_export":
            return _export(sys.argv[2], sys.argv[3])
        return _request(sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--settings", default=",".join(SETTINGS))
    parser.add_argument("--costs", default="1e6,2e6,4e6,8e6,16e6")
    parser.add_argument("--max_rss_gib", type=float, default=8.0)
    args = parser.parse_args()
    gib = 2.0 ** 30
    for setting in args.settings.split(","):
        with tempfile.TemporaryDirectory() as folder:
            path = _child("_export", setting, folder)
            if path.startswith("{"):
                print(path, flush=True)
                continue
            points = []
            for cost in (float(c) for c in args.costs.split(",")):
                if len(points) >= 2:  # linear extrapolation from the last two
                    (c0, p0), (c1, p1) = points[-2:]
                    predicted = p1 + (p1 - p0) / (c1 - c0) * (cost - c1)
                    if predicted > args.max_rss_gib * gib:
                        print(json.dumps({"setting": setting, "cost": cost,
                                          "skipped": f"predicted {predicted / gib:.1f} GiB"}))
                        continue
                side = _side(setting, cost)
                line = json.loads(_child("_request", setting, path, side, side))
                if "peak_rss" in line:
                    points.append((line["cost"], line["peak_rss"]))
                    line["peak_gib"] = round(line["peak_rss"] / gib, 2)
                    line["request_mib_per_mpx"] = round(
                        (line["peak_rss"] - line["rss_before"]) / 2 ** 20 / (line["cost"] / 1e6))
                print(json.dumps(line), flush=True)


if __name__ == "__main__":
    main()
