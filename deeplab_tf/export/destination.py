"""Where an export goes: checked before any work, and what an exporter returns."""

from __future__ import annotations

import dataclasses
import os
import tempfile

from deeplab_tf.export.errors import ExportError


@dataclasses.dataclass(frozen=True)
class ExportResult:
    """What an exporter wrote.

    Attributes:
        path: str. The file or folder written.
        summary: str. One line for the user (what was written, its input and outputs).
        details: dict. Format-specific facts (e.g. the TFLite model's input and output).
    """

    path: str
    summary: str
    details: dict = dataclasses.field(default_factory=dict)


def check_writable(directory: str) -> None:
    """Creates ``directory`` if needed and checks that a file can be written there.

    Raises:
        ExportError: naming the directory and the reason.
    """
    if os.path.exists(directory) and not os.path.isdir(directory):
        raise ExportError(f"Export directory {directory} is a file, not a directory")
    try:
        os.makedirs(directory, exist_ok=True)
        with tempfile.TemporaryFile(dir=directory):
            pass
    except OSError as error:
        raise ExportError(
            f"Export directory {directory} is not writable: {error.strerror or error}") from None


def check_new_file(path: str, overwrite: bool) -> None:
    """ExportError if ``path`` exists and ``overwrite`` is false."""
    if os.path.exists(path) and not overwrite:
        raise ExportError(f"{path} already exists (pass --overwrite to replace it)")
