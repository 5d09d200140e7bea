"""Atomic file writes: a file gets its final name only when complete."""

from __future__ import annotations

import contextlib
import os
import tempfile


@contextlib.contextmanager
def atomic_path(path: str):
    """Yields a temporary path beside ``path``; renamed onto ``path`` only on success.

    Example::

        with atomic_path("out/model.tflite") as tmp:
            open(tmp, "wb").write(data)
    """
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=os.path.basename(path) + ".tmp-", dir=directory)
    os.close(fd)
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)
        raise


def atomic_write_text(path: str, text: str):
    with atomic_path(path) as tmp:
        with open(tmp, "w") as f:
            f.write(text)
