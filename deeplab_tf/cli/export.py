"""deeplab-export: a checkpoint -> a SavedModel for TF Serving, or a TFLite model.

    deeplab-export --checkpoint=train_logdir --export_dir=exports \\
        [--inference_scales=0.5 --inference_scales=1.0 --inference_scales=1.5 \\
         --add_flipped_images] [--export_probabilities]
    deeplab-export --flagfile=configs/pascal_voc_seg/xception65_os16.flags \\
        --checkpoint=deeplabv3_pascal_train_aug/model.ckpt --export_dir=exports \\
        --format=tflite --tflite_mode=int8 --crop_size=513,513 \\
        --calibration_dataset_dir=tfrecord --calibration_split=train

``--checkpoint`` is a checkpoint prefix or a directory (its latest checkpoint), written by
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
float16, dynamic_range or int8 (uint8 pixel input, calibrated on ``--calibration_steps``
images of ``--calibration_dataset_dir``); ``--tflite_output`` argmax (int32 labels) or logits.
"""

from __future__ import annotations

import json
import os

from absl import flags, logging

from deeplab_tf.cli import _model_flags
from deeplab_tf.cli._common import UserError, dataset_num_classes, parse_size, run_app
from deeplab_tf.config import EXPORT_FORMATS, TFLITE_MODES, TFLITE_OUTPUTS

CONFIG_JSON = "config.json"

_CHECKPOINT = flags.DEFINE_string(
    "checkpoint", None,
    "Checkpoint prefix or directory (its latest): deeplab-train's, or an original TF1 one.")
_EXPORT_DIR = flags.DEFINE_string(
    "export_dir", None,
    "Output folder: SavedModels go to EXPORT_DIR/MODEL_NAME/<version>/ (TF Serving's "
    "model_base_path is EXPORT_DIR/MODEL_NAME); TFLite to EXPORT_DIR/MODEL_NAME_MODE.tflite.")
_FORMAT = flags.DEFINE_enum("format", "saved_model", list(EXPORT_FORMATS), "What to export.")
_MODEL_NAME = flags.DEFINE_string("model_name", "deeplab", "Model name (TF Serving's).")
_EXPORT_VERSION = flags.DEFINE_integer(
    "export_version", None, "SavedModel version; default: one more than the largest existing.")
_INFERENCE_SCALES = flags.DEFINE_multi_float(
    "inference_scales", None,
    "SavedModel: input scales averaged in the graph (repeat the flag); default: "
    "--eval_scales (a recipe's), else 1.0.")
_EVAL_SCALES = flags.DEFINE_multi_float(
    "eval_scales", None,
    "deeplab-eval's scales: the default of --inference_scales, so that an export of a recipe "
    "predicts what deeplab-eval evaluates.")
_ADD_FLIPPED_IMAGES = flags.DEFINE_boolean(
    "add_flipped_images", False, "SavedModel: also average left-right flipped images.")
_EXPORT_PROBABILITIES = flags.DEFINE_boolean(
    "export_probabilities", False, "SavedModel: also output semantic_probabilities.")
_EVAL_CROP_SIZE = flags.DEFINE_list(
    "eval_crop_size", None,
    "SavedModel: 'height,width'; smaller images are padded to it as deeplab-eval does (use "
    "deeplab-eval's value for identical predictions). Empty: pad to k*output_stride+1.")
_FOLD_BATCH_NORM = flags.DEFINE_boolean(
    "fold_batch_norm", False,
    "SavedModel: fold batch norm into the convolutions (~15% faster on CPU; predictions then "
    "equal deeplab-eval's up to float rounding, not bit for bit).")
_CROP_SIZE = flags.DEFINE_multi_string(
    "crop_size", ["513,513"],
    "TFLite: the fixed input size 'height,width' (or the original export_model.py's "
    "--crop_size=H --crop_size=W; one value: a square).")
_TFLITE_MODE = flags.DEFINE_enum(
    "tflite_mode", "float32", list(TFLITE_MODES),
    "TFLite: float32, float16 (weights), dynamic_range (int8 weights) or int8 (full integer, "
    "uint8 pixel input, needs --calibration_dataset_dir).")
_TFLITE_OUTPUT = flags.DEFINE_enum(
    "tflite_output", "argmax", list(TFLITE_OUTPUTS),
    "TFLite: argmax (int32 labels, in the graph) or logits (float32, at the input size).")
_CALIBRATION_DATASET_DIR = flags.DEFINE_string(
    "calibration_dataset_dir", None, "int8: folder of TFRecord shards for calibration.")
_CALIBRATION_SPLIT = flags.DEFINE_string(
    "calibration_split", "train", "int8: the split whose images calibrate.")
_CALIBRATION_STEPS = flags.DEFINE_integer(
    "calibration_steps", 100, "int8: number of calibration images.")
_OVERWRITE = flags.DEFINE_boolean(
    "overwrite", False, "TFLite: replace an existing file (SavedModel versions never are).")
_DATASET = flags.DEFINE_string(
    "dataset", None, "Dataset whose class count is the default --num_classes.")


def _crop_size():
    """--crop_size as (height, width): '513,513', '513' (square) or the flag given twice."""
    values = [v.strip() for v in ",".join(_CROP_SIZE.value or ["513,513"]).split(",")]
    return parse_size(values * 2 if len(values) == 1 else values, "crop_size")


def export_config_from_flags():
    from deeplab_tf.config import ExportConfig

    scales = _INFERENCE_SCALES.value or _EVAL_SCALES.value or (1.0,)
    flipped = _ADD_FLIPPED_IMAGES.value
    if _FORMAT.value == "tflite" and not _INFERENCE_SCALES.value:
        # A recipe's evaluation settings do not apply to a single-scale TFLite model.
        if tuple(scales) != (1.0,) or flipped:
            logging.warning("TFLite models are single-scale: --eval_scales and "
                            "--add_flipped_images are ignored.")
        scales, flipped = (1.0,), False
    return ExportConfig(
        format=_FORMAT.value, model_name=_MODEL_NAME.value, export_version=_EXPORT_VERSION.value,
        inference_scales=tuple(scales),
        add_flipped_images=flipped,
        export_probabilities=_EXPORT_PROBABILITIES.value,
        eval_crop_size=(parse_size(_EVAL_CROP_SIZE.value, "eval_crop_size")
                        if _EVAL_CROP_SIZE.value else None),
        fold_batch_norm=_FOLD_BATCH_NORM.value,
        crop_size=_crop_size(),
        tflite_mode=_TFLITE_MODE.value, tflite_output=_TFLITE_OUTPUT.value,
        calibration_dataset_dir=_CALIBRATION_DATASET_DIR.value or "",
        calibration_split=_CALIBRATION_SPLIT.value,
        calibration_steps=_CALIBRATION_STEPS.value)


def _check_destination(export_config, export_dir):
    """Fails before any work if the output cannot be written (or would overwrite a file)."""
    from deeplab_tf.export import saved_model, tflite

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
    if export_config.tflite_mode == "int8":
        if not export_config.calibration_dataset_dir:
            raise UserError("--tflite_mode=int8 needs --calibration_dataset_dir (TFRecord "
                            "shards of representative images)")
        from deeplab_tf.data import schema

        schema.list_shards(export_config.calibration_dataset_dir, export_config.calibration_split)


def _explicit_model_flags():
    names = [f.name for f in flags.FLAGS.get_flags_for_module(_model_flags.__name__)]
    return sorted(name for name in names if flags.FLAGS[name].present)


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
    return dataset_num_classes(_DATASET.value) if _DATASET.value else None


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
    if run_config is not None and not _explicit_model_flags():
        return run_config, f"Model: {path} (no model flags given)."
    config = _model_flags.model_config_from_flags(
        num_classes=_default_num_classes(checkpoint_path, kind, run_config))
    return config, "Model: from the model flags."


def main(argv):
    if len(argv) > 1:
        raise UserError(f"Unexpected arguments: {' '.join(argv[1:])}")
    if not _CHECKPOINT.value:
        raise UserError("--checkpoint is required")
    if not _EXPORT_DIR.value:
        raise UserError("--export_dir is required")
    export_config = export_config_from_flags()
    _check_destination(export_config, _EXPORT_DIR.value)

    from deeplab_tf.checkpoints import checkpoint_kind, resolve_checkpoint_path
    from deeplab_tf.export import load_weights
    from deeplab_tf.model import build_model

    checkpoint = resolve_checkpoint_path(_CHECKPOINT.value)
    kind = checkpoint_kind(checkpoint)
    config, source = model_config(checkpoint, kind)
    print(source, flush=True)
    model = build_model(config)
    report = load_weights(model, checkpoint, config)
    logging.info("%s", report.summary())
    print(f"Loaded {len(report.loaded)} variables from {kind} checkpoint {report.path}.",
          flush=True)
    metadata = {"checkpoint": os.path.abspath(report.path), "checkpoint_kind": kind}

    if export_config.format == "saved_model":
        from deeplab_tf.export.saved_model import export_saved_model, directory_size

        path = export_saved_model(model, config, export_config, _EXPORT_DIR.value, metadata)
        print(f"Exported SavedModel version {os.path.basename(path)} to {path} "
              f"({directory_size(path) / 1e6:.2f} MB); signatures serving_default "
              f"(encoded images), predict_images (uint8 pixels); scales "
              f"{list(export_config.inference_scales)}"
              f"{', flipped' if export_config.add_flipped_images else ''}.")
        return
    if export_config.format == "frozen_graph":
        from deeplab_tf.evaluation.inference import InferenceSpec
        from deeplab_tf.export.frozen_graph import export_frozen_graph

        path = export_frozen_graph(
            model, config, InferenceSpec.from_export_config(config, export_config),
            export_config.export_path or os.path.join(_EXPORT_DIR.value,
                                                      "frozen_inference_graph.pb"),
            save_inference_graph=export_config.save_inference_graph)
        print(f"Wrote {path} (ImageTensor -> SemanticPredictions, SemanticProbabilities).")
        return
    from deeplab_tf.export.tflite import export_tflite

    result = export_tflite(model, config, export_config, _EXPORT_DIR.value,
                           overwrite=_OVERWRITE.value, metadata=metadata)
    spec = result["input"]
    print(f"Wrote {result['path']} ({result['size_bytes'] / 1e6:.2f} MB, "
          f"{export_config.tflite_mode}; input {spec['name']} {spec['dtype']} {spec['shape']}, "
          f"output {result['output']['name']} {result['output']['dtype']} "
          f"{result['output']['shape']}) and {result['metadata_path']}.")


def run():
    run_app(main)


if __name__ == "__main__":
    run()
