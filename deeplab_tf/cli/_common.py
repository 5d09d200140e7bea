"""What every binary shares: running an absl main with one-line errors, atomic file writes.

``run_app(main)`` runs ``main`` under ``absl.app.run``; a ``UserError`` (or ``ValueError``,
``FileNotFoundError``, ``tf.errors.NotFoundError``/``InvalidArgumentError`` raised while
reading user input) becomes ``error: <one line>`` on stderr and exit status 1 instead of a
traceback. Unknown or malformed flags are absl's own errors (exit 1).

Recipes (``configs/<dataset>/<recipe>.flags``) hold the flags of the whole job (model, data,
training, evaluation), and every binary accepts them: a flag this binary does not define but
another deeplab binary does is ignored; any other unknown flag (a typo) is an error.
"""

from __future__ import annotations

import sys

from absl import app

from deeplab_tf.fileio import atomic_path, atomic_write_text  # noqa: F401 (re-exported)


class UserError(Exception):
    """Bad input from the user: the message is one line naming the file/flag/value."""


_USER_ERRORS = (UserError, ValueError, FileNotFoundError, NotADirectoryError, PermissionError)


def _one_line(error) -> str:
    text = str(error).strip() or type(error).__name__
    return " ".join(text.split())


def _parse_flags(argv):
    from absl import flags

    from deeplab_tf.cli._flag_names import DEEPLAB_FLAG_NAMES

    try:
        rest = flags.FLAGS(argv, known_only=True)
    except flags.Error as error:
        print(f"FATAL Flags parsing error: {error}", file=sys.stderr)
        sys.exit(1)
    positional = [rest[0]]
    for arg in rest[1:]:
        if arg.startswith("-") and arg != "-":
            name = arg.lstrip("-").split("=", 1)[0]
            if name.startswith("no") and name[2:] in DEEPLAB_FLAG_NAMES:
                name = name[2:]
            if name in DEEPLAB_FLAG_NAMES:
                continue  # a flag of another deeplab binary, e.g. from a shared recipe
            print(f"FATAL Flags parsing error: Unknown command line flag '{name}'",
                  file=sys.stderr)
            print("Pass --helpfull to see help on flags.", file=sys.stderr)
            sys.exit(1)
        positional.append(arg)
    return positional


def run_app(main):
    """``absl.app.run(main)`` with one-line errors for bad input."""

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
                print(f"error: {_one_line(error.message)}", file=sys.stderr)
                sys.exit(1)
            raise

    app.run(guarded, flags_parser=_parse_flags)


def parse_size(values, flag_name):
    """(height, width) from a list flag such as ``--crop_size=513,513``; UserError if bad."""
    try:
        height, width = (int(v) for v in values)
    except (TypeError, ValueError):
        raise UserError(f"--{flag_name} must be 'height,width'. Received: "
                        f"--{flag_name}={','.join(values or [])}") from None
    if height < 1 or width < 1:
        raise UserError(f"--{flag_name} must be positive. Received: --{flag_name}={height},{width}")
    return height, width


def dataset_num_classes(dataset):
    """The registry's class count for ``dataset`` (None when it is not a registry name)."""
    from deeplab_tf.data import registry

    try:
        return registry.get_dataset_info(dataset).num_classes
    except (ValueError, KeyError, FileNotFoundError):
        return None
