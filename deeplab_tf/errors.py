"""The errors that mean "bad input", not a bug.

``UserError`` and its subclasses carry a one-line message naming the file, flag or value and
what was expected; the binaries print them as ``error: <message>`` with exit status 1
(``deeplab_tf.cli._common.run_app``). Any other exception is a bug and keeps its traceback.

Library code raises the subclass of its concept (``CheckpointError``, ``ExportError``,
``DataError`` ...); a bad argument value raises ``ConfigError``, which is also a
``ValueError`` so that Python callers can catch it as one.
"""


class UserError(Exception):
    """Bad input from the user: the message is one line naming the file/flag/value."""


class ConfigError(UserError, ValueError):
    """An option value that is out of its range or inconsistent with another."""


def one_line(error) -> str:
    """An exception's message (or any text) on one line; its type name when it has none."""
    return " ".join(str(error).split()) or type(error).__name__
