"""File writes that never leave a half-written file, and a lock on a working directory.

``atomic_path`` / ``atomic_write_bytes`` / ``atomic_write_text`` write under a temporary name
beside the destination, flush and fsync it, and rename it onto the destination only when
complete: a reader sees the old file or the new one, never a part. New files get the usual
permissions of the process (``0666 & ~umask``, typically 0644), not ``mkstemp``'s 0600.

``directory_lock(directory, what)`` makes a second run on the same directory (a conversion's
output folder, a ``train_logdir``) fail at once with a message naming the process that holds
it; a lock left by a process that died is taken over, and said so.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sys
import tempfile
import time
from typing import Iterator, Optional

from deeplab_tf.errors import UserError

LOCK_NAME = ".lock"


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _fsync_directory(directory: str) -> None:
    with contextlib.suppress(OSError):  # Not every file system lets a directory be fsynced.
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@contextlib.contextmanager
def atomic_path(path: str) -> Iterator[str]:
    """Yields a temporary path beside ``path``; renamed onto ``path`` only on success.

    The temporary file exists (empty, mode ``0666 & ~umask``) when the block starts; whatever
    the block writes to it is fsynced before the rename. On an exception (including a failed
    write such as ENOSPC) the temporary file is removed and ``path`` is left as it was.

    Example::

        with atomic_path("out/model.tflite") as tmp:
            with open(tmp, "wb") as f:
                f.write(data)
    """
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    base = os.path.basename(path)
    for attempt in range(100):
        tmp = os.path.join(directory, f".{base}.tmp-{os.getpid()}-{attempt}")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # umask applies
        except FileExistsError:
            continue
        os.close(fd)
        break
    else:
        raise OSError(f"{path}: cannot create a temporary file beside it")
    try:
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)
        raise
    _fsync_directory(directory)


def atomic_write_bytes(path: str, data: bytes) -> str:
    """Writes ``data`` to ``path`` atomically (see ``atomic_path``); returns ``path``."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(data)
    return path


def atomic_write_text(path: str, text: str, encoding: str = "utf-8") -> str:
    """Writes ``text`` to ``path`` atomically (see ``atomic_path``); returns ``path``."""
    return atomic_write_bytes(path, text.encode(encoding))


def read_text(path: str, expected: str, error=UserError) -> str:
    """The UTF-8 text of a file the user wrote (a list, a palette, a flagfile).

    Raises:
        ``error`` (a UserError subclass): the file is not UTF-8 text, naming the path, the
            first bad byte and ``expected`` (what the file should hold).
    """
    with open(path, "rb") as f:
        data = f.read()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as failure:
        raise error(f"{path}: not a text file (byte 0x{data[failure.start]:02x} at offset "
                    f"{failure.start} is not UTF-8): expected {expected}") from None


def check_writable(directory: str, described: str = "", error=UserError) -> None:
    """Checks, creating nothing, that ``directory`` can be created (if needed) and written.

    The nearest existing folder on the way is tried with a temporary file (removed at once),
    so a path through a file, a read-only or full file system fails here, before any work.

    Args:
        directory: str. The output folder.
        described: str. How the message names it (e.g. ``--vis_logdir=out``); default: the
            path.
        error: the UserError subclass to raise.
    """
    name = described or directory
    path = os.path.abspath(directory)
    while not os.path.exists(path):
        path = os.path.dirname(path)
    if not os.path.isdir(path):
        raise error(f"{name} is not writable: {path} is a file, not a directory")
    try:
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as failure:
        raise error(f"{name} is not writable: {failure.strerror or failure}") from None


def default_file_mode() -> int:
    """The permission bits a new file gets in this process: ``0o666 & ~umask``."""
    return 0o666 & ~_umask()


# ----------------------------------------------------------------------------- locking


class LockError(UserError, ValueError):
    """The directory is locked by a live process; the message names it (pid, host, command).

    A ValueError, so the command-line tools report it as one ``error:`` line (exit 1).
    """


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # Exists, owned by someone else.
        return True
    try:  # A zombie (killed, not yet reaped by its parent) holds nothing any more.
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[-1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def _read_lock(path: str) -> Optional[dict]:
    try:
        with open(path, encoding="utf-8") as f:
            holder = json.load(f)
        return holder if isinstance(holder, dict) else {}
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return {}  # Unreadable or half-written by a crashed process: treated as stale.


def _describe(holder: dict) -> str:
    return (f"pid {holder.get('pid', '?')} on {holder.get('host', '?')} "
            f"({holder.get('command', '?')!r}, started {holder.get('started', '?')})")


@contextlib.contextmanager
def directory_lock(directory: str, what: str, stream=None) -> Iterator[str]:
    """Holds ``<directory>/.lock`` for the duration of the block.

    The lock file records the pid, host, command line and start time of the holder.

    Args:
        directory: str. The directory to lock (created if needed).
        what: str. What the lock protects, for messages (e.g. "conversion", "training").
        stream: where the take-over notice goes (default stderr).

    Yields:
        The lock file's path.

    Raises:
        LockError: if a live process holds the lock; the message names it. A lock whose
            holder is a dead process on this host (or an unreadable lock file) is taken over
            with a one-line notice.
    """
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, LOCK_NAME)
    me = {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "command": " ".join(sys.argv) or sys.executable,
        "started": time.strftime("%Y-%m-%d %H:%M:%S %z"),
        "what": what,
    }
    payload = json.dumps(me).encode()
    for _ in range(5):
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            holder = _read_lock(path)
            if holder is None:
                continue  # Released meanwhile: try again.
            same_host = holder.get("host") == me["host"]
            pid = holder.get("pid")
            if holder and (not same_host or _pid_alive(int(pid) if isinstance(pid, int) else -1)):
                raise LockError(
                    f"{directory}: {holder.get('what', what)} already running there: "
                    f"{_describe(holder)}; lock file {path} (remove it if that process is gone)")
            print(f"{path}: taking over a stale {what} lock of {_describe(holder)}",
                  file=stream or sys.stderr)
            with contextlib.suppress(FileNotFoundError):
                os.remove(path)
            continue
        try:
            os.write(fd, payload)
        finally:
            os.close(fd)
        break
    else:
        raise LockError(f"{path}: could not take the {what} lock")
    try:
        yield path
    finally:
        holder = _read_lock(path)
        if holder and holder.get("pid") == me["pid"] and holder.get("host") == me["host"]:
            with contextlib.suppress(FileNotFoundError):
                os.remove(path)
