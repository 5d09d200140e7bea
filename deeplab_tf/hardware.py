"""Deprecated: moved to ``deeplab_tf.runtime.hardware`` (this alias is kept for one release)."""

import warnings

from deeplab_tf.runtime.hardware import (CHOICES, NATIVE_BF16_FLAGS, Hardware,  # noqa: F401
                                         detect, parse_cpuinfo, resolve_mixed_precision)

warnings.warn("deeplab_tf.hardware moved to deeplab_tf.runtime.hardware; this alias will be "
              "removed in the next release", DeprecationWarning, stacklevel=2)
