"""fileio: atomic writes (umask permissions, nothing half-written on failure) and the
directory lock (live holder refused with its name, stale lock taken over)."""

import errno
import json
import os
import socket
import subprocess
import sys

import pytest

from deeplab_tf import fileio


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def test_atomic_writes_get_the_umask_mode_not_0600(tmp_path, umask_022):
    text = fileio.atomic_write_text(str(tmp_path / "a" / "flags.txt"), "--x=1\n")
    data = fileio.atomic_write_bytes(str(tmp_path / "b.bin"), b"\x00\x01")
    with fileio.atomic_path(str(tmp_path / "c.png")) as tmp:
        with open(tmp, "wb") as f:
            f.write(b"png")
    for path in (text, data, str(tmp_path / "c.png")):
        assert os.stat(path).st_mode & 0o777 == 0o644, path
    assert open(text).read() == "--x=1\n" and open(data, "rb").read() == b"\x00\x01"
    old = os.umask(0o077)
    try:
        assert os.stat(fileio.atomic_write_text(str(tmp_path / "d"), "x")).st_mode & 0o777 == 0o600
        assert fileio.default_file_mode() == 0o600
    finally:
        os.umask(old)
    assert sorted(os.listdir(tmp_path)) == ["a", "b.bin", "c.png", "d"]  # No temporary left.


def test_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path, monkeypatch):
    path = tmp_path / "results.json"
    path.write_text("old")
    real_fsync = os.fsync

    def full_disk(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full_disk)
    with pytest.raises(OSError, match="No space left"):
        fileio.atomic_write_text(str(path), "new")
    monkeypatch.setattr(os, "fsync", real_fsync)
    with pytest.raises(RuntimeError):
        with fileio.atomic_path(str(path)) as tmp:
            open(tmp, "w").write("half")
            raise RuntimeError("interrupted")
    assert path.read_text() == "old"
    assert os.listdir(tmp_path) == ["results.json"]


def test_fsync_happens_before_the_rename(tmp_path, monkeypatch):
    events = []
    real_fsync, real_replace = os.fsync, os.replace
    monkeypatch.setattr(os, "fsync", lambda fd: events.append("fsync") or real_fsync(fd))
    monkeypatch.setattr(os, "replace", lambda a, b: events.append("rename") or real_replace(a, b))
    fileio.atomic_write_text(str(tmp_path / "x"), "data")
    assert events[:2] == ["fsync", "rename"]


def _lock_file(directory):
    with open(os.path.join(directory, fileio.LOCK_NAME)) as f:
        return json.load(f)


def test_directory_lock_refuses_a_live_holder_and_names_it(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        lock = tmp_path / fileio.LOCK_NAME
        lock.write_text(json.dumps({"pid": holder.pid, "host": socket.gethostname(),
                                    "command": "deeplab-train --train_logdir=x",
                                    "started": "2026-12-01 10:00:00", "what": "training"}))
        with pytest.raises(fileio.LockError) as error:
            with fileio.directory_lock(str(tmp_path), "training"):
                pass
        message = str(error.value)
        assert f"pid {holder.pid}" in message and "deeplab-train --train_logdir=x" in message
        assert "training already running" in message and "\n" not in message
        assert json.loads(lock.read_text())["pid"] == holder.pid  # Left alone.
    finally:
        holder.kill()
        holder.wait()


def test_directory_lock_takes_over_a_stale_lock_and_releases(tmp_path, capsys):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (tmp_path / fileio.LOCK_NAME).write_text(json.dumps(
        {"pid": dead.pid, "host": socket.gethostname(), "command": "old run"}))
    with fileio.directory_lock(str(tmp_path), "conversion") as path:
        mine = _lock_file(str(tmp_path))
        assert mine["pid"] == os.getpid() and mine["host"] == socket.gethostname()
        assert mine["command"] and mine["started"]
        with pytest.raises(fileio.LockError, match=f"pid {os.getpid()}"):
            with fileio.directory_lock(str(tmp_path), "conversion"):
                pass
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "taking over a stale conversion lock" in err[0]
    assert f"pid {dead.pid}" in err[0]
    assert not os.path.exists(path)
