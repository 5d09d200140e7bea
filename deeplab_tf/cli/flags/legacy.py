"""Flags of the original that have no meaning under TF2, or options it had that are not built.

Each is accepted with the original's name, type and default, so the original's commands
parse. When given with another value:

- a *notice* flag prints one line saying what replaces it, and the run goes on;
- an *error* flag (an option that changes the model or the training and is not
  implemented here) stops the binary with a one-line error naming the flag, before any work.

``LEGACY`` is the table the binaries check and the README's compatibility section lists.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Tuple

from absl import flags

# The original scripts, and the binary that replaces each.
SCRIPT_BINARIES = {
    "train": ("deeplab-train",),
    "eval": ("deeplab-eval",),
    "vis": ("deeplab-vis",),
    "export_model": ("deeplab-export",),
}
# common.py's flags apply to every binary that builds a model.
MODEL_BINARIES = ("deeplab-train", "deeplab-eval", "deeplab-vis", "deeplab-export",
                  "deeplab-bench", "deeplab-model-stats", "deeplab-convert-checkpoint")


@dataclasses.dataclass(frozen=True)
class Legacy:
    """One original flag that is accepted but not honoured as such.

    Attributes:
        holder: the FlagHolder.
        kind: ``"notice"`` or ``"error"``.
        text: what replaces it (notice) or why it cannot be used and what to do (error).
        binaries: the binaries for which it is the original's flag.
        triggers: value -> bool: whether the given value needs the notice / the error
            (default: any value other than the original's default).
    """

    holder: flags.FlagHolder
    kind: str
    text: str
    binaries: Tuple[str, ...]
    triggers: Callable = None

    def fires(self) -> bool:
        if not self.holder.present:
            return False
        value = self.holder.value
        if self.triggers is not None:
            return bool(self.triggers(value))
        return value != flags.FLAGS[self.holder.name].default


_EVAL_VIS = SCRIPT_BINARIES["eval"] + SCRIPT_BINARIES["vis"]
_TRAIN_EVAL_VIS = SCRIPT_BINARIES["train"] + _EVAL_VIS
_NOT_BUILT = "not implemented in deeplab_tf; remove the flag"
_NAS = "NAS model variants are not implemented in deeplab_tf; remove the flag"

# --- TF1 deployment flags (train.py, eval.py, vis.py) ------------------------------------------
NUM_CLONES = flags.DEFINE_integer("num_clones", 1, "The original's: number of clones (GPUs).")
CLONE_ON_CPU = flags.DEFINE_boolean("clone_on_cpu", False, "The original's: clones on CPUs.")
NUM_REPLICAS = flags.DEFINE_integer("num_replicas", 1, "The original's: worker replicas.")
STARTUP_DELAY_STEPS = flags.DEFINE_integer(
    "startup_delay_steps", 15, "The original's: steps between replica start-ups.")
NUM_PS_TASKS = flags.DEFINE_integer("num_ps_tasks", 0, "The original's: parameter servers.")
MASTER = flags.DEFINE_string("master", "", "The original's: TF1 session master.")
TASK = flags.DEFINE_integer("task", 0, "The original's: task index.")
SAVE_SUMMARIES_SECS = flags.DEFINE_integer(
    "save_summaries_secs", 600, "The original's: seconds between summaries.")
PROFILE_LOGDIR = flags.DEFINE_string("profile_logdir", None, "The original's: profiler output.")
EVAL_BATCH_SIZE = flags.DEFINE_integer("eval_batch_size", 1, "The original's eval batch size.")
VIS_BATCH_SIZE = flags.DEFINE_integer("vis_batch_size", 1, "The original's vis batch size.")
# --- options the original had that are not implemented -----------------------------------------
DECAY_STEPS = flags.DEFINE_float("decay_steps", 0.0, "The original's poly decay steps.")
END_LEARNING_RATE = flags.DEFINE_float("end_learning_rate", 0.0,
                                       "The original's poly end learning rate.")
DROP_PATH_KEEP_PROB = flags.DEFINE_float("drop_path_keep_prob", 1.0,
                                         "The original's NAS drop-path keep probability.")
KEEP_ASPECT_RATIO = flags.DEFINE_boolean("keep_aspect_ratio", True,
                                         "The original's resize option (always kept here).")
LOGITS_KERNEL_SIZE = flags.DEFINE_integer("logits_kernel_size", 1,
                                          "The original's logits kernel size.")
IMAGE_PYRAMID = flags.DEFINE_multi_float("image_pyramid", None,
                                         "The original's multi-scale feature extraction.")
ASPP_WITH_BATCH_NORM = flags.DEFINE_boolean("aspp_with_batch_norm", True,
                                            "The original's ASPP batch norm switch.")
MERGE_METHOD = flags.DEFINE_enum("merge_method", "max", ["max", "avg"],
                                 "The original's image_pyramid merge.")
PREDICTION_WITH_UPSAMPLED_LOGITS = flags.DEFINE_boolean(
    "prediction_with_upsampled_logits", True, "The original's upsample-then-argmax switch.")
DENSE_PREDICTION_CELL_JSON = flags.DEFINE_string(
    "dense_prediction_cell_json", "", "The original's dense prediction cell (NAS).")
NAS_STEM_OUTPUT_NUM_CONV_FILTERS = flags.DEFINE_integer(
    "nas_stem_output_num_conv_filters", 20, "The original's NAS stem filters.")
NAS_USE_CLASSIFICATION_HEAD = flags.DEFINE_boolean(
    "nas_use_classification_head", False, "The original's NAS classification head.")
NAS_REMOVE_OS32_STRIDE = flags.DEFINE_boolean(
    "nas_remove_os32_stride", False, "The original's NAS OS32 stride removal.")
USE_BOUNDED_ACTIVATION = flags.DEFINE_boolean(
    "use_bounded_activation", False, "The original's bounded activations.")
ASPP_WITH_CONCAT_PROJECTION = flags.DEFINE_boolean(
    "aspp_with_concat_projection", True, "The original's ASPP concat projection switch.")
ASPP_WITH_SQUEEZE_AND_EXCITATION = flags.DEFINE_boolean(
    "aspp_with_squeeze_and_excitation", False, "The original's ASPP squeeze-and-excitation.")
DECODER_USE_SUM_MERGE = flags.DEFINE_boolean(
    "decoder_use_sum_merge", False, "The original's decoder sum merge.")
DECODER_OUTPUT_IS_LOGITS = flags.DEFINE_boolean(
    "decoder_output_is_logits", False, "The original's decoder-as-logits switch.")
IMAGE_SE_USES_QSIGMOID = flags.DEFINE_boolean(
    "image_se_uses_qsigmoid", False, "The original's q-sigmoid switch.")

LEGACY = (
    Legacy(NUM_CLONES, "notice",
           "N > 1 trains with tf.distribute.MirroredStrategy on N local GPUs (N logical CPU "
           "devices with --clone_on_cpu); the batch is split over them as the original did",
           SCRIPT_BINARIES["train"]),
    Legacy(CLONE_ON_CPU, "notice",
           "training runs on the CPU (GPUs hidden); with --num_clones=N on N logical CPU devices",
           SCRIPT_BINARIES["train"]),
    Legacy(NUM_REPLICAS, "notice",
           "workers come from TF_CONFIG (--strategy=multi_worker or auto); this flag is not read",
           SCRIPT_BINARIES["train"]),
    Legacy(STARTUP_DELAY_STEPS, "notice",
           "workers train synchronously and start together; no start-up delay",
           SCRIPT_BINARIES["train"]),
    Legacy(NUM_PS_TASKS, "error",
           "parameter-server training is not supported; use --strategy=multi_worker with "
           "TF_CONFIG (synchronous all-reduce)", SCRIPT_BINARIES["train"]),
    Legacy(MASTER, "notice",
           "TF2 has no session master: workers come from TF_CONFIG, a TPU from --tpu",
           _TRAIN_EVAL_VIS),
    Legacy(TASK, "notice", "the task index comes from TF_CONFIG", SCRIPT_BINARIES["train"]),
    Legacy(SAVE_SUMMARIES_SECS, "notice",
           "summaries are written every --log_steps steps", SCRIPT_BINARIES["train"]),
    Legacy(PROFILE_LOGDIR, "notice",
           "not read; profile with TensorBoard's profiler (tf.profiler.experimental) instead",
           SCRIPT_BINARIES["train"]),
    Legacy(EVAL_BATCH_SIZE, "notice",
           "images are evaluated one at a time, whole (they differ in size)",
           SCRIPT_BINARIES["eval"]),
    Legacy(VIS_BATCH_SIZE, "notice",
           "images are visualized one at a time, whole (they differ in size)",
           SCRIPT_BINARIES["vis"]),
    Legacy(DECAY_STEPS, "error",
           "the poly policy decays over --training_number_of_steps; a separate decay_steps "
           "is not implemented", SCRIPT_BINARIES["train"]),
    Legacy(END_LEARNING_RATE, "error",
           "the poly policy decays to 0; end_learning_rate is not implemented",
           SCRIPT_BINARIES["train"]),
    Legacy(DROP_PATH_KEEP_PROB, "error", _NAS, SCRIPT_BINARIES["train"]),
    Legacy(KEEP_ASPECT_RATIO, "error",
           "resize to range always keeps the aspect ratio here", MODEL_BINARIES),
    Legacy(LOGITS_KERNEL_SIZE, "error", "only 1x1 logits are implemented", MODEL_BINARIES),
    Legacy(IMAGE_PYRAMID, "error",
           "multi-scale feature extraction is not implemented; --eval_scales / "
           "--inference_scales give multi-scale inference", MODEL_BINARIES,
           triggers=lambda value: bool(value)),
    Legacy(ASPP_WITH_BATCH_NORM, "error", "ASPP is always built with batch norm here",
           MODEL_BINARIES),
    Legacy(MERGE_METHOD, "error",
           "merge_method applies to --image_pyramid, which is not implemented", MODEL_BINARIES),
    Legacy(PREDICTION_WITH_UPSAMPLED_LOGITS, "error",
           "predictions always upsample the logits, then take the argmax", MODEL_BINARIES),
    Legacy(DENSE_PREDICTION_CELL_JSON, "error",
           "dense prediction cells (NAS) are " + _NOT_BUILT, MODEL_BINARIES),
    Legacy(NAS_STEM_OUTPUT_NUM_CONV_FILTERS, "error", _NAS, MODEL_BINARIES),
    Legacy(NAS_USE_CLASSIFICATION_HEAD, "error", _NAS, MODEL_BINARIES),
    Legacy(NAS_REMOVE_OS32_STRIDE, "error", _NAS, MODEL_BINARIES),
    Legacy(USE_BOUNDED_ACTIVATION, "error", "bounded activations are " + _NOT_BUILT,
           MODEL_BINARIES),
    Legacy(ASPP_WITH_CONCAT_PROJECTION, "error",
           "ASPP without its concat projection is " + _NOT_BUILT, MODEL_BINARIES),
    Legacy(ASPP_WITH_SQUEEZE_AND_EXCITATION, "error",
           "ASPP squeeze-and-excitation is " + _NOT_BUILT, MODEL_BINARIES),
    Legacy(DECODER_USE_SUM_MERGE, "error", "the decoder's sum merge is " + _NOT_BUILT,
           MODEL_BINARIES),
    Legacy(DECODER_OUTPUT_IS_LOGITS, "error", "decoder output as logits is " + _NOT_BUILT,
           MODEL_BINARIES),
    Legacy(IMAGE_SE_USES_QSIGMOID, "error", "q-sigmoid is " + _NOT_BUILT, MODEL_BINARIES),
)
BY_NAME = {entry.holder.name: entry for entry in LEGACY}
