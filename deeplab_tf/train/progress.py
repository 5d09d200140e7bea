"""What a training run reports: ``TrainResult``, the progress line every ``log_steps`` and
a step's outputs as host values (``step_values``).

The progress line (absl logging) gives step, loss, cross-entropy, learning rate, images/s and
ETA; the same values go to TensorBoard as scalars (``TrainSummaries``).
"""

from __future__ import annotations

import dataclasses
from typing import List, Optional, Tuple

import numpy as np
from absl import logging


@dataclasses.dataclass
class TrainResult:
    """What ``Trainer.run`` did.

    Attributes:
        step: int. Steps done in total (also those of earlier runs in the same logdir).
        start_step: int. Step this run started from (0, or a resumed checkpoint's).
        loss: float or None. Total loss of the last step run.
        images_per_second: float or None. Throughput after the first (tracing) step.
        checkpoint: str or None. Newest checkpoint written or resumed.
        preempted: bool. True if stopped by SIGTERM.
        history: list of (step, total loss) at every progress line.
    """

    step: int
    start_step: int
    loss: Optional[float] = None
    images_per_second: Optional[float] = None
    checkpoint: Optional[str] = None
    preempted: bool = False
    history: List[Tuple[int, float]] = dataclasses.field(default_factory=list)


def format_eta(seconds: float) -> str:
    """``H:MM:SS`` of ``seconds`` (rounded)."""
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}"


def log_progress(summaries, step: int, total_steps: int, values: dict, rate: float,
                 images_per_second: Optional[float], eta: Optional[float]):
    """Logs the progress line of ``step`` and writes its scalars to ``summaries``."""
    loss = values["cross_entropy"] + values["regularization"]
    logging.info(
        "step %d/%d  loss %.4f (cross-entropy %.4f)  lr %.6g  %s images/s  ETA %s", step,
        total_steps, loss, values["cross_entropy"], rate,
        "-" if images_per_second is None else f"{images_per_second:.2f}",
        "-" if eta is None else format_eta(eta))
    scalars = {"loss/total": loss, "loss/cross_entropy": values["cross_entropy"],
               "loss/regularization": values["regularization"], "learning_rate": rate}
    if images_per_second is not None:
        scalars["images_per_second"] = images_per_second
    summaries.scalars(step, scalars)


def step_values(outputs: dict) -> dict:
    """A step's outputs as NumPy arrays, scalars as floats."""
    values = {key: getattr(value, "numpy", lambda v=value: v)() for key, value in outputs.items()}
    return {key: value if np.ndim(value) else float(value) for key, value in values.items()}


class StepTimer:
    """Images/s and ETA over the steps timed since the last progress line."""

    def __init__(self, batch_size: int, total_steps: int):
        self.batch_size, self.total_steps = batch_size, total_steps
        self.steps, self.seconds = 0, 0.0

    def add(self, seconds: float):
        """One more timed step."""
        self.steps += 1
        self.seconds += seconds

    def take(self, step: int):
        """(images per second, ETA in seconds) at ``step`` over the steps timed since the
        last call, then starts again; (None, None) when none was timed."""
        if not self.steps:
            return None, None
        steps_per_second = self.steps / self.seconds
        self.steps, self.seconds = 0, 0.0
        return steps_per_second * self.batch_size, (self.total_steps - step) / steps_per_second
