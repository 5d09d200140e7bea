"""Old name of ``deeplab_tf.checkpoints.load_for_inference`` (the one loading rule)."""

from __future__ import annotations

from deeplab_tf.checkpoints import LoadReport, load_for_inference


def load_weights(model, checkpoint: str, model_config=None) -> LoadReport:
    """``checkpoints.load_for_inference(model, checkpoint, model_config)``."""
    return load_for_inference(model, checkpoint, model_config)
