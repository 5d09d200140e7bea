"""``resolve_checkpoint_path``: every way users name a checkpoint, to one checkpoint prefix.

Accepted (checked in this order):

* a model-zoo tarball (``deeplabv3_pascal_train_aug_2018_01_04.tar.gz``, ``.tgz``, ``.tar``):
  extracted once, safely (regular files and folders only, no absolute or ``..`` names) and
  atomically (a temporary folder renamed into place) to ``<tarball without suffix>/`` beside
  it, or to a cache folder under the system temp dir when that is not writable;
* a checkpoint prefix: ``model.ckpt-123``, ``ckpt-4``, ``model.ckpt`` (``<prefix>.index``
  exists);
* the old layout of the original's ``local_test.sh``, which renames
  ``model.ckpt.data-00000-of-00001`` to ``model.ckpt``: read through a cache folder of links;
* a directory: its ``checkpoint`` state file's latest checkpoint (a train_logdir), else the
  one checkpoint prefix inside it or inside one of its sub-folders (an extracted tarball).
"""

from __future__ import annotations

import glob
import hashlib
import os
import shutil
import tarfile
import tempfile

from deeplab_tf.errors import UserError

_TAR_SUFFIXES = (".tar.gz", ".tgz", ".tar")
_DATA_SUFFIX = ".data-00000-of-00001"


class CheckpointError(UserError, ValueError):
    """A checkpoint that cannot be used (one-line message)."""


def _cache_root() -> str:
    return os.path.join(tempfile.gettempdir(), "deeplab_tf_checkpoints")


def _cache_dir(path: str, kind: str) -> str:
    digest = hashlib.sha1(os.path.abspath(path).encode()).hexdigest()[:16]
    return os.path.join(_cache_root(), f"{kind}-{digest}")


def _safe_members(archive: tarfile.TarFile, tarball: str):
    members = []
    for member in archive.getmembers():
        name = member.name
        parts = name.replace("\\", "/").split("/")
        if name.startswith(("/", "\\")) or ".." in parts or os.path.isabs(name):
            raise CheckpointError(f"{tarball}: unsafe member name {name!r} (absolute or "
                                      "'..'); not extracted")
        if member.isdir() or member.isfile():
            members.append(member)
        # Links, devices and fifos are skipped: a checkpoint needs none.
    return members


def _extract(tarball: str, target: str) -> None:
    parent = os.path.dirname(target)
    os.makedirs(parent, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=".extract-", dir=parent)
    try:
        try:
            with tarfile.open(tarball) as archive:
                members = _safe_members(archive, tarball)
                archive.extractall(staging, members=members, filter="data")
        except (tarfile.TarError, EOFError, OSError) as error:
            reason = " ".join(str(error).split())  # tarfile lists one line per method
            raise CheckpointError(f"Cannot extract {tarball}: {reason}") from None
        os.chmod(staging, 0o755)
        try:
            os.rename(staging, target)
        except OSError:
            if not os.path.isdir(target):  # Not a concurrent extraction that won: a failure.
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def extract_tarball(tarball: str) -> str:
    """The folder a tarball is (or was already) extracted to; extracts it the first time."""
    name = os.path.basename(tarball)
    stem = next(name[:-len(s)] for s in _TAR_SUFFIXES if name.endswith(s))
    beside = os.path.join(os.path.dirname(os.path.abspath(tarball)), stem)
    cached = os.path.join(_cache_dir(tarball, "tar"), stem)
    for target in (beside, cached):
        if os.path.isdir(target):
            return target
    try:
        _extract(tarball, beside)
        return beside
    except PermissionError:
        _extract(tarball, cached)
        return cached


def _prefixes_in(directory: str):
    return sorted(path[:-len(".index")] for path in glob.glob(os.path.join(directory, "*.index")))


def _legacy_view(prefix: str) -> str:
    """A prefix readable by TensorFlow for the renamed layout (``model.ckpt`` holding the data
    file): links in a cache folder (copies where links are impossible)."""
    folder = _cache_dir(prefix, "legacy")
    view = os.path.join(folder, os.path.basename(prefix))
    os.makedirs(folder, exist_ok=True)
    for source, link in ((prefix + ".index", view + ".index"), (prefix, view + _DATA_SUFFIX)):
        source = os.path.abspath(source)
        if os.path.islink(link) and os.readlink(link) == source:
            continue
        tmp = link + f".tmp-{os.getpid()}"
        try:
            os.symlink(source, tmp)
        except OSError:
            shutil.copyfile(source, tmp)
        os.replace(tmp, link)
    return view


def _prefix(path: str):
    """``path`` as a readable prefix, or None if no checkpoint has that prefix."""
    if not os.path.exists(path + ".index"):
        return None
    if glob.glob(glob.escape(path) + ".data-*"):
        return path
    if os.path.isfile(path):
        return _legacy_view(path)
    raise CheckpointError(f"Checkpoint {path}: {path}.index exists but no data file "
                              f"({os.path.basename(path)}.data-*) beside it")


def _from_directory(directory: str) -> str:
    import tensorflow as tf

    if os.path.isfile(os.path.join(directory, "checkpoint")):
        latest = tf.train.latest_checkpoint(directory)
        if latest is not None and os.path.exists(latest + ".index"):
            return _prefix(latest)
        # A state file naming a checkpoint elsewhere (a copied folder): look at the files.
    found = _prefixes_in(directory)
    if not found:
        for child in sorted(os.listdir(directory)):
            if os.path.isdir(os.path.join(directory, child)):
                found += _prefixes_in(os.path.join(directory, child))
    if len(found) == 1:
        return _prefix(found[0])
    if not found:
        raise CheckpointError(f"No checkpoint found in directory {directory} (no "
                                  "'checkpoint' state file and no *.index)")
    raise CheckpointError(f"Directory {directory} holds {len(found)} checkpoints "
                              f"({', '.join(os.path.basename(p) for p in found[:4])}); name one")


def resolve_checkpoint_path(path: str) -> str:
    """A checkpoint prefix for any accepted form of ``path`` (see the module docstring).

    Raises:
        CheckpointError: nothing usable at ``path`` (the message says what was looked for).
    """
    if not path:
        raise CheckpointError("No checkpoint path given")
    path = os.fspath(path)
    if os.path.isfile(path) and path.endswith(_TAR_SUFFIXES):
        return _from_directory(extract_tarball(path))
    prefix = _prefix(path)
    if prefix is not None:
        return prefix
    if os.path.isdir(path):
        return _from_directory(path)
    raise CheckpointError(f"No checkpoint at {path} (expected {path}.index, a directory "
                              "with a 'checkpoint' file, or a model-zoo .tar.gz)")
