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
``--checkpoint`` (older name of ``--checkpoint_path``) is a checkpoint prefix or a directory (its latest checkpoint), written by
deeplab-train / deeplab-convert-checkpoint or an original TF1 DeepLab checkpoint (converted on
the fly, by variable names). The model comes from the model flags, or from ``config.json``
beside the checkpoint when no model flag is given (as deeplab-eval); the class count defaults
to the original checkpoint's logits, or ``--dataset``'s.

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

import json
import os

from absl import logging

from deeplab_tf.cli._common import UserError, run_app
from deeplab_tf.cli.flags import data, export, inference, model, parse_size, quantize
from deeplab_tf.config import ExportConfig

CONFIG_JSON = "config.json"
_OVERWRITE = export.OVERWRITE
_ORIGINAL_NUM_CLASSES = 21  # the original export_model.py's default --num_classes


def _format() -> str:
    """--format; frozen_graph when only --export_path (the original's flag) is given."""
    if export.EXPORT_PATH.value and not export.FORMAT.present:
        return "frozen_graph"
    return export.FORMAT.value


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
        crop_size=parse_size(export.CROP_SIZE.value, "crop_size"),
        tflite_mode=export.TFLITE_MODE.value, tflite_output=_tflite_output(),
        tflite_output_size=export.TFLITE_OUTPUT_SIZE.value,
        calibration_dataset_dir=export.CALIBRATION_DATASET_DIR.value or "",
        calibration_split=export.CALIBRATION_SPLIT.value,
        calibration_steps=export.CALIBRATION_STEPS.value,
        export_path=export.EXPORT_PATH.value or "",
        save_inference_graph=export.SAVE_INFERENCE_GRAPH.value,
        max_image_pixels=export.MAX_IMAGE_PIXELS.value, **data.resize_fields())


def _check_destination(export_config, export_dir):
    """Fails before any work if the output cannot be written (or would overwrite a file)."""
    from deeplab_tf.export import saved_model, tflite

    if export_config.format == "frozen_graph":
        parent = os.path.dirname(os.path.abspath(export_config.export_path))
        if os.path.exists(parent) and not os.path.isdir(parent):
            raise UserError(f"--export_path={export_config.export_path}: {parent} is not a "
                            "directory (is not writable)")
        saved_model.check_writable(parent)
        return
    if not export_dir:
        raise UserError(f"--export_dir is required for --format={export_config.format}")
    if export_config.format in ("openvino", "onnx"):
        saved_model.check_writable(export_dir)
        return
    if export_config.format == "saved_model":
        model_dir = os.path.join(export_dir, export_config.model_name)
        saved_model.check_writable(model_dir)
        version = export_config.export_version
        if version is not None and os.path.exists(os.path.join(model_dir, str(version))):
            raise UserError(f"Version {version} already exists in {model_dir} (versions are "
                            "never overwritten; choose another --export_version)")
        return
    saved_model.check_writable(export_dir)
    path = tflite.tflite_path(export_dir, export_config)
    if os.path.exists(path) and not _OVERWRITE.value:
        raise UserError(f"{path} already exists (pass --overwrite to replace it)")


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
    any work; a quantization-aware checkpoint needs none)."""
    if export_config.format != "tflite" or export_config.tflite_mode not in ("int8", "edgetpu"):
        return
    if export_config.calibration_dataset_dir:
        from deeplab_tf.data import schema

        schema.list_shards(export_config.calibration_dataset_dir, export_config.calibration_split)
        return
    if quantize.requested_quantization() or _holds_ranges(checkpoint_arg):
        return
    raise UserError(f"--tflite_mode={export_config.tflite_mode} of a float checkpoint needs "
                    "--calibration_dataset_dir (TFRecord shards of representative images); a "
                    "quantization-aware checkpoint (--quantize_delay_step) needs none")


def _default_num_classes(checkpoint_path, kind, run_config):
    """The original checkpoint's logits count, else the run's config.json, else --dataset's
    class count, else None."""
    import tensorflow as tf

    if kind == "original":
        shapes = tf.train.load_checkpoint(checkpoint_path).get_variable_to_shape_map()
        bias = shapes.get("logits/semantic/biases")
        if bias:
            return int(bias[0])
    if run_config is not None:
        return run_config.num_classes
    if data.DATASET.present:
        return data.dataset_num_classes()
    return _ORIGINAL_NUM_CLASSES


def model_config(checkpoint_path, kind):
    """(ModelConfig, a line saying where it came from)."""
    from deeplab_tf.config import ModelConfig

    path = os.path.join(os.path.dirname(os.path.abspath(checkpoint_path)), CONFIG_JSON)
    run_config = None
    if os.path.isfile(path):
        try:
            with open(path) as f:
                run_config = ModelConfig.from_dict(json.load(f)["model"])
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise UserError(f"Cannot read the model config of {path}: {error}") from None
    if run_config is not None and not model.explicit():
        return run_config, f"Model: {path} (no model flags given)."
    config = model.model_config(
        num_classes=_default_num_classes(checkpoint_path, kind, run_config))
    return config, "Model: from the model flags."


def _load(model_, checkpoint, config):
    """The one inference loading rule (``load_for_inference``); returns the report."""
    from deeplab_tf.checkpoints.strict import load_for_inference

    return load_for_inference(model_, checkpoint, config)


def _spec(config, export_config):
    from deeplab_tf.inference import InferenceSpec

    return InferenceSpec.from_export_config(config, export_config)


def _export_other(model_, config, export_config, export_dir):
    """frozen_graph, openvino, onnx: the library functions of the infer and perf streams."""
    fmt = export_config.format
    try:
        spec = _spec(config, export_config)
        if fmt == "frozen_graph":
            from deeplab_tf.export.frozen_graph import export_frozen_graph

            path = export_frozen_graph(
                model_, config, spec, export_config.export_path,
                num_classes=config.num_classes,
                save_inference_graph=export_config.save_inference_graph)
            print(f"Wrote frozen graph {path} (input ImageTensor uint8 [1, H, W, 3]; outputs "
                  "SemanticPredictions, SemanticProbabilities).")
            return
        crop = (parse_size(export.CROP_SIZE.value, "crop_size")
                if export.CROP_SIZE.present else None)
        if fmt == "openvino":
            from deeplab_tf.export.openvino import export_openvino

            path = export_openvino(model_, config, spec, export_dir,
                                   model_name=export_config.model_name, crop_size=crop,
                                   probabilities=export_config.export_probabilities)
        else:
            from deeplab_tf.export.onnx import export_onnx

            path = export_onnx(model_, config, spec, export_dir,
                               model_name=export_config.model_name, crop_size=crop,
                               probabilities=export_config.export_probabilities)
    except ImportError as error:
        raise UserError(f"--format={fmt} is not available here ({error})") from None
    print(f"Wrote {fmt} model {path}.")


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
    _check_destination(export_config, export_dir)
    _check_calibration(export_config, checkpoint_arg)

    from deeplab_tf.checkpoints.paths import resolve_checkpoint_path
    from deeplab_tf.checkpoints.loading import checkpoint_kind
    from deeplab_tf.checkpoints.quantization import config_for_checkpoint
    from deeplab_tf.model import build_model

    checkpoint = resolve_checkpoint_path(checkpoint_arg)
    kind = checkpoint_kind(checkpoint)
    config, source = model_config(checkpoint, kind)
    config = config_for_checkpoint(config, checkpoint, quantize.requested_quantization())
    print(source, flush=True)
    if config.quantization:
        print(f"Quantized evaluation graph ({config.quantization} weight ranges).", flush=True)
    model_ = build_model(config)
    report = _load(model_, checkpoint, config)
    logging.info("%s", report.summary())
    print(f"Loaded {len(report.loaded)} variables from {kind} checkpoint {report.path}.",
          flush=True)
    metadata = {"checkpoint": os.path.abspath(report.path), "checkpoint_kind": kind}

    if export_config.format in ("frozen_graph", "openvino", "onnx"):
        _export_other(model_, config, export_config, export_dir)
        return
    if export_config.format == "saved_model":
        from deeplab_tf.export.saved_model import directory_size, export_saved_model

        path = export_saved_model(model_, config, export_config, export_dir, metadata)
        print(f"Exported SavedModel version {os.path.basename(path)} to {path} "
              f"({directory_size(path) / 1e6:.2f} MB); signatures serving_default "
              f"(encoded images), predict_images (uint8 pixels); scales "
              f"{list(export_config.inference_scales)}"
              f"{', flipped' if export_config.add_flipped_images else ''}.")
        return
    from deeplab_tf.export.tflite import export_tflite

    result = export_tflite(model_, config, export_config, export_dir,
                           overwrite=_OVERWRITE.value, metadata=metadata)
    spec = result["input"]
    print(f"Wrote {result['path']} ({result['size_bytes'] / 1e6:.2f} MB, "
          f"{export_config.tflite_mode}; input {spec['name']} {spec['dtype']} {spec['shape']}, "
          f"output {result['output']['name']} {result['output']['dtype']} "
          f"{result['output']['shape']}) and {result['metadata_path']}.")


def run():
    run_app(main, "deeplab-export")


if __name__ == "__main__":
    run()
