"""``SigtermFlag``: a SIGTERM asks training to save a checkpoint and stop after the step.

The training loop reads the flag before each step and passes it into the step, where the
requests of every worker are summed, so all workers save and stop at the same step.
"""

from __future__ import annotations

import contextlib
import signal
import threading

from absl import logging


class SigtermFlag:
    """Set by SIGTERM while ``installed()`` is active (in the main thread only)."""

    def __init__(self):
        self._event = threading.Event()

    def is_set(self) -> bool:
        return self._event.is_set()

    def _on_sigterm(self, signum, frame):
        logging.warning("SIGTERM received: saving a checkpoint after the current step.")
        self._event.set()

    @contextlib.contextmanager
    def installed(self):
        """Handles SIGTERM inside the block, then restores the previous handler."""
        try:
            previous = signal.signal(signal.SIGTERM, self._on_sigterm)
        except ValueError:  # not the main thread: no handler
            yield
            return
        try:
            yield
        finally:
            signal.signal(signal.SIGTERM, previous)
