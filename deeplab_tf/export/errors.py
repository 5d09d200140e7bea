"""The exports' error: an export that cannot be done as asked (one line naming the path, the
format or the value, and what was expected). Every exporter raises this class or a subclass
named after its format."""

from deeplab_tf.errors import UserError


class ExportError(UserError, ValueError):
    """An export that cannot be done as asked (one-line message)."""
