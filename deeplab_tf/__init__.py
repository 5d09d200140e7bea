"""deeplab_tf: DeepLabv3 / DeepLabv3+ for TensorFlow 2 and Keras 3.

A faithful port of the original TF1 DeepLab (tensorflow/models, research/deeplab): the same
networks layer for layer, original checkpoints convertible by name, the original's recipes as
flagfiles. The public names below load lazily, so importing a submodule (e.g. a data
converter worker) does not pay for TensorFlow and Keras until it needs them.

Importing the package sets three things up before TensorFlow loads (``deeplab_tf.runtime``):
freed memory kept in the process (``allocator``; ``DEEPLAB_TF_KEEP_FREED_MEMORY=0`` opts
out), oneDNN's kernels on x86 CPUs with AVX2 where TensorFlow would run its own (``onednn``;
``TF_ENABLE_ONEDNN_OPTS=0`` opts out), and the registration of every deeplab_tf Keras class
once Keras is loaded (``keras_registration``), so saved ``.keras`` models load.
"""

import importlib

from deeplab_tf.runtime import keras_registration
from deeplab_tf.runtime.allocator import keep_freed_memory
from deeplab_tf.runtime.onednn import prefer_onednn

__version__ = "0.1.0"

_LAZY = {
    "ModelConfig": "deeplab_tf.config",
    "DeepLab": "deeplab_tf.model",
    "DeepLabSegmenter": "deeplab_tf.segmenter",
    "build_model": "deeplab_tf.model",
    "model_stats": "deeplab_tf.model",
    "load_original_checkpoint": "deeplab_tf.checkpoints.loading",
}
__all__ = sorted(_LAZY)

keep_freed_memory()
prefer_onednn()
keras_registration.install()


def __getattr__(name):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'deeplab_tf' has no attribute {name!r}")
