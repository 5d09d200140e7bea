"""The converters' error: one line naming the file and the problem."""

from __future__ import annotations

from deeplab_tf.data.errors import DataError


class ConversionError(DataError):
    """Bad input found during conversion; the message is one line naming the file.

    A ``DataError`` (a ``UserError``), so the command-line tools report it as
    ``error: <message>`` (exit 1).

    Attributes:
        skippable: bool. True for a problem with one example's content (undecodable, size
            mismatch, bad label values, wrong mask type), which ``skip_invalid`` may skip.
    """

    def __init__(self, message: str, skippable: bool = False):
        super().__init__(" ".join(str(message).split()))  # Always one line.
        self.skippable = skippable

    def __reduce__(self):  # Keep ``skippable`` across processes.
        return (type(self), (str(self), self.skippable))
