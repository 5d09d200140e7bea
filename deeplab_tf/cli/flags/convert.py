"""deeplab-convert-checkpoint's flags (it also reads the model flags and
--initialize_last_layer / --last_layers_contain_logits_only)."""

from __future__ import annotations

from absl import flags

TF1_CHECKPOINT = flags.DEFINE_string(
    "tf1_checkpoint", None,
    "The original checkpoint: a prefix (e.g. .../model.ckpt), a model-zoo .tar.gz or its "
    "extracted folder.")
OUTPUT = flags.DEFINE_string("output", None, "Output directory (must not exist or be empty).")
