"""``TrainCheckpoint``: the training state in ``train_logdir``, saved and resumed.

Format (**contract**, read by deeplab-eval / deeplab-vis / deeplab-export)::

    tf.train.Checkpoint(model=model, optimizer=optimizer, step=step)
    tf.train.CheckpointManager(train_logdir, max_to_keep, checkpoint_name="ckpt")
    -> train_logdir/ckpt-<step>.index, ckpt-<step>.data-*, train_logdir/checkpoint

Loaders that need the model only use
``tf.train.Checkpoint(model=model).restore(path).expect_partial()``.

Under ``MultiWorkerMirroredStrategy`` every worker takes part in a save; only the chief
writes to ``train_logdir``, the others write to a scratch folder that is removed at once.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from typing import Optional

import tensorflow as tf

CHECKPOINT_NAME = "ckpt"


class ResumeError(ValueError):
    """``train_logdir`` holds a checkpoint that this model / optimiser cannot resume from."""


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
        """Writes ``ckpt-<step>`` (every worker must call this at the same step)."""
        path = self.manager.save(checkpoint_number=int(step))
        if not self.chief:
            shutil.rmtree(self._write_dir, ignore_errors=True)
            with contextlib.suppress(OSError):  # the last worker out removes the parent
                os.rmdir(os.path.dirname(self._write_dir))
        return path
