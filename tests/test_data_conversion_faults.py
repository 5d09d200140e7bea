"""Conversion under write failures (disk full, I/O error, read-only) and concurrent runs: the
previous shards and manifest stay intact, the error names the path, nothing is half-written."""

import errno
import json
import os
import socket
import subprocess
import sys

import pytest
import tensorflow as tf

from deeplab_tf import fileio
from deeplab_tf.data.converters import conversion, folder, publish, shards
from deeplab_tf.data.converters.errors import ConversionError
from tests import miniature


def _snapshot(directory):
    """{name: bytes} of everything in ``directory`` except the staging folder and the lock."""
    out = {}
    for name in sorted(os.listdir(directory)):
        path = os.path.join(directory, name)
        if os.path.isfile(path) and name != fileio.LOCK_NAME:
            out[name] = open(path, "rb").read()
    return out


def _temporaries(directory):
    return [os.path.join(folder_, f) for folder_, _, files in os.walk(directory)
            for f in files if ".tmp-" in f]


@pytest.fixture
def converted(tmp_path):
    info = miniature.make_folder(tmp_path / "raw", num_images=4, num_classes=3)
    output_dir = str(tmp_path / "out")
    options = dict(num_classes=3, palette_file=info["palette_file"], dataset_name="faults",
                   num_shards=2, show_progress=False)
    folder.convert(info["image_dir"], info["label_dir"], output_dir, **options)
    # A changed input, so that the next conversion rewrites the shards.
    image = os.path.join(info["image_dir"], "img_000.png")
    os.utime(image, ns=(os.stat(image).st_atime_ns, os.stat(image).st_mtime_ns + 10**9))
    return info, output_dir, options


_REAL_WRITER = tf.io.TFRecordWriter


class _FailingWriter:
    """A TFRecordWriter that fails with ``code`` on its second record."""

    code = errno.ENOSPC

    def __init__(self, path):
        self._writer = _REAL_WRITER(path)
        self._count = 0

    def write(self, record):
        self._count += 1
        if self._count == 2:
            raise OSError(self.code, os.strerror(self.code))
        self._writer.write(record)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._writer.close()


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EIO, errno.EROFS])
def test_failed_shard_write_keeps_previous_outputs(converted, monkeypatch, code):
    info, output_dir, options = converted
    before = _snapshot(output_dir)
    assert sorted(before) == ["manifest.json", "train-00000-of-00002.tfrecord",
                              "train-00001-of-00002.tfrecord"]
    _FailingWriter.code = code
    monkeypatch.setattr(shards.tf.io, "TFRecordWriter", _FailingWriter)
    with pytest.raises(ConversionError) as error:
        folder.convert(info["image_dir"], info["label_dir"], output_dir, **options)
    message = str(error.value)
    staging = os.path.join(output_dir, conversion.STAGING_DIR)
    assert message.startswith(os.path.join(staging, "train-00000-of-00002.tfrecord.tmp-"))
    assert f"write failed ({os.strerror(code)})" in message and "\n" not in message
    assert _snapshot(output_dir) == before
    assert _temporaries(output_dir) == []
    assert not os.path.exists(os.path.join(output_dir, fileio.LOCK_NAME))


def test_failed_manifest_write_publishes_nothing(converted, monkeypatch):
    info, output_dir, options = converted
    before = _snapshot(output_dir)

    real_write = fileio.atomic_write_text

    def full(path, text):
        if path.endswith(publish.STAGED_MANIFEST):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_write(path, text)

    monkeypatch.setattr(publish.fileio, "atomic_write_text", full)
    with pytest.raises(ConversionError, match=r"out/\.deeplab_staging/manifest\.json\.staged: write failed \(No space left on device\)"):
        folder.convert(info["image_dir"], info["label_dir"], output_dir, **options)
    assert _snapshot(output_dir) == before
    monkeypatch.undo()
    # The staged shards are reused by the next run, which succeeds.
    written = []
    real = shards.write_shard
    monkeypatch.setattr(shards, "write_shard", lambda job, **kw: written.append(job.name) or real(job, **kw))
    manifest = folder.convert(info["image_dir"], info["label_dir"], output_dir, **options)
    assert written == [] and manifest["splits"]["train"]["num_examples"] == 4


def test_second_conversion_into_a_running_ones_folder_fails_at_once(converted):
    info, output_dir, options = converted
    before = _snapshot(output_dir)
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        with open(os.path.join(output_dir, fileio.LOCK_NAME), "w") as f:
            json.dump({"pid": holder.pid, "host": socket.gethostname(),
                       "command": "deeplab-build-folder --output_dir=out", "what": "conversion"}, f)
        with pytest.raises(fileio.LockError, match=rf"conversion already running there: pid {holder.pid}"):
            folder.convert(info["image_dir"], info["label_dir"], output_dir, **options)
        assert _snapshot(output_dir) == before
    finally:
        holder.kill()
        holder.wait()
