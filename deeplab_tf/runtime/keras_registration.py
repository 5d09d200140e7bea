"""Every Keras class of deeplab_tf known to Keras as soon as Keras is loaded.

Keras finds a saved ``.keras`` model's classes (``deeplab_tf>DeepLab``) in its registry of
custom objects, which a class enters when its module is imported. ``import deeplab_tf`` must
not import TensorFlow (a data-converter worker would pay for it), and importing the classes'
modules from inside Keras' own import could meet a deeplab_tf module half imported. So:

* ``CLASSES`` lists every registered class and its module (a test keeps it complete);
* when Keras has loaded (at once if it already has, else through a finder on
  ``sys.meta_path`` that wraps Keras' loader), each name not yet registered gets a
  stand-in whose ``from_config`` imports the real module and builds the real class; the
  module's own registration then replaces the stand-in.

So ``import deeplab_tf, keras; keras.saving.load_model("m.keras")`` works in a fresh process.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys

PACKAGE = "deeplab_tf"
# Registered name -> module defining the class.
CLASSES = {
    "DeepLab": "deeplab_tf.model",
    "DeepLabSegmenter": "deeplab_tf.segmenter",
    "SegmentationLoss": "deeplab_tf.losses",
    "MeanIoU": "deeplab_tf.metrics",
    "LearningRatePolicy": "deeplab_tf.schedules",
    "PolyLearningRate": "deeplab_tf.schedules",
    "ConvBN": "deeplab_tf.modeling.layers.conv_bn",
    "SeparableConvBN": "deeplab_tf.modeling.layers.separable_conv_bn",
    "BatchNorm": "deeplab_tf.modeling.layers.batch_norm",
    "Normalization": "deeplab_tf.modeling.layers.normalization",
    "ResizeLike": "deeplab_tf.modeling.layers.resize",
    "ImagePooling": "deeplab_tf.modeling.heads.aspp",
    "DropPath": "deeplab_tf.modeling.layers.drop_path",
    "FusedSeparableConvBN": "deeplab_tf.modeling.layers.fused_separable_conv_bn",
    "MergeLogits": "deeplab_tf.modeling.layers.merge_logits",
    "NasCell": "deeplab_tf.modeling.layers.nas_cell",
    "ScaledResize": "deeplab_tf.modeling.layers.scaled_resize",
    "RangeQuantizer": "deeplab_tf.modeling.layers.quantize",
    "ResidualAdd": "deeplab_tf.modeling.layers.residual_add",
}


def _stand_in(class_name: str, module: str):
    """A class-like object whose ``from_config`` builds ``module.class_name``."""

    def real():
        return getattr(importlib.import_module(module), class_name)

    def from_config(config, *args, **kwargs):
        return real().from_config(config, *args, **kwargs)

    def get_config(self):  # Keras registers only classes that have one
        raise NotImplementedError(f"{module}.{class_name} stand-in")

    return type(class_name, (), {"from_config": staticmethod(from_config),
                                 "get_config": get_config, "__module__": module})


def register_stand_ins() -> None:
    """Puts a stand-in for every class of ``CLASSES`` that Keras does not know yet."""
    import keras

    registry = keras.saving.get_custom_objects()
    for class_name, module in CLASSES.items():
        registry.setdefault(f"{PACKAGE}>{class_name}", _stand_in(class_name, module))


class _Finder(importlib.abc.MetaPathFinder):
    """Wraps the loader of ``keras`` to register the stand-ins once it has loaded."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname != "keras" or "keras" in sys.modules:
            return None
        # Asked without importing (e.g. TensorFlow probes whether Keras is installed) or
        # to import: either way the spec found without this finder, its loader wrapped.
        sys.meta_path.remove(self)
        try:
            spec = importlib.util.find_spec(fullname)
        finally:
            sys.meta_path.insert(0, self)
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        exec_module = spec.loader.exec_module

        def exec_then_register(module):
            exec_module(module)
            _uninstall()
            register_stand_ins()

        spec.loader.exec_module = exec_then_register
        return spec


_FINDER = _Finder()


def _uninstall() -> None:
    if _FINDER in sys.meta_path:
        sys.meta_path.remove(_FINDER)


def install() -> None:
    """Registers the stand-ins now if Keras is loaded, else as soon as it is."""
    keras = sys.modules.get("keras")
    if keras is not None and not getattr(keras.__spec__, "_initializing", False):
        register_stand_ins()
    elif keras is None and _FINDER not in sys.meta_path:
        sys.meta_path.insert(0, _FINDER)
