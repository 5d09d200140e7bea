"""The demo (``make demo``): the whole job on the embedded synthetic dataset.

    python -m deeplab_tf.demo --workdir=demo_output

Steps, each through the real console scripts, each skipped when its output already exists
(so a re-run reuses what is done; training resumes from its last checkpoint):

1. generate the demo scenes in the PASCAL VOC layout (``deeplab_tf.demo_data``);
2. convert them with ``deeplab-build-voc2012``;
3. train with ``deeplab-train --flagfile=configs/demo/mobilenetv2_dm05_demo.flags``;
4. evaluate with ``deeplab-eval`` (per-class IoU table, ``mIoU: 0.NNN``);
5. export a SavedModel and an int8 TFLite model with ``deeplab-export``;
6. draw predictions on a few validation images with ``deeplab-vis``;
7. print where every output is.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import shutil
import subprocess
import sys
import time

RECIPE = os.path.join("configs", "demo", "mobilenetv2_dm05_demo.flags")
NUM_TRAIN, NUM_VAL, NUM_VIS = 300, 60, 6


def _step(title):
    print(f"\n=== {title} ===", flush=True)


def _run(module, *args):
    command = [sys.executable, "-m", module, *args]
    print("$ " + " ".join(["python -m " + module, *args]), flush=True)
    started = time.time()
    result = subprocess.run(command)
    if result.returncode != 0:
        print(f"demo: step failed ({module}, exit {result.returncode})", file=sys.stderr)
        sys.exit(result.returncode)
    print(f"({time.time() - started:.0f} s)", flush=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description="Run the deeplab_tf demo end to end.")
    parser.add_argument("--workdir", default="demo_output")
    parser.add_argument("--recipe", default=RECIPE)
    args = parser.parse_args(argv)
    if not os.path.exists(args.recipe):
        sys.exit(f"error: recipe {args.recipe} not found (run from the repository root)")
    work = os.path.abspath(args.workdir)
    raw = os.path.join(work, "raw")
    records = os.path.join(work, "tfrecord")
    train_dir = os.path.join(work, "train")
    eval_dir = os.path.join(work, "eval")
    export_dir = os.path.join(work, "export")
    vis_in = os.path.join(work, "vis_images")
    vis_dir = os.path.join(work, "vis")
    recipe = f"--flagfile={os.path.abspath(args.recipe)}"
    started = time.time()

    _step("1/6 demo scenes (PASCAL VOC layout)")
    val_list = os.path.join(raw, "VOCdevkit", "VOC2012", "ImageSets", "Segmentation", "val.txt")
    if os.path.exists(val_list):
        print(f"reusing {raw}")
    else:
        from deeplab_tf.demo_data import write_voc_layout

        write_voc_layout(raw, NUM_TRAIN, NUM_VAL)
        print(f"wrote {NUM_TRAIN} train + {NUM_VAL} val scenes under {raw}")

    _step("2/6 convert with deeplab-build-voc2012")
    if os.path.exists(os.path.join(records, "manifest.json")):
        print(f"reusing {records}")
    else:
        _run("deeplab_tf.cli.build_voc2012", f"--voc_root={raw}", f"--output_dir={records}",
             "--num_workers=1")

    _step("3/6 train with deeplab-train")
    _run("deeplab_tf.cli.train", recipe, f"--dataset_dir={records}", f"--train_logdir={train_dir}")

    _step("4/6 evaluate with deeplab-eval")
    _run("deeplab_tf.cli.eval", recipe, f"--dataset_dir={records}", f"--checkpoint_dir={train_dir}",
         f"--eval_logdir={eval_dir}", "--max_number_of_evaluations=1")

    _step("5/6 export a SavedModel and an int8 TFLite model with deeplab-export")
    saved_models = glob.glob(os.path.join(export_dir, "saved_model", "deeplab", "[0-9]*"))
    if saved_models:
        print(f"reusing {saved_models[0]}")
    else:
        _run("deeplab_tf.cli.export", recipe, f"--checkpoint={train_dir}",
             f"--export_dir={os.path.join(export_dir, 'saved_model')}", "--format=saved_model")
    tflite_dir = os.path.join(export_dir, "tflite")
    if glob.glob(os.path.join(tflite_dir, "*.tflite")):
        print(f"reusing {tflite_dir}")
    else:
        _run("deeplab_tf.cli.export", recipe, f"--checkpoint={train_dir}",
             f"--export_dir={tflite_dir}", "--format=tflite", "--tflite_mode=int8",
             "--crop_size=113,113", f"--calibration_dataset_dir={records}",
             "--calibration_steps=50")

    _step("6/6 draw predictions with deeplab-vis")
    os.makedirs(vis_in, exist_ok=True)
    images = sorted(glob.glob(os.path.join(raw, "VOCdevkit", "VOC2012", "JPEGImages", "*.jpg")))
    for path in images[-NUM_VIS:]:
        shutil.copyfile(path, os.path.join(vis_in, os.path.basename(path)))
    _run("deeplab_tf.cli.vis", recipe, f"--checkpoint_dir={train_dir}", f"--image_dir={vis_in}",
         f"--vis_logdir={vis_dir}", "--max_number_of_iterations=1")

    results = json.load(open(os.path.join(eval_dir, "results.json")))
    print(f"\n=== done in {time.time() - started:.0f} s ===")
    print(f"mIoU: {results['miou']:.3f}")
    print(f"dataset (TFRecord):  {records}")
    print(f"checkpoints:         {train_dir}")
    print(f"evaluation:          {eval_dir}/results.json, confusion_matrix.csv/.png")
    print(f"SavedModel:          {sorted(glob.glob(os.path.join(export_dir, 'saved_model', 'deeplab', '[0-9]*')))[-1]}")
    print(f"int8 TFLite:         {sorted(glob.glob(os.path.join(tflite_dir, '*.tflite')))[-1]}")
    print(f"overlays:            {vis_dir}")


if __name__ == "__main__":
    main()
