"""The errors that mean "bad input", not a bug.

``UserError`` and its subclasses carry a one-line message naming the file, flag or value and
what was expected; the binaries print them as ``error: <message>`` with exit status 1
(``deeplab_tf.cli._common.run_app``). Any other exception is a bug and keeps its traceback.

Library code raises the subclass of its concept (``CheckpointError``, ``ExportError``,
``DataError`` ...); a bad argument value raises ``ConfigError``, which is also a
``ValueError`` so that Python callers can catch it as one.
"""


import re

# TensorFlow's decorations of an op's error: where it ran and which op.
_TF_DECORATIONS = re.compile(r"\{\{function_node [^}]*\}\}\s*|\s*\[\[\{\{node [^}]*\}\}\]\]"
                             r"|\s*\[Op:[^\]]*\](\s*name:\s*\S*)?")


class UserError(Exception):
    """Bad input from the user: the message is one line naming the file/flag/value."""


class ConfigError(UserError, ValueError):
    """An option value that is out of its range or inconsistent with another."""


def one_line(error) -> str:
    """An exception's message (or any text) on one line; its type name when it has none."""
    return " ".join(str(error).split()) or type(error).__name__


def error_text(error) -> str:
    """``one_line`` of an exception's message without TensorFlow's decorations
    (``{{function_node ...}}``, ``[Op:SaveV2]``): what a user can read."""
    text = getattr(error, "message", None) or str(error)
    return one_line(_TF_DECORATIONS.sub(" ", text)) or type(error).__name__


# How the OS words a full or read-only disk (TensorFlow's errors carry them in their text).
DISK_WORDS = ("No space left on device", "Disk quota exceeded", "Read-only file system")


def write_failure(error) -> str:
    """Why a write failed, for a line that names the destination itself: the disk's words
    when the error holds them (TensorFlow names its internal temporary files), else
    ``error_text``."""
    text = error_text(error)
    return next((words for words in DISK_WORDS if words in text), text)
