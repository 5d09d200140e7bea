"""The one inference path of eval, vis, every export, training summaries and Keras.

``InferenceSpec`` (``spec``) says how an image becomes labels; ``prepare_model`` gives the
formulation to run (batch norm folded by default); ``predict`` pads with the mean pixel,
runs single-scale, multi-scale + flip (``multiscale``) or sliding windows
(``sliding_window``), upsamples the logits (align corners) and crops back; ``predict_function``
compiles it (``compiled_predict``: frozen for a folded model). ``spec.precision`` (float32 or
bfloat16, from ``--inference_precision``) is the precision ``prepare_model``'s copy computes in. See ``deeplab_tf.inference.predict`` for the steps.

Example:

>>> from deeplab_tf import inference
>>> spec = inference.InferenceSpec.from_configs(model_config, EvalConfig())
>>> labels = inference.predict_function(inference.prepare_model(model, spec), spec)(images)
"""

from deeplab_tf.inference.multiscale import (pad_images, predict_labels, predict_probabilities,
                                             upsample_logits)
from deeplab_tf.inference.predict import (LABELS, PROBABILITIES, compiled_predict,
                                          crop_outputs, pad_inputs, predict, predict_function,
                                          prepare_model, single_pass_outputs)
from deeplab_tf.inference.sliding_window import (predict_labels_sliding_window,
                                                 predict_probabilities_sliding_window)
from deeplab_tf.inference.spec import InferenceSpec

__all__ = ["InferenceSpec", "LABELS", "PROBABILITIES", "compiled_predict", "crop_outputs",
           "pad_images", "pad_inputs", "predict", "predict_function", "predict_labels",
           "predict_labels_sliding_window", "predict_probabilities",
           "predict_probabilities_sliding_window", "prepare_model", "single_pass_outputs",
           "upsample_logits"]
