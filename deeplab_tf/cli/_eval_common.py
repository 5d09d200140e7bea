"""What deeplab-eval and deeplab-vis share: which model, which checkpoints, the predictor.

Their flags are in ``deeplab_tf.cli.flags`` (groups ``inference``, ``eval``, ``vis``).

Which model: a training run's ``config.json`` (written by deeplab-train /
deeplab-convert-checkpoint beside the checkpoints) with the model flags given explicitly on top,
field by field (``deeplab_tf.checkpoints.run_dir``), so ``deeplab-eval --checkpoint_dir=RUN
--dataset_dir=...`` is enough; without a run config, the model flags, as in the original. The
binary says which it used.
"""

from __future__ import annotations

import os
from typing import Iterator, Optional

from deeplab_tf.cli.flags import inference, model
from deeplab_tf.config import EvalConfig
from deeplab_tf.errors import UserError

_CHECKPOINT_DIR = inference.CHECKPOINT_DIR
_CHECKPOINT_PATH = inference.CHECKPOINT_PATH


def check_no_arguments(argv):
    if len(argv) > 1:
        raise UserError(f"Unexpected arguments: {' '.join(argv[1:])}")


# --- checkpoints ---------------------------------------------------------------------------

def checkpoint_dir() -> str:
    """The directory holding the checkpoint(s) (and maybe config.json); checked to exist."""
    if _CHECKPOINT_PATH.value:
        path = os.path.abspath(_CHECKPOINT_PATH.value)
        return path if os.path.isdir(path) else os.path.dirname(path)
    if not _CHECKPOINT_DIR.value:
        raise UserError("--checkpoint_dir (or --checkpoint_path) is required")
    if not os.path.isdir(_CHECKPOINT_DIR.value):
        raise UserError(f"--checkpoint_dir={_CHECKPOINT_DIR.value} is not a directory")
    return _CHECKPOINT_DIR.value


def checkpoints(max_count: int, interval_secs: float) -> Iterator[str]:
    """The checkpoints to process: --checkpoint_path once, else those of --checkpoint_dir.

    With ``max_count == 1`` the directory's latest checkpoint is used at once (an error if it
    has none); otherwise each new checkpoint as it appears (``max_count <= 0``: forever).
    """
    from deeplab_tf.checkpoints.loading import latest_checkpoint
    from deeplab_tf.checkpoints.paths import resolve_checkpoint_path
    from deeplab_tf.evaluation.evaluator import checkpoints_iterator

    if _CHECKPOINT_PATH.value:
        path = resolve_checkpoint_path(_CHECKPOINT_PATH.value)
        if not os.path.exists(path + ".index") and not os.path.isdir(path):
            raise UserError(f"--checkpoint_path={path}: no checkpoint there ({path}.index missing)")
        yield path
        return
    directory = checkpoint_dir()
    if max_count == 1 and latest_checkpoint(directory) is None:
        raise UserError(f"No checkpoint in --checkpoint_dir={directory}")
    if max_count != 1:
        print(f"Evaluating each new checkpoint in {directory} "
              f"({'until interrupted' if max_count <= 0 else f'{max_count} in all'}).",
              flush=True)
    yield from checkpoints_iterator(directory, latest_checkpoint, max_count=max_count,
                                    interval_secs=interval_secs)


# --- the model ---------------------------------------------------------------------------

def build_predictor(num_classes: int, directory: Optional[str], eval_config: EvalConfig):
    """The ``Predictor`` of the model to evaluate: the run's config.json (in ``directory``)
    with the explicit model flags on top, else the model flags; said on stdout. The class
    count must match the dataset's."""
    from deeplab_tf.checkpoints import run_dir
    from deeplab_tf.cli.flags import quantize
    from deeplab_tf.evaluation.predictor import Predictor

    resolved = run_dir.resolve_model_config(
        directory, model.model_config(num_classes=num_classes), model.explicit())
    if resolved.config.num_classes != num_classes:
        raise UserError(
            f"The model has {resolved.config.num_classes} classes but the dataset has "
            f"{num_classes} (check --dataset / --num_classes)")
    print(resolved.source, flush=True)
    predictor = Predictor(resolved, eval_config, quantize.requested_quantization())
    print(f"inference precision: {predictor.spec.precision} "
          f"({predictor.spec.precision_reason})", flush=True)
    return predictor
