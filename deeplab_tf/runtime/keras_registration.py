"""Every Keras class of deeplab_tf known to Keras as soon as Keras and TensorFlow are loaded.

Keras finds a saved ``.keras`` model's classes (``deeplab_tf>DeepLab``) in its registry of
custom objects, which a class enters when its module is imported. ``import deeplab_tf`` must
not import TensorFlow (a data-converter worker would pay for it), so it cannot import those
modules itself. Instead:

* if TensorFlow and Keras are already loaded, the modules are imported at once;
* otherwise ``install`` puts a finder on ``sys.meta_path`` that wraps the loading of
  ``keras`` and ``tensorflow``: when the second of the two has finished loading (each imports
  the other on its way, in either order), the modules are imported.

So ``import deeplab_tf, keras; keras.saving.load_model("m.keras")`` works in a fresh process.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
import warnings

# The modules whose import registers every deeplab_tf Keras class (the model imports the
# layers, heads, losses and segmenter).
MODULES = ("deeplab_tf.model", "deeplab_tf.metrics", "deeplab_tf.schedules")
_WATCHED = ("keras", "tensorflow")


def _loaded(name: str) -> bool:
    module = sys.modules.get(name)
    spec = getattr(module, "__spec__", None)
    return module is not None and not getattr(spec, "_initializing", False)


def register() -> None:
    """Imports ``MODULES`` (their classes register themselves with Keras)."""
    for name in MODULES:
        importlib.import_module(name)


def _register_quietly() -> None:
    try:
        register()
    except Exception as error:  # never break the user's own import of Keras
        warnings.warn(f"deeplab_tf could not register its Keras classes ({error}); import "
                      "deeplab_tf.model before loading a saved DeepLab", RuntimeWarning)


class _Finder(importlib.abc.MetaPathFinder):
    """Wraps the loaders of ``keras`` and ``tensorflow`` to register once both are loaded."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname not in _WATCHED:
            return None
        sys.meta_path.remove(self)
        try:
            spec = importlib.util.find_spec(fullname)
        finally:
            if not all(name in sys.modules for name in _WATCHED):
                sys.meta_path.insert(0, self)
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        exec_module = spec.loader.exec_module
        other = _WATCHED[1 - _WATCHED.index(fullname)]

        def exec_then_register(module):
            exec_module(module)
            if _loaded(other):
                _uninstall()
                _register_quietly()

        spec.loader.exec_module = exec_then_register
        return spec


_FINDER = _Finder()


def _uninstall() -> None:
    if _FINDER in sys.meta_path:
        sys.meta_path.remove(_FINDER)


def install() -> None:
    """Registers now if Keras and TensorFlow are loaded, else once they are."""
    if all(_loaded(name) for name in _WATCHED):
        _register_quietly()
    elif _FINDER not in sys.meta_path:
        sys.meta_path.insert(0, _FINDER)
