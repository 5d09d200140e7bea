"""Flags of the original that have no meaning under TF2, or options it had that are not built.

Each is accepted with the original's name, type and default, so the original's commands
parse. When given with another value:

- a *notice* flag prints one line saying what replaces it, and the run goes on;
- an *error* flag (an option that changes the model or the training and is not
  implemented here) stops the binary with a one-line error naming the flag, before any work.

``LEGACY`` is the table the binaries check and docs/compatibility.md's generated table lists.
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

# --- TF1 deployment flags (train.py, eval.py, vis.py) ------------------------------------------
NUM_CLONES = flags.DEFINE_integer("num_clones", 1, "The original's: number of clones (GPUs).")
CLONE_ON_CPU = flags.DEFINE_boolean("clone_on_cpu", False, "The original's: clones on CPUs.")
NUM_REPLICAS = flags.DEFINE_integer("num_replicas", 1, "The original's: worker replicas.")
STARTUP_DELAY_STEPS = flags.DEFINE_integer(
    "startup_delay_steps", 15, "The original's: steps between replica start-ups.")
MASTER = flags.DEFINE_string("master", "", "The original's: TF1 session master.")
TASK = flags.DEFINE_integer("task", 0, "The original's: task index.")
SAVE_SUMMARIES_SECS = flags.DEFINE_integer(
    "save_summaries_secs", 600, "The original's: seconds between summaries.")
PROFILE_LOGDIR = flags.DEFINE_string("profile_logdir", None, "The original's: profiler output.")
EVAL_BATCH_SIZE = flags.DEFINE_integer("eval_batch_size", 1, "The original's eval batch size.")
VIS_BATCH_SIZE = flags.DEFINE_integer("vis_batch_size", 1, "The original's vis batch size.")
# --- options the original had that are not implemented -----------------------------------------
KEEP_ASPECT_RATIO = flags.DEFINE_boolean(
    "keep_aspect_ratio", True, "The original's resize option, which its scripts never read.")

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
    Legacy(KEEP_ASPECT_RATIO, "notice",
           "ignored, as in the original, whose scripts never pass it to resize_to_range "
           "(the aspect ratio is always kept)", MODEL_BINARIES),
)
BY_NAME = {entry.holder.name: entry for entry in LEGACY}
