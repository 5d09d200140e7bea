"""Exports: SavedModel for TF Serving (``saved_model``), the original's frozen GraphDef
(``frozen_graph``) and TFLite (``tflite``).

All start from a model whose weights ``checkpoints.load_for_inference`` loaded exactly
(``load_weights`` is its old name) and compute through ``evaluation.inference.predict``.
"""

from deeplab_tf.export.weights import load_weights

__all__ = ["load_weights"]
