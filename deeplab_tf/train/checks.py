"""Host-side checks of each training step's results: one-line ``TrainingError`` and stop.

The step reports, summed over every replica, how many label values are neither a class nor
the ignore label and how many replicas had a non-finite loss; ``check_step`` turns either
into an error naming the step (and, for a non-finite loss, the batch's source where the data
provides it, and the newest checkpoint, which stays the last good one).
"""

from __future__ import annotations

import math
from typing import Callable, Optional

import tensorflow as tf

from deeplab_tf.errors import UserError


class TrainingError(UserError, ValueError):
    """Training cannot go on (bad labels, non-finite loss, no data); one-line message."""


def batch_sources(strategy, batch, local_non_finite, data_description: str) -> str:
    """Names the batches of this worker's replicas whose loss was not finite."""
    bad = [i for i, flag in enumerate(local_non_finite) if flag > 0]
    if not bad:
        return "on another worker"
    replicas = "replica " + ", ".join(str(i) for i in bad) + " of this worker"
    if len(batch) < 3:
        return f"{replicas} ({data_description})"
    sources = strategy.experimental_local_results(batch[2])
    names = []
    for i in bad:
        for value in tf.nest.flatten(sources[i]):
            value = value.numpy().reshape(-1)[:4]
            names.extend(v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v)
                         for v in value)
    return f"{replicas}, batch of {', '.join(names)}"


def check_step(step: int, values: dict, *, num_classes: int, ignore_label: Optional[int],
               num_replicas: int, newest_checkpoint: Callable[[], Optional[str]],
               sources: Optional[Callable[[], str]] = None):
    """Raises ``TrainingError`` if step ``step``'s reduced ``values`` show bad labels or a
    non-finite loss.

    Args:
        step: int. The step just run (1-based).
        values: dict of the step's reduced outputs (``invalid_labels``,
            ``largest_invalid_label``, ``cross_entropy``, ``regularization``, ``non_finite``).
        num_classes: int. Valid labels are ``[0, num_classes)``.
        ignore_label: int or None. Also valid.
        num_replicas: int. Quoted in the non-finite message.
        newest_checkpoint: callable() -> str or None, called only on a failure.
        sources: callable() -> str or None: names the failing batch (called only on failure).
    """
    if values["invalid_labels"] > 0:
        largest = int(values["largest_invalid_label"])
        raise TrainingError(
            f"Step {step}: {int(values['invalid_labels'])} label values are neither a class "
            f"in [0, {num_classes}) nor the ignore label "
            f"({ignore_label})" + (f"; the largest is {largest}" if largest >= 0 else "")
            + ". Check --num_classes / --dataset against the data")
    loss = values["cross_entropy"] + values["regularization"]
    spoilt = values.get("weights_non_finite", 0) > 0
    if values["non_finite"] > 0 or spoilt or not math.isfinite(loss):
        latest = newest_checkpoint()
        bad = int(values["non_finite"])
        where = "" if sources is None or not bad else "; " + sources()
        raise TrainingError(
            f"Step {step}: the loss, the input or the updated weights are not finite (loss "
            f"{loss}) on {bad or num_replicas} of {num_replicas} replica(s){where}; all "
            f"replicas stopped without saving, so the newest checkpoint is still "
            f"{latest or 'none (nothing saved yet)'}. "
            "Try a lower --base_learning_rate or check the input data")
