"""Conversion progress on stderr: a tqdm bar on a terminal, plain lines (one per 10%) in logs."""

from __future__ import annotations

import sys
import time
from typing import Callable, Optional


class Progress:
    """Counts processed images; shows a bar on a terminal, a line per 10% otherwise.

    Args:
        total: int. Images to process.
        description: str. Shown before the bar / at the start of each line.
        enabled: bool. False: count only (and call ``listener``).
        stream: text stream (default stderr).
        listener: optional callable, called with each update's count.
    """

    def __init__(self, total: int, description: str, enabled: bool = True, stream=None,
                 listener: Optional[Callable[[int], None]] = None):
        self.total = max(int(total), 0)
        self.listener = listener
        self.description = description
        self.enabled = enabled and self.total > 0
        self.stream = stream or sys.stderr
        self.done = 0
        self._start = time.monotonic()
        self._last_decile = -1
        self._bar = None
        tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        if self.enabled and tty:
            self._bar = _terminal_bar(self.total, description, self.stream)

    def update(self, n: int = 1) -> None:
        self.done += n
        if self.listener is not None:
            self.listener(n)
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.update(n)
        elif self.done * 10 // self.total > self._last_decile:
            self._last_decile = self.done * 10 // self.total
            self.stream.write(self._line(time.monotonic()) + "\n")
            self.stream.flush()

    def _line(self, now: float) -> str:
        fraction = min(self.done / self.total, 1.0)
        bar = "#" * int(fraction * 24)
        rate = self.done / max(now - self._start, 1e-9)
        return (f"{self.description} [{bar:<24}] {self.done}/{self.total} "
                f"{fraction:4.0%} {rate:.1f} images/s")

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


class _KerasBar:
    def __init__(self, total, stream):
        import keras

        self._bar = keras.utils.Progbar(total, unit_name="image")
        self._done = 0

    def update(self, n):
        self._done += n
        self._bar.update(self._done)

    def close(self):
        pass


def _terminal_bar(total: int, description: str, stream):
    """tqdm when installed, else Keras' Progbar."""
    try:
        import tqdm
    except ImportError:
        return _KerasBar(total, stream)
    return tqdm.tqdm(total=total, desc=description, file=stream, unit="image", leave=True)
