"""Frozen configuration dataclasses: the single place where options are validated.

Config flows one way: absl flags (``deeplab_tf.cli``) -> these dataclasses -> constructors.
Field names follow the original DeepLab's flags so that a flagfile of the original maps one
to one. Every dataclass validates itself in ``__post_init__`` and raises ``ConfigError`` (a
``ValueError``) with a one-line message that echoes the offending value; every config round
trips through ``to_dict`` / ``from_dict`` and JSON.

Import every config from here (``from deeplab_tf.config import ModelConfig``); one module
each: ``model`` (ModelConfig), ``data`` (DataConfig), ``train`` (TrainConfig), ``eval``
(EvalConfig), ``export`` (ExportConfig), ``base`` (what they share).
"""

from deeplab_tf.config.base import DEFAULT_MAX_IMAGE_PIXELS
from deeplab_tf.config.data import DataConfig
from deeplab_tf.config.eval import INFERENCE_BACKENDS, INFERENCE_PRECISIONS, EvalConfig
from deeplab_tf.config.export import (EXPORT_FORMATS, TFLITE_MODES, TFLITE_OUTPUT_SIZES,
                                      TFLITE_OUTPUTS, ExportConfig)
from deeplab_tf.config.model import (MERGE_METHODS, MODEL_VARIANTS, OUTPUT_STRIDES,
                                     QUANTIZATIONS, ModelConfig)
from deeplab_tf.config.train import (LEARNING_POLICIES, MIXED_PRECISION, OPTIMIZERS, STRATEGIES,
                                     TrainConfig, check_quantization)

__all__ = ["DEFAULT_MAX_IMAGE_PIXELS", "DataConfig", "EXPORT_FORMATS", "EvalConfig",
           "ExportConfig", "INFERENCE_BACKENDS", "INFERENCE_PRECISIONS", "LEARNING_POLICIES",
           "MERGE_METHODS", "MIXED_PRECISION", "MODEL_VARIANTS", "ModelConfig", "OPTIMIZERS",
           "OUTPUT_STRIDES", "QUANTIZATIONS", "STRATEGIES", "TFLITE_MODES",
           "TFLITE_OUTPUT_SIZES", "TFLITE_OUTPUTS", "TrainConfig", "check_quantization"]
