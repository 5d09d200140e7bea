"""deeplab-eval's own flags (the original eval.py's, plus trimap and backend options)."""

from __future__ import annotations

from absl import flags

from deeplab_tf.cli.flags.values import default
from deeplab_tf.config import INFERENCE_BACKENDS, DataConfig, EvalConfig

EVAL_LOGDIR = flags.DEFINE_string("eval_logdir", None, "Where to write the results.")
EVAL_SPLIT = flags.DEFINE_string("eval_split", default(DataConfig, "eval_split"),
                                 "Which split of the dataset to evaluate.")
MAX_NUMBER_OF_EVALUATIONS = flags.DEFINE_integer(
    "max_number_of_evaluations", default(EvalConfig, "max_number_of_evaluations"),
    "Checkpoints to evaluate; 0 or less: each new one until interrupted (the original's).")
TRIMAP_WIDTHS = flags.DEFINE_multi_integer(
    "trimap_widths", None,
    "Also report mIoU within bands of these widths (pixels) around label boundaries "
    "(DeepLabv3+ section 4.4); repeat the flag for several.")
INFERENCE_BACKEND = flags.DEFINE_enum(
    "inference_backend", default(EvalConfig, "inference_backend"), list(INFERENCE_BACKENDS),
    "Runtime that evaluates: tf, or openvino (the model converted in memory; same "
    "pre- and post-processing).")


def eval_fields() -> dict:
    """The EvalConfig fields only deeplab-eval sets."""
    return dict(trimap_widths=tuple(TRIMAP_WIDTHS.value or ()),
                max_number_of_evaluations=MAX_NUMBER_OF_EVALUATIONS.value,
                inference_backend=INFERENCE_BACKEND.value)
