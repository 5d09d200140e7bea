"""Quantization-aware training flags, read by deeplab-train, -eval, -vis and -export.

``--quantize_delay_step`` is the original's (train.py, eval.py, vis.py, export_model.py):
< 0 (default) the float network; N >= 0 trains the quantization-aware network (float up to
step N - 1, quantized from step N on: ``TrainConfig.quantize_delay_step``), and makes eval,
vis and export build the quantized evaluation graph. They also build it, without the flag,
for a checkpoint that holds quantization ranges (``checkpoints.quantization``).
``--weight_quantization`` (new) chooses how weights are quantized
(``ModelConfig.quantization``): per_channel (TFLite int8) or per_tensor (the original's, its
8-bit zoo checkpoints); eval, vis and export follow the checkpoint's ranges.
"""

from __future__ import annotations

from absl import flags

from deeplab_tf.cli.flags.values import default
from deeplab_tf.config import QUANTIZATIONS, TrainConfig

QUANTIZE_DELAY_STEP = flags.DEFINE_integer(
    "quantize_delay_step", default(TrainConfig, "quantize_delay_step"),
    "Quantization-aware training: < 0 off; N >= 0 trains float up to step N - 1 and with "
    "8-bit fake quantization (batch norm folded) from step N. deeplab-eval/-vis/-export: >= 0 "
    "builds the quantized evaluation graph (also without it for a checkpoint holding ranges).")
WEIGHT_QUANTIZATION = flags.DEFINE_enum(
    "weight_quantization", QUANTIZATIONS[0], list(QUANTIZATIONS),
    "With --quantize_delay_step: per_channel (symmetric per output channel, TFLite int8) or "
    "per_tensor (the original's contrib.quantize scheme and its 8-bit zoo checkpoints).")


def requested_quantization():
    """The ModelConfig.quantization the flags ask for: None when --quantize_delay_step < 0."""
    return WEIGHT_QUANTIZATION.value if QUANTIZE_DELAY_STEP.value >= 0 else None
