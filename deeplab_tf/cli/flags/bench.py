"""deeplab-bench's and deeplab-model-stats's flags (the input size is ``--crop_size``)."""

from __future__ import annotations

from absl import flags

BATCH_SIZE = flags.DEFINE_integer("batch_size", 4, "Batch size of the throughput run.")
MODES = flags.DEFINE_list(
    "modes", "eager,function,function_folded,xla,bfloat16_folded",
    "Inference modes to time (eager, function, function_folded, xla, bfloat16, "
    "bfloat16_folded).")
REPEATS = flags.DEFINE_integer("repeats", 5, "Timed repetitions (median reported).")
THROUGHPUT = flags.DEFINE_boolean("throughput", True, "Also time --batch_size images.")
TRAIN = flags.DEFINE_boolean("train", False, "Also time training steps (float32, bfloat16).")
BENCH_TRAIN_BATCH_SIZE = flags.DEFINE_integer(
    "bench_train_batch_size", 2, "Batch size of the training-step benchmark.")
TRAIN_JIT = flags.DEFINE_list("train_jit", "false,true", "Time training without and/or with XLA.")
PIPELINE_DATASET_DIR = flags.DEFINE_string(
    "pipeline_dataset_dir", None, "TFRecord directory: also time the training input pipeline.")
SAVED_MODEL_DIR = flags.DEFINE_string(
    "saved_model_dir", None, "A SavedModel version directory to time (predict_images).")
TFLITE_MODEL = flags.DEFINE_multi_string("tflite_model", None, "TFLite model(s) to time.")
AGREEMENT = flags.DEFINE_boolean(
    "agreement", True, "Also compare folded and bfloat16 outputs with float32 (random weights "
    "with realistic batch-norm statistics): max relative logit difference, argmax agreement.")
OUTPUT_JSON = flags.DEFINE_string("output_json", "bench_output/bench.json",
                                  "Where to write the results.")
JSON = flags.DEFINE_string("json", None, "deeplab-model-stats: also write the figures to this "
                           "JSON file.")
CONTENDERS = flags.DEFINE_list(
    "contenders", None,
    "Run the side-by-side comparison (bench.compare: each contender in its own process, "
    "alternating rounds) instead of the in-process modes: some of tf_function, tf_folded, "
    "tf_folded_bfloat16, tf_frozen, saved_model, saved_model_bfloat16, openvino, "
    "openvino_bfloat16, openvino_int8 (NNCF), openvino_tflite_int8, onnxruntime, tflite, "
    "tflite_int8, original. Given empty (--contenders=): tf_folded, tf_frozen, saved_model, "
    "openvino, onnxruntime, tflite where their runtime is installed here. tf_function (the "
    "reference) always runs.")
COMPARE_FROZEN_GRAPH = flags.DEFINE_string(
    "compare_frozen_graph", None,
    "An original frozen_inference_graph.pb (ImageTensor:0 uint8 [1, H, W, 3] -> "
    "SemanticPredictions:0): adds the 'original' contender, run on the same image (implies "
    "the comparison; --contenders defaults to every available one).")
COMPARE_ROUNDS = flags.DEFINE_integer(
    "compare_rounds", 5, "Timed rounds of the comparison (median and spread reported).",
    lower_bound=1)
COMPARE_SCENES = flags.DEFINE_boolean(
    "compare_scenes", False,
    "The comparison times (and calibrates int8 on) the demo's scenes (shapes on textured "
    "backgrounds) instead of smooth random blobs: with the demo's checkpoint, real-looking "
    "input for the agreement column.")
COMPARE_CALIBRATION_IMAGES = flags.DEFINE_integer(
    "compare_calibration_images", 8,
    "Images that calibrate the comparison's int8 contenders.", lower_bound=1)
CONTENDER_ENV = flags.DEFINE_multi_string(
    "contender_env", None,
    "NAME=VALUE (repeatable): an environment variable for every contender's process but the "
    "original's, e.g. ONEDNN_MAX_CPU_ISA=AVX2 to emulate the AVX2 kind on an AVX-512 CPU "
    "(--inference_precision=auto then says float32, as there).")
ORIGINAL_ENV = flags.DEFINE_multi_string(
    "original_env", None,
    "NAME=VALUE (repeatable): an environment variable for the original's process, e.g. "
    "TF_ENABLE_ONEDNN_OPTS=0 (TensorFlow's own kernels, its default on the AVX2 kind).")
