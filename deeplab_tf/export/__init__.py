"""Exports: SavedModel for TF Serving (``saved_model``) and TFLite (``tflite``).

Both start from a model whose weights ``weights.load_weights`` loaded exactly.
"""

from deeplab_tf.export.weights import load_weights

__all__ = ["load_weights"]
