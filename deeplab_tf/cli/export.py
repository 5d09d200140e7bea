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
float16, dynamic_range, int8 (uint8 pixel input, calibrated on ``--calibration_steps``
images of ``--calibration_dataset_dir``) or edgetpu (full integer, uint8 in and out, Edge TPU
operations only); ``--tflite_output`` argmax (int32 labels), argmax_uint8 or logits;
``--tflite_output_size`` input or output_stride (no final upsample in the model).

Quantization-aware checkpoints (trained with ``--quantize_delay_step``, or the zoo's 8-bit
ones: any checkpoint holding ranges) export their quantized evaluation graph in every format
(FakeQuant ops, as the original's frozen graph); ``--tflite_mode=int8`` / ``edgetpu`` then
take the learned ranges and need no calibration data.
"""

from __future__ import annotations

import os

from absl import logging

from deeplab_tf.cli._common import run_app, writing
from deeplab_tf.cli.flags import data, export, inference, model, parse_size, quantize
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
def _tflite_output() -> str:
    """--tflite_output; logits (uint8 class scores) for --tflite_mode=edgetpu unless given
    (ArgMax is not an Edge TPU operation)."""
    if export.TFLITE_MODE.value == "edgetpu" and not export.TFLITE_OUTPUT.present:
        return "logits"
    return export.TFLITE_OUTPUT.value


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
        tflite_mode=export.TFLITE_MODE.value, tflite_output=_tflite_output(),
        tflite_output_size=export.TFLITE_OUTPUT_SIZE.value,
        calibration_dataset_dir=export.CALIBRATION_DATASET_DIR.value or "",
        calibration_split=export.CALIBRATION_SPLIT.value,
        calibration_steps=export.CALIBRATION_STEPS.value,
        export_path=export.EXPORT_PATH.value or "",
        save_inference_graph=export.SAVE_INFERENCE_GRAPH.value,
        max_image_pixels=export.MAX_IMAGE_PIXELS.value,
        inference_precision=inference.value_or(inference.INFERENCE_PRECISION, ExportConfig,
                                               "inference_precision"),
        **data.resize_fields())


def _holds_ranges(checkpoint_arg: str) -> bool:
    """Whether the checkpoint named holds quantization ranges (False if it cannot be read:
    its own error comes later)."""
    from deeplab_tf.checkpoints.paths import CheckpointError, resolve_checkpoint_path
    from deeplab_tf.checkpoints.quantization import checkpoint_quantization

    try:
        return checkpoint_quantization(resolve_checkpoint_path(checkpoint_arg)) is not None
    except (CheckpointError, ValueError, OSError):
        return False


def _check_calibration(export_config, checkpoint_arg: str):
    """An integer TFLite model of a float checkpoint needs calibration shards (checked before
    any work, the shards themselves by the exporter's ``check_destination``; a
    quantization-aware checkpoint needs none)."""
    if export_config.format != "tflite" or export_config.tflite_mode not in ("int8", "edgetpu"):
        return
    if (export_config.calibration_dataset_dir or quantize.requested_quantization()
            or _holds_ranges(checkpoint_arg)):
        return
    raise UserError(f"--tflite_mode={export_config.tflite_mode} of a float checkpoint needs "
                    "--calibration_dataset_dir (TFRecord shards of representative images); a "
                    "quantization-aware checkpoint (--quantize_delay_step) needs none")


def _default_num_classes(checkpoint_path, kind):
    """The original checkpoint's logits count (``logits_classes``: its logits layer or a
    decoder that outputs the logits), else --dataset's class count, else the original
    export_model.py's default (21)."""
    if kind == "original":
        from deeplab_tf.checkpoints.loading import logits_classes, variable_shapes

        classes = logits_classes(variable_shapes(checkpoint_path))
        if classes:
            return classes
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
    _check_calibration(export_config, checkpoint_arg)

    from deeplab_tf.checkpoints import run_dir
    from deeplab_tf.checkpoints.loading import checkpoint_kind
    from deeplab_tf.checkpoints.paths import resolve_checkpoint_path
    from deeplab_tf.checkpoints.quantization import config_for_checkpoint
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
    config = config_for_checkpoint(resolved.config, checkpoint,
                                   quantize.requested_quantization())
    if config.quantization:
        print(f"Quantized evaluation graph ({config.quantization} weight ranges).", flush=True)
    model_, report = load_model(resolved, checkpoint, config)
    logging.info("%s", report.summary())
    print(f"Loaded {len(report.loaded)} variables from {kind} checkpoint {report.path}.",
          flush=True)
    metadata = {"checkpoint": os.path.abspath(report.path), "checkpoint_kind": kind}
    try:
        with writing(f"the {export_config.format} export",
                     export_dir or export_config.export_path):
            result = format_exporter.export(model_, config, export_config, export_dir,
                                            metadata=metadata, overwrite=_OVERWRITE.value)
    except ImportError as error:
        raise UserError(f"--format={export_config.format} is not available here "
                        f"({error})") from None
    print(result.summary, flush=True)


def run():
    run_app(main, "deeplab-export")


if __name__ == "__main__":
    run()
