"""deeplab-eval: mIoU of a checkpoint, or of each new checkpoint of a training run.

    deeplab-eval --checkpoint_dir=train --eval_logdir=eval --dataset=pascal_voc_seg \\
        --dataset_dir=tfrecord --eval_split=val --max_number_of_evaluations=1 \\
        [--eval_scales=0.5 --eval_scales=0.75 --eval_scales=1.0 --eval_scales=1.25 \
         --eval_scales=1.5 --eval_scales=1.75 --add_flipped_images] \
        [--trimap_widths=4 --trimap_widths=8]

Flags as the original eval.py. ``--max_number_of_evaluations=1`` evaluates the latest
checkpoint once; 0 (the original's default) keeps evaluating each new checkpoint every
``--eval_interval_secs`` until interrupted; ``--checkpoint_path`` evaluates one checkpoint.
The model comes from the model flags, or from the run's ``config.json`` when no model flag is
given. Images of any size are evaluated whole (``--eval_crop_size``, default 513,513 as the
original, only pads smaller ones); ``--sliding_window_size`` predicts large images window by
window. ``--inference_backend=openvino`` evaluates the same computation in OpenVINO;
``--nofold_batch_norm`` runs batch norm unfolded.

Writes to ``eval_logdir`` (atomically): ``results.json`` (mIoU, per-class IoU by name, pixel
accuracy, trimap results, confusion matrix, checkpoint, step, scales, flip),
``confusion_matrix.csv``, ``confusion_matrix.png`` and TensorBoard scalars; prints the
per-class table and, last, ``mIoU: 0.NNN``.
"""

from __future__ import annotations

import os

from absl import logging

from deeplab_tf.cli import _eval_common
from deeplab_tf.cli._common import run_app
from deeplab_tf.cli.flags import data
from deeplab_tf.cli.flags import eval as eval_flags
from deeplab_tf.cli.flags import inference
from deeplab_tf.errors import UserError
from deeplab_tf.fileio import check_writable

RESULTS_JSON = "results.json"
CONFUSION_MATRIX_CSV = "confusion_matrix.csv"
CONFUSION_MATRIX_PNG = "confusion_matrix.png"


def _summary_tag(eval_config) -> str:
    """The original's summary name: ``miou_<scales>[_flipped]``."""
    tag = "miou" + "".join(f"_{s}" for s in eval_config.eval_scales)
    return tag + ("_flipped" if eval_config.add_flipped_images else "")


def _write_summaries(eval_logdir, results, eval_config, step):
    """The original's TensorBoard scalars (eval/<tag>_overall, eval/<tag>_class_<i>)."""
    import tensorflow as tf

    from deeplab_tf.train.summaries import write_scalar

    tag = _summary_tag(eval_config)
    step = step or 0
    writer = tf.summary.create_file_writer(eval_logdir)
    with writer.as_default():
        write_scalar(f"eval/{tag}_overall", results["miou"], step)
        for index, name in enumerate(results["class_names"]):
            iou = results["per_class_iou"][name]
            if iou is not None:
                write_scalar(f"eval/{tag}_class_{index}", iou, step)
        for width, trimap in results["trimap"].items():
            write_scalar(f"eval/{tag}_trimap_{width}", trimap["miou"], step)
    writer.close()


def main(argv):
    _eval_common.check_no_arguments(argv)
    logdir, split = eval_flags.EVAL_LOGDIR.value, eval_flags.EVAL_SPLIT.value
    if not logdir:
        raise UserError("--eval_logdir is required")
    eval_config = inference.eval_config(**eval_flags.eval_fields())
    check_writable(logdir, f"--eval_logdir={logdir}")
    directory = _eval_common.checkpoint_dir()
    info = data.dataset_info()
    data_config = data.data_config(eval_split=split)
    split = data_config.eval_split

    # TensorFlow and the model only once the flags are checked.
    from deeplab_tf.checkpoints.loading import checkpoint_step
    from deeplab_tf.data import pipeline
    from deeplab_tf.evaluation import evaluator, report

    predictor = _eval_common.build_predictor(info.num_classes, directory, eval_config)
    model_config = predictor.model_config
    class_names = report.class_names_for(info.num_classes, info.class_names)
    os.makedirs(logdir, exist_ok=True)

    for path in _eval_common.checkpoints(eval_config.max_number_of_evaluations,
                                         eval_config.eval_interval_secs):
        predict = predictor.load(path)
        step = checkpoint_step(path)
        print(f"Evaluating {path} (step {step}) on {info.name} {split}, "
              f"scales {list(eval_config.eval_scales)}"
              f"{', flipped' if eval_config.add_flipped_images else ''}", flush=True)
        dataset = pipeline.eval_dataset(
            data_config, split, mean_pixel=predictor.pad_value,
            ignore_label=info.ignore_label, output_stride=model_config.output_stride,
            pixels=predictor.spec.pixels)
        result = evaluator.evaluate(
            predict, dataset, num_classes=info.num_classes, ignore_label=info.ignore_label,
            trimap_widths=eval_config.trimap_widths)
        results = report.results_dict(
            result, class_names, checkpoint=os.path.abspath(path), step=step,
            dataset=info.name, split=split,
            eval_scales=list(eval_config.eval_scales),
            add_flipped_images=eval_config.add_flipped_images,
            eval_config=eval_config.to_dict(), model=model_config.to_dict())
        report.write_json(os.path.join(logdir, RESULTS_JSON), results)
        report.write_confusion_matrix_csv(
            os.path.join(logdir, CONFUSION_MATRIX_CSV), result.confusion_matrix, class_names)
        report.write_confusion_matrix_png(
            os.path.join(logdir, CONFUSION_MATRIX_PNG), result.confusion_matrix, class_names)
        _write_summaries(logdir, results, eval_config, step)
        logging.info("Wrote %s", os.path.join(logdir, RESULTS_JSON))
        print(report.format_table(results))
        print(f"mIoU: {results['miou']:.3f}", flush=True)


def run():
    run_app(main, "deeplab-eval")


if __name__ == "__main__":
    run()
