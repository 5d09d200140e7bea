"""The demo (``make demo``): the whole job on the embedded synthetic dataset.

    python -m deeplab_tf.demo --workdir=demo_output

Steps, each through the real console scripts, each skipped when its output already exists
(so a re-run reuses what is done; training resumes from its last checkpoint):

1. generate the demo scenes as an images + colour-masks folder with a palette file and split
   lists (``deeplab_tf.demo.scenes``);
2. convert them with ``deeplab-build-folder`` into the custom dataset ``demo_shapes`` (its own
   class names: background, disc, square, triangle, bar; described by ``manifest.json``);
3. train with ``deeplab-train --flagfile=configs/demo/mobilenetv2_dm05_demo.flags`` (its
   ``--dataset=demo_shapes`` is read from the manifest in ``--dataset_dir``);
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


def convert_args(scenes: dict, output_dir: str) -> list:
    """``deeplab-build-folder`` flags converting ``demo_scenes.write_folder_layout``'s folders
    (``scenes``) into the custom dataset ``demo_shapes`` at ``output_dir``."""
    from deeplab_tf.demo import scenes as demo_scenes

    return [f"--image_dir={scenes['images']}", f"--label_dir={scenes['masks']}",
            f"--palette_file={scenes['palette']}",
            f"--num_classes={len(demo_scenes.DEMO_CLASSES)}",
            f"--class_names={','.join(demo_scenes.DEMO_CLASSES)}",
            f"--ignore_label={demo_scenes.IGNORE_LABEL}",
            f"--split_lists=train={scenes['train']},val={scenes['val']}",
            f"--dataset_name={demo_scenes.DATASET_NAME}", f"--output_dir={output_dir}",
            "--num_workers=1"]


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

    from deeplab_tf.demo import scenes as demo_scenes

    manifest = os.path.join(records, "manifest.json")
    if os.path.exists(manifest):
        with open(manifest) as f:
            found = json.load(f).get("dataset")
        if found != demo_scenes.DATASET_NAME:  # an older demo's (PASCAL VOC layout) output
            sys.exit(f"error: {manifest} describes dataset {found!r}, not "
                     f"{demo_scenes.DATASET_NAME!r} (an older demo's output): remove {work} "
                     "(make clean) and run the demo again")

    _step("1/6 demo scenes (images + colour masks folder)")
    scenes = demo_scenes.folder_layout(raw)
    if os.path.exists(scenes["val"]):  # written last
        print(f"reusing {raw}")
    else:
        demo_scenes.write_folder_layout(raw, NUM_TRAIN, NUM_VAL)
        print(f"wrote {NUM_TRAIN} train + {NUM_VAL} val scenes under {raw}")

    _step("2/6 convert with deeplab-build-folder")
    if os.path.exists(manifest):
        print(f"reusing {records}")
    else:
        _run("deeplab_tf.cli.build_folder", *convert_args(scenes, records))

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
    with open(scenes["val"]) as f:
        val_names = f.read().split()
    for name in val_names[-NUM_VIS:]:
        shutil.copyfile(os.path.join(scenes["images"], name + ".jpg"),
                        os.path.join(vis_in, name + ".jpg"))
    _run("deeplab_tf.cli.vis", recipe, f"--dataset_dir={records}",
         f"--checkpoint_dir={train_dir}", f"--vis_image_dir={vis_in}",
         f"--vis_logdir={vis_dir}", "--max_number_of_iterations=1")

    results = json.load(open(os.path.join(eval_dir, "results.json")))
    print(f"\n=== done in {time.time() - started:.0f} s ===")
    print(f"mIoU: {results['miou']:.3f}")
    print(f"dataset (TFRecord):  {records} (classes: {', '.join(demo_scenes.DEMO_CLASSES)})")
    print(f"checkpoints:         {train_dir}")
    print(f"evaluation:          {eval_dir}/results.json, confusion_matrix.csv/.png")
    print(f"SavedModel:          {sorted(glob.glob(os.path.join(export_dir, 'saved_model', 'deeplab', '[0-9]*')))[-1]}")
    print(f"int8 TFLite:         {sorted(glob.glob(os.path.join(tflite_dir, '*.tflite')))[-1]}")
    print(f"overlays:            {vis_dir}")


if __name__ == "__main__":
    main()
