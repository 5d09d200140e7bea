"""deeplab-export's flags: the original export_model.py's and this project's formats.

``--export_path=DIR/frozen_inference_graph.pb`` (the original's) writes a frozen GraphDef;
``--export_dir`` receives the other formats. ``--checkpoint`` is this project's older name
of ``--checkpoint_path``. Defaults are ``ExportConfig``'s.
"""

from __future__ import annotations

from absl import flags

from deeplab_tf.cli.flags import data
from deeplab_tf.cli.flags.values import default, size_default
from deeplab_tf.config import (EXPORT_FORMATS, TFLITE_MODES, TFLITE_OUTPUT_SIZES, TFLITE_OUTPUTS,
                               ExportConfig)

_X = ExportConfig

CHECKPOINT = flags.DEFINE_string(
    "checkpoint", None, "Older name of --checkpoint_path (a prefix, a directory: its latest, "
    "or a model-zoo .tar.gz).")
EXPORT_DIR = flags.DEFINE_string(
    "export_dir", None,
    "Output folder: SavedModels go to EXPORT_DIR/MODEL_NAME/<version>/ (TF Serving's "
    "model_base_path is EXPORT_DIR/MODEL_NAME); TFLite, OpenVINO and ONNX files into it.")
EXPORT_PATH = flags.DEFINE_string(
    "export_path", default(_X, "export_path") or None,
    "The original's flag: path of the frozen GraphDef to write (frozen_inference_graph.pb); "
    "selects --format=frozen_graph.")
FORMAT = flags.DEFINE_enum(
    "format", default(_X, "format"), list(EXPORT_FORMATS),
    "What to export (default: saved_model; frozen_graph when --export_path is given).")
MODEL_NAME = flags.DEFINE_string("model_name", default(_X, "model_name"),
                                 "Model name (TF Serving's; file name stem of the others).")
EXPORT_VERSION = flags.DEFINE_integer(
    "export_version", default(_X, "export_version"),
    "SavedModel version; default: one more than the largest existing.")
INFERENCE_SCALES = flags.DEFINE_multi_float(
    "inference_scales", None,
    "Input scales averaged in the graph (repeat the flag); default: --eval_scales (a "
    "recipe's), else 1.0.")
EXPORT_PROBABILITIES = flags.DEFINE_boolean(
    "export_probabilities", default(_X, "export_probabilities"),
    "SavedModel / OpenVINO: also output the class probabilities.")
CROP_SIZE = flags.DEFINE_multi_string(
    "crop_size", size_default(_X, "crop_size"),
    "'height,width' or the original's --crop_size=H --crop_size=W (one value: a square). "
    "Frozen graph: images are padded to it; TFLite: the fixed input size; deeplab-bench / "
    "deeplab-model-stats: the input size.")
TFLITE_MODE = flags.DEFINE_enum(
    "tflite_mode", default(_X, "tflite_mode"), list(TFLITE_MODES),
    "TFLite: float32, float16 (weights), dynamic_range (int8 weights), int8 (full integer, "
    "uint8 pixel input; a float checkpoint needs --calibration_dataset_dir, a "
    "quantization-aware one uses its ranges) or edgetpu (int8, uint8 scores out, Edge TPU "
    "operations only; runs edgetpu_compiler when it is on the PATH).")
TFLITE_OUTPUT = flags.DEFINE_enum(
    "tflite_output", default(_X, "tflite_output"), list(TFLITE_OUTPUTS),
    "TFLite: argmax (int32 labels, in the graph), argmax_uint8 (uint8 labels) or logits "
    "(class scores; the default of --tflite_mode=edgetpu).")
TFLITE_OUTPUT_SIZE = flags.DEFINE_enum(
    "tflite_output_size", default(_X, "tflite_output_size"), list(TFLITE_OUTPUT_SIZES),
    "TFLite: outputs at the input size, or at the output stride (no final upsample in the "
    "model; the LiteRT runner upsamples on the host).")
CALIBRATION_DATASET_DIR = flags.DEFINE_string(
    "calibration_dataset_dir", None, "int8: folder of TFRecord shards for calibration.")
CALIBRATION_SPLIT = flags.DEFINE_string(
    "calibration_split", default(_X, "calibration_split"), "int8: the split that calibrates.")
CALIBRATION_STEPS = flags.DEFINE_integer(
    "calibration_steps", default(_X, "calibration_steps"), "int8: number of calibration images.")
OVERWRITE = flags.DEFINE_boolean(
    "overwrite", False, "TFLite: replace an existing file (SavedModel versions never are).")
SAVE_INFERENCE_GRAPH = flags.DEFINE_boolean(
    "save_inference_graph", default(_X, "save_inference_graph"),
    "Frozen graph: also write the unfrozen graph (inference_graph.pbtxt) beside it.")
MAX_IMAGE_PIXELS = data.MAX_IMAGE_PIXELS  # defined with the data flags (every reader of images)
