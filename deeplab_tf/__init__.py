"""deeplab_tf: DeepLabv3 / DeepLabv3+ for TensorFlow 2 and Keras 3.

A faithful port of the original TF1 DeepLab (tensorflow/models, research/deeplab): the same
networks layer for layer, original checkpoints convertible by name, the original's recipes as
flagfiles. The public names below load lazily, so importing a submodule (e.g. a data
converter worker) does not pay for TensorFlow and Keras until it needs them.
"""

import importlib

from deeplab_tf.allocator import keep_freed_memory
from deeplab_tf.onednn import prefer_onednn

__version__ = "0.1.0"

_LAZY = {
    "ModelConfig": "deeplab_tf.config",
    "DeepLab": "deeplab_tf.model",
    "DeepLabSegmenter": "deeplab_tf.segmenter",
    "build_model": "deeplab_tf.model",
    "model_stats": "deeplab_tf.model",
    "load_original_checkpoint": "deeplab_tf.checkpoints",
}
__all__ = sorted(_LAZY)

# Before TensorFlow allocates: freed tensors' memory is reused instead of page-faulted again
# (deeplab_tf/allocator.py; DEEPLAB_TF_KEEP_FREED_MEMORY=0 keeps glibc's defaults).
keep_freed_memory()
# Before TensorFlow is imported: oneDNN's kernels on x86 CPUs with AVX2 where TensorFlow would
# run its own (deeplab_tf/onednn.py; TF_ENABLE_ONEDNN_OPTS=0 keeps TensorFlow's).
prefer_onednn()


def __getattr__(name):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'deeplab_tf' has no attribute {name!r}")
