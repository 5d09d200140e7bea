"""The data's error: a dataset, shard, manifest or image that cannot be used (one line naming
the file and the problem)."""

from deeplab_tf.errors import UserError


class DataError(UserError, ValueError):
    """Bad data or a bad description of it (one-line message naming the file)."""
