"""Every form of checkpoint, in one place.

* ``paths``: every way users name a checkpoint (prefix, directory, train_logdir, model-zoo
  tarball, the old renamed layout) resolved to one prefix: ``resolve_checkpoint_path``.
* ``loading``: the original's TF1 checkpoints and this project's, loaded by the original's
  variable names (``load_checkpoint``, ``load_original_checkpoint``), and written
  (``save_model_checkpoint``).
* ``strict``: the one loading rule of inference (eval, vis, export, bench):
  ``load_for_inference``.
* ``training``: the training state (model, optimizer, step) of a train_logdir.
* ``run_dir``: the run directory's ``config.json`` / ``flags.txt`` contract.
* ``quantization``: which quantization a checkpoint's ranges describe
  (``checkpoint_quantization``) and the config that loads it (``config_for_checkpoint``).

The names below load lazily (this package is imported by binaries before TensorFlow is).
"""

import importlib

_LAZY = {
    "CheckpointError": "deeplab_tf.checkpoints.paths",
    "resolve_checkpoint_path": "deeplab_tf.checkpoints.paths",
    "LoadReport": "deeplab_tf.checkpoints.loading",
    "checkpoint_kind": "deeplab_tf.checkpoints.loading",
    "checkpoint_step": "deeplab_tf.checkpoints.loading",
    "latest_checkpoint": "deeplab_tf.checkpoints.loading",
    "load_checkpoint": "deeplab_tf.checkpoints.loading",
    "load_original_checkpoint": "deeplab_tf.checkpoints.loading",
    "save_model_checkpoint": "deeplab_tf.checkpoints.loading",
    "variable_shapes": "deeplab_tf.checkpoints.loading",
    "load_for_inference": "deeplab_tf.checkpoints.strict",
    "checkpoint_quantization": "deeplab_tf.checkpoints.quantization",
    "config_for_checkpoint": "deeplab_tf.checkpoints.quantization",
}
__all__ = sorted(_LAZY)


def __getattr__(name):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'deeplab_tf.checkpoints' has no attribute {name!r}")
