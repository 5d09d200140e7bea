"""How often the fast precisions give float32's labels, on real-looking images (not a test).

For a trained checkpoint (e.g. ``make demo``'s ``demo_output/train``) and a split of its
dataset (e.g. ``demo_output/tfrecord``, ``val``), predicts every image with deeplab-eval's path
in float32 (the reference: batch norm folded, frozen graph) and with each of ``--variants``:

* ``bfloat16``: the same path with ``--inference_precision=bfloat16`` (TensorFlow);
* ``openvino_bfloat16``: the OpenVINO backend at its bfloat16 precision hint;
* ``tflite_int8``, ``openvino_tflite_int8``, ``openvino_int8``: post-training int8
  (``deeplab_tf.bench.int8``; calibrated on the first ``--calibration_images`` images);

and prints, per variant, the share of pixels whose label equals float32's and the mIoU
against the ground truth beside float32's (the issue's rule: a fast path is the default only
where it agrees on >= 99.5 % of the pixels). Speed is not measured here (``deeplab-bench
--contenders`` does that). Without ``--dataset_dir``, ``--scenes`` demo scenes
(``deeplab_tf.demo.scenes``) of ``--size`` are generated; ``--random_weights`` takes random
weights of ``--model_variant`` (with realistic batch-norm statistics) instead of a checkpoint:
a pessimistic figure, random logits have little margin.

Usage, from the repository root:
  .venv/bin/python benchmarks/precision_agreement.py --checkpoint_dir=demo_output/train \\
      --dataset_dir=demo_output/tfrecord [--split=val] [--variants=bfloat16,tflite_int8]
  .venv/bin/python benchmarks/precision_agreement.py --random_weights \\
      --model_variant=xception_65 --scenes=8 --size=513
"""

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

VARIANTS = ("bfloat16", "openvino_bfloat16", "tflite_int8", "openvino_tflite_int8",
            "openvino_int8")


def _parser():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint_dir", help="a training run (config.json + checkpoints)")
    parser.add_argument("--dataset_dir", help="TFRecord shards with labels")
    parser.add_argument("--split", default="val")
    parser.add_argument("--max_images", type=int, default=60)
    parser.add_argument("--random_weights", action="store_true")
    parser.add_argument("--model_variant", default="xception_65")
    parser.add_argument("--num_classes", type=int, default=5)
    parser.add_argument("--scenes", type=int, default=20, help="generated scenes (no dataset)")
    parser.add_argument("--size", type=int, default=113, help="generated scenes' size")
    parser.add_argument("--variants", default="bfloat16,openvino_bfloat16,tflite_int8,"
                        "openvino_tflite_int8,openvino_int8")
    parser.add_argument("--calibration_images", type=int, default=20)
    parser.add_argument("--output_json")
    return parser


def _model(args):
    from deeplab_tf.bench.model import randomize_weights
    from deeplab_tf.bench.suite import recipe_config
    from deeplab_tf.model import build_model

    if args.random_weights:
        config = recipe_config(args.model_variant, num_classes=args.num_classes)
        return randomize_weights(build_model(config)), config, "random weights (seed 0)"
    from deeplab_tf.checkpoints.loading import latest_checkpoint
    from deeplab_tf.checkpoints.run_dir import run_model_config
    from deeplab_tf.checkpoints.strict import load_for_inference

    config = run_model_config(args.checkpoint_dir)
    if config is None:
        sys.exit(f"error: {args.checkpoint_dir} has no config.json (a deeplab-train run)")
    path = latest_checkpoint(args.checkpoint_dir)
    model = build_model(config)
    load_for_inference(model, path, config)
    return model, config, path


def _images(args):
    """[(uint8 [1, H, W, 3], int labels [H, W] or None)]."""
    if args.dataset_dir:
        import tensorflow as tf

        from deeplab_tf.data import schema

        records = tf.data.TFRecordDataset(schema.list_shards(args.dataset_dir, args.split))
        out = []
        for record in records.take(args.max_images):
            example = schema.parse_example(record)
            image = schema.decode_image(example[schema.IMAGE_ENCODED]).numpy()
            label = tf.io.decode_png(example[schema.LABEL_ENCODED]).numpy()[..., 0]
            out.append((image[np.newaxis], label))
        return out
    from deeplab_tf.demo.scenes import make_scene

    rng = np.random.default_rng(12345)
    scenes = [make_scene(rng, (args.size, args.size)) for _ in range(args.scenes)]
    # The scenes' labels are the demo's classes: an mIoU only for a model trained on them.
    return [(image[np.newaxis], None if args.random_weights else label)
            for image, label in scenes]


def _confusion(labels, predictions, num_classes, ignore):
    valid = labels != ignore
    index = labels[valid].astype(np.int64) * num_classes + predictions[valid]
    return np.bincount(index, minlength=num_classes ** 2).reshape(num_classes, num_classes)


def main(argv=None):
    args = _parser().parse_args(argv)
    variants = [v for v in args.variants.split(",") if v]
    unknown = sorted(set(variants) - set(VARIANTS))
    if unknown or not (args.random_weights or args.checkpoint_dir):
        _parser().error(f"unknown --variants {unknown} (expected some of {VARIANTS})" if unknown
                        else "give --checkpoint_dir or --random_weights")
    import dataclasses

    from deeplab_tf import inference
    from deeplab_tf.bench.int8 import BUILDERS
    from deeplab_tf.data.preprocess import padded_size
    from deeplab_tf.metrics import mean_iou
    from deeplab_tf.modeling.backbones import mean_pixel
    from deeplab_tf.bench.timing import load_average, machine_line

    print(machine_line(), flush=True)
    model, config, weights = _model(args)
    images = _images(args)
    spec = inference.InferenceSpec(output_stride=config.output_stride,
                                   pad_value=mean_pixel(config.model_variant))
    size = tuple(max(padded_size(image.shape[axis], config.output_stride)
                     for image, _ in images) for axis in (1, 2))
    samples = [image for image, _ in images[:args.calibration_images]]

    def tf_path(precision):
        used = dataclasses.replace(spec, precision=precision)
        return inference.predict_function(inference.prepare_model(model, used, config), used)

    runners = {"float32": tf_path("float32")}
    for name in variants:
        started = time.time()
        if name == "bfloat16":
            runners[name] = tf_path("bfloat16")
        elif name == "openvino_bfloat16":
            from deeplab_tf.export.openvino import OpenVINOPredictor

            predictor = OpenVINOPredictor(model, config, dataclasses.replace(
                spec, precision="bfloat16"))
            runners[name] = lambda image, p=predictor: p.predict(image)["labels"]
        else:
            runners[name] = BUILDERS[name](model, config, spec, size, samples)
        print(f"  built {name} ({time.time() - started:.0f} s)", flush=True)
    predictions = {name: [np.asarray(run(image))[0] for image, _ in images]
                   for name, run in runners.items()}
    reference = predictions["float32"]
    has_labels = all(label is not None for _, label in images)
    classes = config.num_classes
    rows = {}
    for name, labels in predictions.items():
        equal = sum(int((a == b).sum()) for a, b in zip(labels, reference))
        total = sum(a.size for a in reference)
        row = {"agreement": equal / total}
        if has_labels:
            cm = sum(_confusion(label, predicted, classes, 255)
                     for (_, label), predicted in zip(images, labels))
            row["miou"] = float(mean_iou(cm))
        rows[name] = row
    print(f"\n{config.model_variant}, {len(images)} images "
          f"({'dataset ' + args.dataset_dir + ' ' + args.split if args.dataset_dir else 'generated demo scenes'}), "
          f"weights: {weights}; int8 calibrated on {len(samples)} of them at {size[0]}x{size[1]}")
    print("| variant | pixels equal to float32's | mIoU |" if has_labels else
          "| variant | pixels equal to float32's |")
    print("|---|---:|---:|" if has_labels else "|---|---:|")
    for name, row in rows.items():
        line = f"| {name} | {100 * row['agreement']:.3f} % |"
        if has_labels:
            line += f" {row['miou']:.4f} |"
        print(line)
    print(f"load average at the end: {load_average()}")
    if args.output_json:
        with open(args.output_json, "w") as f:
            json.dump({"machine": machine_line(), "weights": weights,
                       "images": len(images), "rows": rows}, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
