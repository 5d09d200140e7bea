"""Where an export goes: checked before any work, and what an exporter returns."""

from __future__ import annotations

import dataclasses
import os

from deeplab_tf import fileio
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


def check_writable(directory: str, error=ExportError) -> None:
    """Checks, creating nothing, that ``directory`` can be created (if needed) and written
    (``fileio.check_writable``).

    Raises:
        ``error`` (ExportError or a subclass): naming the directory and the reason.
    """
    fileio.check_writable(directory, f"Export directory {directory}", error)


def check_new_file(path: str, overwrite: bool) -> None:
    """ExportError if ``path`` exists and ``overwrite`` is false."""
    if os.path.exists(path) and not overwrite:
        raise ExportError(f"{path} already exists (pass --overwrite to replace it)")
