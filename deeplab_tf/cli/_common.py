"""What every binary shares: running an absl main with one-line errors, atomic file writes.

``run_app(main)`` runs ``main`` under ``absl.app.run``; a ``UserError`` (or ``ValueError``,
``FileNotFoundError``, ``tf.errors.NotFoundError``/``InvalidArgumentError`` raised while
reading user input) becomes ``error: <one line>`` on stderr and exit status 1 instead of a
traceback. Unknown or malformed flags are absl's own errors (exit 1).

Recipes (``configs/<dataset>/<recipe>.flags``) hold the flags of the whole job (model, data,
training, evaluation), and every binary accepts them: every deeplab flag is defined once in
``deeplab_tf.cli.flags`` and known to every binary; a flag no binary defines (a typo) is an
error.
"""

from __future__ import annotations

import sys

from absl import app

from deeplab_tf.cli.flags.values import parse_size  # noqa: F401 (re-exported)
from deeplab_tf.fileio import atomic_path, atomic_write_text  # noqa: F401 (re-exported)


class UserError(Exception):
    """Bad input from the user: the message is one line naming the file/flag/value."""


_USER_ERRORS = (UserError, ValueError, FileNotFoundError, NotADirectoryError, PermissionError)


def _one_line(error) -> str:
    text = str(error).strip() or type(error).__name__
    return " ".join(text.split())


def run_app(main, binary: str):
    """``absl.app.run(main)`` for console script ``binary``: every deeplab flag known (see
    ``deeplab_tf.cli.flags.parsing``), one-line errors for bad input."""
    from deeplab_tf.cli.flags import flags_parser

    def guarded(argv):
        try:
            return main(argv)
        except _USER_ERRORS as error:
            print(f"error: {_one_line(error)}", file=sys.stderr)
            sys.exit(1)
        except Exception as error:  # TF errors raised while reading user files
            import tensorflow as tf

            if isinstance(error, (tf.errors.NotFoundError, tf.errors.InvalidArgumentError,
                                  tf.errors.DataLossError, tf.errors.FailedPreconditionError)):
                from deeplab_tf.data.records import error_message  # the shard/record line

                print(f"error: {error_message(error) or _one_line(error.message)}",
                      file=sys.stderr)
                sys.exit(1)
            raise

    app.run(guarded, flags_parser=flags_parser(binary))
