"""Every deeplab flag, defined once, in one module per group.

Groups: ``model`` (common.py's model flags), ``data`` (dataset and resize to range),
``train``, ``quantize`` (quantization-aware training; train, eval, vis, export), ``inference`` (shared by eval, vis, export, bench), ``eval``, ``vis``, ``export``,
``bench``, ``convert`` (deeplab-convert-checkpoint), ``converters`` (deeplab-build-*) and
``legacy`` (the original's flags that only get a notice or an error). Defaults come from the
config dataclasses (``values.default``). Importing this package defines them all, so every
binary knows every flag: ``parsing.USES`` says which each binary reads, ``parsing`` handles
the rest; ``compat.compat_table()`` renders docs/compatibility.md's table of the original's flags.
"""

from deeplab_tf.cli.flags import (bench, convert, converters, data, export, inference,  # noqa: F401
                                  legacy, model, quantize, train, vis)
from deeplab_tf.cli.flags import eval  # noqa: F401,A004  (the eval group)
from deeplab_tf.cli.flags.parsing import flags_parser, given_on_command_line  # noqa: F401
from deeplab_tf.cli.flags.values import FlagValueError, parse_size  # noqa: F401
