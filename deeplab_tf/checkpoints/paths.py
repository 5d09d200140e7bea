"""``resolve_checkpoint_path``: every way users name a checkpoint, to one checkpoint prefix.

Accepted (checked in this order):

* a model-zoo tarball (``deeplabv3_pascal_train_aug_2018_01_04.tar.gz``, ``.tgz``, ``.tar``):
  extracted once, safely (regular files and folders only, no absolute or ``..`` names) and
  atomically (a temporary folder renamed into place) to ``<tarball without suffix>/`` beside
  it (a folder already there is the user's and is used as it is); only when that folder
  cannot be written, to this user's private cache (``user_cache_dir``: mode 0700, owned by
  the user, else refused), in a folder named by the SHA-256 of the tarball's content and
  checked against it each time it is reused;
* a checkpoint prefix: ``model.ckpt-123``, ``ckpt-4``, ``model.ckpt`` (``<prefix>.index``
  exists);
* the old layout of the original's ``local_test.sh``, which renames
  ``model.ckpt.data-00000-of-00001`` to ``model.ckpt``: read through a cache folder of links;
* a directory: its ``checkpoint`` state file's latest checkpoint (a train_logdir), else the
  one checkpoint prefix inside it or inside one of its sub-folders (an extracted tarball).
"""

from __future__ import annotations

import errno
import glob
import hashlib
import os
import shutil
import stat
import tarfile
import tempfile

from deeplab_tf.errors import UserError

_TAR_SUFFIXES = (".tar.gz", ".tgz", ".tar")
_DATA_SUFFIX = ".data-00000-of-00001"
_STAMP = ".sha256"  # in a cached extraction: the SHA-256 of the tarball it came from


class CheckpointError(UserError, ValueError):
    """A checkpoint that cannot be used (one-line message)."""


_NOT_WRITABLE = (errno.EACCES, errno.EPERM, errno.EROFS)


def user_cache_dir() -> str:
    """This user's private cache of extracted checkpoints, created (mode 0700) if needed:
    ``$XDG_CACHE_HOME/deeplab_tf/checkpoints`` (``~/.cache/...``), or
    ``<temp dir>/deeplab_tf_checkpoints-<uid>`` when the home folder cannot be written.

    Raises:
        CheckpointError: the folder exists but is a link, is not a folder, belongs to another
            user or can be read or written by others (it could hold planted files).
    """
    home = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    candidates = [os.path.join(home, "deeplab_tf", "checkpoints"),
                  os.path.join(tempfile.gettempdir(), f"deeplab_tf_checkpoints-{os.getuid()}")]
    for root in candidates:
        try:
            os.makedirs(root, mode=0o700, exist_ok=True)
        except OSError as error:
            if error.errno in _NOT_WRITABLE and root != candidates[-1]:
                continue
            raise CheckpointError(f"Cannot create the checkpoint cache {root}: "
                                  f"{error.strerror or error}") from None
        info = os.lstat(root)
        if (not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid()
                or info.st_mode & 0o077):
            raise CheckpointError(
                f"Checkpoint cache {root} is not private to this user (owner uid "
                f"{info.st_uid}, mode {oct(stat.S_IMODE(info.st_mode))}, "
                f"{'a folder' if stat.S_ISDIR(info.st_mode) else 'not a folder'}); remove it "
                "or make it yours with mode 0700")
        return root
    raise AssertionError("unreachable")


def _digest(path: str) -> str:
    sha = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            sha.update(block)
    return sha.hexdigest()


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


def _extract(tarball: str, target: str, stamp: str = "") -> None:
    """Extracts into a staging folder beside ``target``, renamed onto it when complete (with
    ``.sha256`` holding ``stamp`` when given)."""
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
        if stamp:
            with open(os.path.join(staging, _STAMP), "w") as f:
                f.write(stamp)
        os.chmod(staging, 0o755 if not stamp else 0o700)
        try:
            os.rename(staging, target)
        except OSError as error:
            if not os.path.isdir(target):  # Not a concurrent extraction that won: a failure.
                raise CheckpointError(f"Cannot extract {tarball} to {target}: "
                                      f"{error.strerror or error}") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _cached(tarball: str) -> str:
    """The folder the tarball is extracted to in this user's cache, keyed and checked by its
    content (the folder holds the tarball's entries and the ``.sha256`` stamp)."""
    digest = _digest(tarball)
    folder = os.path.join(user_cache_dir(), f"tar-{digest[:32]}")
    if os.path.isdir(folder):
        try:
            with open(os.path.join(folder, _STAMP)) as f:
                verified = f.read().strip() == digest
        except OSError:
            verified = False
        if verified:
            return folder
        shutil.rmtree(folder)  # ours (the cache is private) but not this tarball's: redo
    _extract(tarball, folder, digest)
    return folder


def extract_tarball(tarball: str) -> str:
    """The folder a tarball is (or was already) extracted to; extracts it the first time
    (see the module docstring: beside it, else this user's cache)."""
    name = os.path.basename(tarball)
    stem = next(name[:-len(s)] for s in _TAR_SUFFIXES if name.endswith(s))
    beside = os.path.join(os.path.dirname(os.path.abspath(tarball)), stem)
    if os.path.isdir(beside):
        return beside
    if os.path.lexists(beside):
        raise CheckpointError(f"{beside} exists and is not a folder: {tarball} is extracted "
                              "there; move that file away")
    try:
        _extract(tarball, beside)
        return beside
    except OSError as error:
        if error.errno not in _NOT_WRITABLE:
            raise
    return _cached(tarball)


def _prefixes_in(directory: str):
    return sorted(path[:-len(".index")] for path in glob.glob(os.path.join(directory, "*.index")))


def _legacy_view(prefix: str) -> str:
    """A prefix readable by TensorFlow for the renamed layout (``model.ckpt`` holding the data
    file): links in a cache folder (copies where links are impossible)."""
    folder = os.path.join(user_cache_dir(), "legacy-" + hashlib.sha1(
        os.path.abspath(prefix).encode()).hexdigest()[:16])
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


def is_complete(prefix: str) -> bool:
    """Whether ``prefix.index`` and every data shard ``prefix.data-i-of-N`` are present."""
    if not os.path.isfile(prefix + ".index"):
        return False
    shards = glob.glob(glob.escape(prefix) + ".data-*-of-*")
    counts = {name.rsplit("-of-", 1)[1] for name in shards}
    if len(counts) != 1 or not next(iter(counts)).isdigit():
        return False
    count = int(next(iter(counts)))
    return all(os.path.isfile(f"{prefix}.data-{i:05d}-of-{count:05d}") for i in range(count))


def _step(prefix: str) -> int:
    suffix = prefix.rsplit("-", 1)[-1]
    return int(suffix) if suffix.isdigit() else -1


def complete_checkpoints(directory: str):
    """The complete checkpoint prefixes in ``directory`` (``is_complete``), oldest step first."""
    return sorted((p for p in _prefixes_in(directory) if is_complete(p)),
                  key=lambda p: (_step(p), os.path.getmtime(p + ".index")))


def newest_checkpoint(directory: str):
    """``(prefix, note)``: the checkpoint a run directory's ``checkpoint`` state file names,
    when it is complete (note ""); else the newest complete checkpoint present, with a note
    saying why (the state file names a missing or incomplete checkpoint, is unreadable, or is
    absent); ``(None, note)`` when no complete checkpoint is there (note "" if the folder
    holds no checkpoint and no state file either)."""
    import tensorflow as tf

    state_path = os.path.join(directory, "checkpoint")
    named, readable = None, True
    if os.path.lexists(state_path):
        try:
            state = tf.train.get_checkpoint_state(directory)
            named = state.model_checkpoint_path if state else None
            readable = state is not None
        except Exception:  # noqa: BLE001 -- a binary or damaged state file: said below
            readable = False
        if named and not os.path.isabs(named):
            named = os.path.join(directory, named)
        if named and os.path.dirname(os.path.abspath(named)) != os.path.abspath(directory):
            local = os.path.join(directory, os.path.basename(named))  # a copied run folder
            named = local if is_complete(local) else named
        if named and is_complete(named):
            return named, ""
    present = complete_checkpoints(directory)
    if os.path.lexists(state_path):
        why = (f"{state_path} names {named}, which is missing or incomplete" if named else
               f"{state_path} is {'unreadable' if not readable else 'empty'}")
    elif present:
        why = f"{directory} has no 'checkpoint' state file"
    else:
        return None, ""
    if present:
        return present[-1], (f"{why}; using the newest complete checkpoint present, "
                             f"{present[-1]}")
    return None, f"{why}, and {directory} holds no complete checkpoint"


def _from_directory(directory: str) -> str:
    from absl import logging

    newest, note = newest_checkpoint(directory)
    if newest is not None:
        if note:
            logging.warning("%s", note)
        return _prefix(newest)
    found = _prefixes_in(directory)
    if not found:
        for child in sorted(os.listdir(directory)):
            if os.path.isdir(os.path.join(directory, child)):
                found += _prefixes_in(os.path.join(directory, child))
    if len(found) == 1:
        return _prefix(found[0])
    if not found:
        raise CheckpointError(note or f"No checkpoint found in directory {directory} (no "
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
