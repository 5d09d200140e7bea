"""deeplab-export: a checkpoint -> a SavedModel, TFLite, frozen GraphDef, OpenVINO or ONNX model.

    deeplab-export --checkpoint_path=train/model.ckpt-30000 \\
        --export_path=exports/frozen_inference_graph.pb --crop_size=513 --crop_size=513 \\
        --num_classes=21 [--inference_scales=1.0] [--save_inference_graph]

    deeplab-export --checkpoint=train_logdir --export_dir=exports \\
        [--inference_scales=0.5 --inference_scales=1.0 --inference_scales=1.5 \\
         --add_flipped_images] [--export_probabilities]
    deeplab-export --flagfile=configs/pascal_voc_seg/xception65_os16.flags \\
        --checkpoint=deeplabv3_pascal_train_aug/model.ckpt --export_dir=exports \\
        --format=tflite --tflite_mode=int8 --crop_size=513,513 \\
        --calibration_dataset_dir=tfrecord --calibration_split=train

The original export_model.py's flags work as there: ``--export_path`` writes the frozen graph
(input ``ImageTensor``, outputs ``SemanticPredictions`` / ``SemanticProbabilities``).
``--checkpoint`` (older name of ``--checkpoint_path``) is a checkpoint prefix or a directory
(its latest checkpoint), written by deeplab-train / deeplab-convert-checkpoint or an original
TF1 DeepLab checkpoint (converted on the fly, by variable names). The model is the run's
``config.json`` beside the checkpoint with the model flags given explicitly on top, field by
field (``deeplab_tf.checkpoints.run_dir``), or the model flags alone; the class count defaults
to the run's, the original checkpoint's logits, or ``--dataset``'s. Each format's exporter
comes from one registry (``deeplab_tf.export.EXPORTERS``).

SavedModel (``--format=saved_model``): ``export_dir/model_name/<version>/``, the version one
more than the largest existing one (an existing version is never overwritten); signatures
``serving_default`` (encoded images) and ``predict_images`` (uint8 pixels), outputs
``semantic_predictions`` (+ ``semantic_probabilities``), scales and flips in the graph, the
same predictions as deeplab-eval with the same ``--eval_crop_size`` / scales / flip. A
recipe's evaluation flags (``--eval_scales``, ``--add_flipped_images``, ``--eval_crop_size``)
are the export's defaults, so ``--flagfile=RECIPE`` exports what deeplab-eval evaluates.

TFLite (``--format=tflite``): ``export_dir/<model_name>_<tflite_mode>.tflite`` and a ``.json``
describing its input and output; fixed input size ``--crop_size``; ``--tflite_mode`` float32,
float16, dynamic_range or int8 (uint8 pixel input, calibrated on ``--calibration_steps``
images of ``--calibration_dataset_dir``); ``--tflite_output`` argmax (int32 labels) or logits.
"""

from __future__ import annotations

import os

from absl import logging

from deeplab_tf.cli._common import run_app, writing
from deeplab_tf.cli.flags import data, export, inference, model, parse_size
from deeplab_tf.config import ExportConfig
from deeplab_tf.errors import UserError

_OVERWRITE = export.OVERWRITE
_ORIGINAL_NUM_CLASSES = 21  # the original export_model.py's default --num_classes


def _format() -> str:
    """--format; frozen_graph when only --export_path (the original's flag) is given."""
    if export.EXPORT_PATH.value and not export.FORMAT.present:
        return "frozen_graph"
    return export.FORMAT.value


def _crop_size(fmt):
    """--crop_size; for OpenVINO and ONNX only when given (else their input size is dynamic)."""
    if fmt in ("openvino", "onnx") and not export.CROP_SIZE.present:
        return None
    return parse_size(export.CROP_SIZE.value, "crop_size")


def export_config_from_flags() -> ExportConfig:
    fmt = _format()
    scales = export.INFERENCE_SCALES.value or inference.EVAL_SCALES.value or (1.0,)
    flipped = inference.ADD_FLIPPED_IMAGES.value
    if fmt == "tflite" and not export.INFERENCE_SCALES.value:
        # A recipe's evaluation settings do not apply to a single-scale TFLite model.
        if tuple(scales) != (1.0,) or flipped:
            logging.warning("TFLite models are single-scale: --eval_scales and "
                            "--add_flipped_images are ignored.")
        scales, flipped = (1.0,), False
    if fmt == "frozen_graph" and not export.EXPORT_PATH.value:
        raise UserError("--format=frozen_graph needs --export_path (the .pb file to write)")
    return ExportConfig(
        format=fmt, model_name=export.MODEL_NAME.value,
        export_version=export.EXPORT_VERSION.value, inference_scales=tuple(scales),
        add_flipped_images=flipped, export_probabilities=export.EXPORT_PROBABILITIES.value,
        eval_crop_size=parse_size(inference.EVAL_CROP_SIZE.value, "eval_crop_size"),
        fold_batch_norm=inference.value_or(inference.FOLD_BATCH_NORM, ExportConfig,
                                           "fold_batch_norm"),
        crop_size=_crop_size(fmt),
        tflite_mode=export.TFLITE_MODE.value, tflite_output=export.TFLITE_OUTPUT.value,
        calibration_dataset_dir=export.CALIBRATION_DATASET_DIR.value or "",
        calibration_split=export.CALIBRATION_SPLIT.value,
        calibration_steps=export.CALIBRATION_STEPS.value,
        export_path=export.EXPORT_PATH.value or "",
        save_inference_graph=export.SAVE_INFERENCE_GRAPH.value,
        max_image_pixels=export.MAX_IMAGE_PIXELS.value, **data.resize_fields())


def _default_num_classes(checkpoint_path, kind):
    """The original checkpoint's logits count, else --dataset's class count, else the
    original export_model.py's default (21)."""
    if kind == "original":
        from deeplab_tf.checkpoints.loading import variable_shapes

        bias = variable_shapes(checkpoint_path).get("logits/semantic/biases")
        if bias:
            return int(bias[0])
    if data.DATASET.present:
        return data.dataset_num_classes()
    return _ORIGINAL_NUM_CLASSES


def main(argv):
    if len(argv) > 1:
        raise UserError(f"Unexpected arguments: {' '.join(argv[1:])}")
    checkpoint_arg = inference.CHECKPOINT_PATH.value or export.CHECKPOINT.value
    if not checkpoint_arg:
        raise UserError("--checkpoint_path (or --checkpoint) is required")
    export_config = export_config_from_flags()
    export_dir = export.EXPORT_DIR.value
    if export_config.format != "frozen_graph" and not export_dir:
        raise UserError("--export_dir is required (or --export_path=.../"
                        "frozen_inference_graph.pb for a frozen graph)")
    from deeplab_tf.export import exporter

    format_exporter = exporter(export_config.format)
    format_exporter.check_destination(export_config, export_dir, _OVERWRITE.value)

    from deeplab_tf.checkpoints import run_dir
    from deeplab_tf.checkpoints.loading import checkpoint_kind
    from deeplab_tf.checkpoints.paths import resolve_checkpoint_path
    from deeplab_tf.evaluation.predictor import load_model

    checkpoint = resolve_checkpoint_path(checkpoint_arg)
    kind = checkpoint_kind(checkpoint)
    directory = os.path.dirname(os.path.abspath(checkpoint))
    run_config = run_dir.run_model_config(directory)
    num_classes = run_config.num_classes if run_config else _default_num_classes(checkpoint,
                                                                                    kind)
    resolved = run_dir.resolve_model_config(directory, model.model_config(num_classes),
                                            model.explicit())
    print(resolved.source, flush=True)
    model_, report = load_model(resolved, checkpoint)
    logging.info("%s", report.summary())
    print(f"Loaded {len(report.loaded)} variables from {kind} checkpoint {report.path}.",
          flush=True)
    metadata = {"checkpoint": os.path.abspath(report.path), "checkpoint_kind": kind}
    try:
        with writing(f"the {export_config.format} export",
                     export_dir or export_config.export_path):
            result = format_exporter.export(model_, resolved.config, export_config,
                                            export_dir, metadata=metadata,
                                            overwrite=_OVERWRITE.value)
    except ImportError as error:
        raise UserError(f"--format={export_config.format} is not available here "
                        f"({error})") from None
    print(result.summary, flush=True)


def run():
    run_app(main, "deeplab-export")


if __name__ == "__main__":
    run()
