"""Deprecated: the inference path moved to ``deeplab_tf.inference`` (this alias is kept for
one release)."""

import warnings

from deeplab_tf.inference import *  # noqa: F401,F403
from deeplab_tf.inference import __all__  # noqa: F401

warnings.warn("deeplab_tf.evaluation.inference moved to deeplab_tf.inference; this alias "
              "will be removed in the next release", DeprecationWarning, stacklevel=2)
