"""``LearningRate``: the original DeepLab's learning-rate policies with slow start.

As ``utils/train_utils.get_model_learning_rate`` of the original, with ``s`` the step
(number of updates done so far) and ``s' = max(s - slow_start_step, 0)``:

* ``poly``:   ``base * (1 - min(s', T') / T') ** learning_power``, ``T' = steps - slow_start_step``;
* ``step``:   ``base * decay_factor ** floor(s' / decay_step)``;
* ``cosine``: ``base * 0.5 * (1 + cos(pi * min(s', T') / T'))``;

and ``slow_start_learning_rate`` while ``s < slow_start_step``.

Example:

>>> schedule = LearningRate("poly", base_learning_rate=0.007, training_number_of_steps=100)
>>> float(schedule(50))  # 0.007 * 0.5 ** 0.9
0.00375...
"""

from __future__ import annotations

import math

import tensorflow as tf

from deeplab_tf.config import LEARNING_POLICIES, TrainConfig


class LearningRate:
    """Learning rate as a function of the step (a Python int or an integer tensor).

    Args:
        policy: str. ``"poly"``, ``"step"`` or ``"cosine"``.
        base_learning_rate: float. Rate at the start of the decay.
        training_number_of_steps: int. Total steps; poly and cosine reach 0 there.
        learning_power: float. Power of the poly policy.
        learning_rate_decay_step: int. Period of the step policy.
        learning_rate_decay_factor: float. Factor of the step policy.
        slow_start_step: int. Steps run at ``slow_start_learning_rate`` before the decay.
        slow_start_learning_rate: float. Rate of the slow start.
    """

    def __init__(self, policy="poly", *, base_learning_rate=1e-4, training_number_of_steps=30000,
                 learning_power=0.9, learning_rate_decay_step=2000,
                 learning_rate_decay_factor=0.1, slow_start_step=0,
                 slow_start_learning_rate=1e-4):
        if policy not in LEARNING_POLICIES:
            raise ValueError(f"policy must be one of {', '.join(LEARNING_POLICIES)}. "
                             f"Received: policy={policy!r}")
        if training_number_of_steps - slow_start_step < 1:
            raise ValueError(
                "training_number_of_steps must exceed slow_start_step. Received: "
                f"training_number_of_steps={training_number_of_steps}, "
                f"slow_start_step={slow_start_step}")
        self.policy = policy
        self.base_learning_rate = float(base_learning_rate)
        self.training_number_of_steps = int(training_number_of_steps)
        self.learning_power = float(learning_power)
        self.learning_rate_decay_step = int(learning_rate_decay_step)
        self.learning_rate_decay_factor = float(learning_rate_decay_factor)
        self.slow_start_step = int(slow_start_step)
        self.slow_start_learning_rate = float(slow_start_learning_rate)

    @classmethod
    def from_config(cls, config: TrainConfig) -> "LearningRate":
        return cls(config.learning_policy, base_learning_rate=config.learning_rate,
                   training_number_of_steps=config.training_number_of_steps,
                   learning_power=config.learning_power,
                   learning_rate_decay_step=config.learning_rate_decay_step,
                   learning_rate_decay_factor=config.learning_rate_decay_factor,
                   slow_start_step=config.slow_start_step,
                   slow_start_learning_rate=config.slow_start_learning_rate)

    def __call__(self, step) -> tf.Tensor:
        """float32 scalar learning rate after ``step`` updates."""
        step = tf.cast(step, tf.float32)
        adjusted = tf.maximum(step - self.slow_start_step, 0.0)
        decay_steps = float(self.training_number_of_steps - self.slow_start_step)
        base = self.base_learning_rate
        if self.policy == "poly":
            fraction = tf.minimum(adjusted, decay_steps) / decay_steps
            rate = base * tf.pow(1.0 - fraction, self.learning_power)
        elif self.policy == "step":
            exponent = tf.floor(adjusted / self.learning_rate_decay_step)
            rate = base * tf.pow(self.learning_rate_decay_factor, exponent)
        else:
            fraction = tf.minimum(adjusted, decay_steps) / decay_steps
            rate = base * 0.5 * (1.0 + tf.cos(math.pi * fraction))
        if self.slow_start_step:
            rate = tf.where(step < self.slow_start_step, self.slow_start_learning_rate, rate)
        return tf.cast(rate, tf.float32)
