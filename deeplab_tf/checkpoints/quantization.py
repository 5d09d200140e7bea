"""Which quantization a checkpoint's ranges describe, and the model config that loads it.

A quantization-aware model (``ModelConfig.quantization``) keeps its ranges as variables named
``<scope>/weights_quant/{min,max}``, ``<scope>/act_quant/{min,max}`` and
``<block>/post_activation_bypass_quant/{min,max}``: the original's quantized-graph names in
its TF1 checkpoints (the zoo's 8-bit models), attribute paths with the same last parts in
this project's. A weights range of shape [] is one range per kernel (``"per_tensor"``, the
original's), of shape [channels] one per output channel (``"per_channel"``). deeplab-eval,
deeplab-vis and deeplab-export build the quantized evaluation graph for a checkpoint that
holds ranges (``config_for_checkpoint``), as the original's binaries did given
``--quantize_delay_step``.

Example:

>>> checkpoint_quantization("deeplabv3_mnv2_pascal_train_aug_8bit/model.ckpt")
'per_tensor'
"""

from __future__ import annotations

import dataclasses
from typing import Optional

from deeplab_tf.checkpoints.loading import variable_shapes
from deeplab_tf.config import ModelConfig

WEIGHTS_RANGE = "weights_quant/min"


def shapes_quantization(shapes: dict) -> Optional[str]:
    """None, "per_channel" or "per_tensor" for a checkpoint's {key: shape}."""
    for key, shape in shapes.items():
        if WEIGHTS_RANGE in key:
            return "per_channel" if list(shape) else "per_tensor"
    return None


def checkpoint_quantization(path: str) -> Optional[str]:
    """None (no ranges: a float checkpoint), "per_channel" or "per_tensor"."""
    return shapes_quantization(variable_shapes(path))


def config_for_checkpoint(config: ModelConfig, path: str,
                          requested: Optional[str] = None) -> ModelConfig:
    """``config`` with the quantization that loads ``path``.

    Args:
        config: ModelConfig (from the flags or a run's config.json).
        path: a checkpoint prefix.
        requested: None, or the quantization asked for (``--quantize_delay_step >= 0`` with
            ``--weight_quantization``): used when the checkpoint holds no ranges, so that
            loading it fails naming what is missing, as the original's eval graph did.

    Returns:
        The checkpoint's quantization when it holds ranges, else ``requested``, else
        ``config``'s.
    """
    found = checkpoint_quantization(path)
    quantization = found or requested or config.quantization
    if quantization == config.quantization:
        return config
    return dataclasses.replace(config, quantization=quantization)
