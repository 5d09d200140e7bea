"""deeplab_tf: DeepLabv3 / DeepLabv3+ for TensorFlow 2 and Keras 3.

A faithful port of the original TF1 DeepLab (tensorflow/models, research/deeplab): the same
networks layer for layer, original checkpoints convertible by name, the original's recipes as
flagfiles.
"""

from deeplab_tf.config import ModelConfig
from deeplab_tf.model import build_model, model_stats

__all__ = ["ModelConfig", "build_model", "model_stats", "load_original_checkpoint"]
__version__ = "0.1.0"


def load_original_checkpoint(model, path, initialize_last_layer=True, **kwargs):
    """See ``deeplab_tf.checkpoints.load_original_checkpoint``."""
    from deeplab_tf.checkpoints import load_original_checkpoint as _load

    return _load(model, path, initialize_last_layer=initialize_last_layer, **kwargs)
