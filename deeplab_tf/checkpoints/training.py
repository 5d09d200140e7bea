"""``TrainCheckpoint``: the training state in ``train_logdir``, saved and resumed.

Format (**contract**, read by deeplab-eval / deeplab-vis / deeplab-export and by the
original's scripts, e.g. ``--checkpoint_path=${TRAIN_LOGDIR}/model.ckpt-${NUM_ITERATIONS}``)::

    tf.train.Checkpoint(model=model, optimizer=optimizer, step=step)
    tf.train.CheckpointManager(train_logdir, max_to_keep, checkpoint_name="model.ckpt")
    -> train_logdir/model.ckpt-<step>.index, model.ckpt-<step>.data-*, train_logdir/checkpoint

Runs written before under the name ``ckpt-<step>`` resume unchanged (the ``checkpoint`` state
file names the newest prefix, whatever its name). Loaders that need the model only use
``tf.train.Checkpoint(model=model).restore(path).expect_partial()``.

A write that fails (full disk, I/O error, read-only directory) raises ``CheckpointWriteError``
naming the path; the ``checkpoint`` state file is only rewritten (atomically) after the data
and index are complete, so it keeps pointing at the previous complete checkpoint, and the
failed write's partial files are removed.

Under ``MultiWorkerMirroredStrategy`` every worker takes part in a save; only the chief
writes to ``train_logdir``, the others write to a scratch folder that is removed at once.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
from typing import Optional

import tensorflow as tf

from deeplab_tf.errors import UserError

CHECKPOINT_NAME = "model.ckpt"


class ResumeError(UserError, ValueError):
    """``train_logdir`` holds a checkpoint that this model / optimiser cannot resume from."""


class CheckpointWriteError(UserError, OSError):
    """Writing a checkpoint failed; the previous checkpoint is still the newest."""


def _remove_partial(prefix: str):
    for path in glob.glob(glob.escape(prefix) + ".*") + glob.glob(glob.escape(prefix) + "_temp*"):
        if os.path.isdir(path):
            shutil.rmtree(path, ignore_errors=True)
        else:
            with contextlib.suppress(OSError):
                os.remove(path)


class TrainCheckpoint:
    """Saves and restores model, optimizer and step in ``directory``.

    Args:
        directory: str. The run's ``train_logdir``.
        model: keras.Model.
        optimizer: keras optimizer (built, so its slots exist before a restore).
        step: tf.Variable int64. Number of updates done.
        max_to_keep: int. Checkpoints kept.
        chief: bool. False on non-chief workers: they save to a scratch folder.
        task: str. This worker's name, for that scratch folder.
    """

    def __init__(self, directory: str, *, model, optimizer, step: tf.Variable,
                 max_to_keep: int = 5, chief: bool = True, task: str = "chief-0"):
        self.directory = directory
        self.chief = chief
        self.checkpoint = tf.train.Checkpoint(model=model, optimizer=optimizer, step=step)
        self._write_dir = directory if chief else os.path.join(directory, ".workers", task)
        self.manager = tf.train.CheckpointManager(
            self.checkpoint, self._write_dir, max_to_keep=max_to_keep,
            checkpoint_name=CHECKPOINT_NAME)

    def latest(self) -> Optional[str]:
        """The newest checkpoint prefix in ``directory`` (the chief's), or None."""
        return tf.train.latest_checkpoint(self.directory)

    def restore_latest(self) -> Optional[str]:
        """Restores the newest checkpoint of ``directory``; returns its path, or None."""
        path = self.latest()
        if path is None:
            return None
        try:
            self.checkpoint.restore(path).assert_existing_objects_matched()
        except (AssertionError, ValueError, tf.errors.InvalidArgumentError) as error:
            message = " ".join(str(getattr(error, "message", error)).split())[:300]
            raise ResumeError(
                f"Cannot resume from {path}: it was written for another model or optimizer "
                f"({message}). Use a new --train_logdir, or the flags of that run "
                f"({os.path.join(self.directory, 'flags.txt')})") from None
        return path

    def save(self, step: int) -> str:
        """Writes ``model.ckpt-<step>`` (every worker must call this at the same step).

        Raises:
            CheckpointWriteError: the write failed; its partial files are removed and the
                ``checkpoint`` state file still names the previous complete checkpoint.
        """
        prefix = os.path.join(self._write_dir, f"{CHECKPOINT_NAME}-{int(step)}")
        previous = self.manager.latest_checkpoint
        try:
            path = self.manager.save(checkpoint_number=int(step))
        except (OSError, tf.errors.OpError) as error:
            if tf.train.latest_checkpoint(self._write_dir) != prefix:
                _remove_partial(prefix)
            reason = " ".join(str(getattr(error, "message", None) or error).split())[:300]
            failure = CheckpointWriteError(
                f"Writing checkpoint {prefix} failed ({reason}); the newest complete "
                f"checkpoint is still {previous or 'none'}")
            failure.errno = getattr(error, "errno", None)
            raise failure from None
        if not self.chief:
            shutil.rmtree(self._write_dir, ignore_errors=True)
            with contextlib.suppress(OSError):  # the last worker out removes the parent
                os.rmdir(os.path.dirname(self._write_dir))
        return path
