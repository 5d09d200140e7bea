"""``TrainCheckpoint``: the training state in ``train_logdir``, saved and resumed.

Format (**contract**, read by deeplab-eval / deeplab-vis / deeplab-export and by the
original's scripts, e.g. ``--checkpoint_path=${TRAIN_LOGDIR}/model.ckpt-${NUM_ITERATIONS}``)::

    tf.train.Checkpoint(model=model, optimizer=optimizer, step=step)
    tf.train.CheckpointManager(train_logdir, max_to_keep, checkpoint_name="model.ckpt")
    -> train_logdir/model.ckpt-<step>.index, model.ckpt-<step>.data-*, train_logdir/checkpoint

Runs written before under the name ``ckpt-<step>`` resume unchanged (the ``checkpoint`` state
file names the newest prefix, whatever its name). Loaders that need the model only use
``tf.train.Checkpoint(model=model).restore(path).expect_partial()``.

Resuming is never a silent restart: when the ``checkpoint`` state file names a checkpoint
that is missing or incomplete (a copy that lost its newest files), is damaged, or is gone
while checkpoints remain, the run resumes from the newest complete checkpoint present and
says so in one line (the state file is rewritten to name it); with no complete checkpoint
left it stops with one line (``ResumeError``) instead of starting again at step 0. A newest
checkpoint whose files are damaged stops the run with one line naming it.

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
import sys
from typing import Optional

import tensorflow as tf

from deeplab_tf.checkpoints.paths import complete_checkpoints, newest_checkpoint
from deeplab_tf.errors import UserError, error_text, write_failure

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
        self._max_to_keep = max_to_keep
        self._manager = None  # made once the state file is known to be sound (restore_latest)

    @property
    def manager(self) -> tf.train.CheckpointManager:
        """The CheckpointManager writing ``model.ckpt-<step>`` (made on first use)."""
        if self._manager is None:
            self._manager = tf.train.CheckpointManager(
                self.checkpoint, self._write_dir, max_to_keep=self._max_to_keep,
                checkpoint_name=CHECKPOINT_NAME)
        return self._manager

    def latest(self) -> Optional[str]:
        """The newest checkpoint prefix in ``directory`` (the chief's), or None
        (``paths.newest_checkpoint``: the state file's, else the newest complete one)."""
        return newest_checkpoint(self.directory)[0]

    def resume_point(self) -> Optional[str]:
        """The checkpoint to resume from (None: a new run); when the state file disagrees with
        the files, says so on stderr and (chief) rewrites it to name what is present.

        Raises:
            ResumeError: the state file names a checkpoint but none complete is left.
        """
        path, note = newest_checkpoint(self.directory)
        if path is None and note:
            raise ResumeError(f"{note}: not starting again at step 0 over it. Restore the "
                              "checkpoint files, or use a new --train_logdir")
        if path is not None and note:
            print(f"note: {note}", file=sys.stderr, flush=True)
            if self.chief:
                present = complete_checkpoints(self.directory)
                tf.compat.v1.train.update_checkpoint_state(
                    self.directory, path, all_model_checkpoint_paths=present)
                self._manager = None
        return path

    def restore_latest(self) -> Optional[str]:
        """Restores the newest checkpoint of ``directory`` (``resume_point``); returns its
        path, or None."""
        path = self.resume_point()
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
        except (tf.errors.OpError, IndexError) as error:
            message = error_text(error)[:300]
            raise ResumeError(
                f"Cannot resume from {path}: its files are damaged or truncated ({message}). "
                f"Move {os.path.basename(path)}.* out of {self.directory} to resume from the "
                "checkpoint before it, or use a new --train_logdir") from None
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
            reason = write_failure(error)[:300]
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
