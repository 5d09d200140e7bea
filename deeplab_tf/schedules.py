"""The original DeepLab's learning-rate policies with slow start.

As ``utils/train_utils.get_model_learning_rate`` of the original, with ``s`` the step
(number of updates done so far) and ``s' = max(s - slow_start_step, 0)``:

* ``poly``:   ``(base - end) * (1 - min(s', D) / D) ** learning_power + end``, with
  ``D = decay_steps`` if set (non-zero), else ``T' = steps - slow_start_step``, and
  ``end = end_learning_rate`` (0 by default: the rate reaches 0 at the last step);
* ``step``:   ``base * decay_factor ** floor(s' / decay_step)``;
* ``cosine``: ``base * 0.5 * (1 + cos(pi * min(s', T') / T'))``;

and ``slow_start_learning_rate`` while ``s < slow_start_step``.

``LearningRate`` computes it (deeplab-train's loop calls it with its step);
``LearningRatePolicy`` / ``PolyLearningRate`` are the same arithmetic as
``keras.optimizers.schedules.LearningRateSchedule`` objects for ``compile``: the Keras
optimizer calls them with its ``iterations`` (updates done so far), the same step.

Example:

>>> schedule = LearningRate("poly", base_learning_rate=0.007, training_number_of_steps=100)
>>> float(schedule(50))  # 0.007 * 0.5 ** 0.9
0.00375...
>>> rate = PolyLearningRate(base_learning_rate=0.007, training_number_of_steps=30000,
...                         slow_start_step=300, slow_start_learning_rate=1e-4)
>>> optimizer = keras.optimizers.SGD(learning_rate=rate, momentum=0.9)
"""

from __future__ import annotations

import math

import keras
import tensorflow as tf

from deeplab_tf.config import LEARNING_POLICIES, TrainConfig
from deeplab_tf.errors import ConfigError


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
        decay_steps: float. Poly policy: steps (after the slow start) over which the rate
            decays to ``end_learning_rate``, then stays there; 0: to the last step.
        end_learning_rate: float. Poly policy: the rate at the end of the decay.
    """

    def __init__(self, policy="poly", *, base_learning_rate=1e-4, training_number_of_steps=30000,
                 learning_power=0.9, learning_rate_decay_step=2000,
                 learning_rate_decay_factor=0.1, slow_start_step=0,
                 slow_start_learning_rate=1e-4, decay_steps=0.0, end_learning_rate=0.0):
        if policy not in LEARNING_POLICIES:
            raise ConfigError(f"policy must be one of {', '.join(LEARNING_POLICIES)}. "
                             f"Received: policy={policy!r}")
        if training_number_of_steps - slow_start_step < 1:
            raise ConfigError(
                "training_number_of_steps must exceed slow_start_step. Received: "
                f"training_number_of_steps={training_number_of_steps}, "
                f"slow_start_step={slow_start_step}")
        if decay_steps < 0:
            raise ConfigError(f"decay_steps must be >= 0. Received: decay_steps={decay_steps}")
        self.policy = policy
        self.base_learning_rate = float(base_learning_rate)
        self.training_number_of_steps = int(training_number_of_steps)
        self.learning_power = float(learning_power)
        self.learning_rate_decay_step = int(learning_rate_decay_step)
        self.learning_rate_decay_factor = float(learning_rate_decay_factor)
        self.slow_start_step = int(slow_start_step)
        self.slow_start_learning_rate = float(slow_start_learning_rate)
        self.decay_steps = float(decay_steps)
        self.end_learning_rate = float(end_learning_rate)

    @classmethod
    def from_config(cls, config: TrainConfig) -> "LearningRate":
        return cls(config.learning_policy, base_learning_rate=config.learning_rate,
                   training_number_of_steps=config.training_number_of_steps,
                   learning_power=config.learning_power,
                   learning_rate_decay_step=config.learning_rate_decay_step,
                   learning_rate_decay_factor=config.learning_rate_decay_factor,
                   slow_start_step=config.slow_start_step,
                   slow_start_learning_rate=config.slow_start_learning_rate,
                   decay_steps=config.decay_steps, end_learning_rate=config.end_learning_rate)

    def __call__(self, step) -> tf.Tensor:
        """float32 scalar learning rate after ``step`` updates."""
        step = tf.cast(step, tf.float32)
        adjusted = tf.maximum(step - self.slow_start_step, 0.0)
        decay_steps = float(self.training_number_of_steps - self.slow_start_step)
        base = self.base_learning_rate
        if self.policy == "poly":  # tf.train.polynomial_decay without cycles, as the original
            poly_steps = self.decay_steps or decay_steps
            fraction = tf.minimum(adjusted, poly_steps) / poly_steps
            end = self.end_learning_rate
            rate = (base - end) * tf.pow(1.0 - fraction, self.learning_power) + end
        elif self.policy == "step":
            exponent = tf.floor(adjusted / self.learning_rate_decay_step)
            rate = base * tf.pow(self.learning_rate_decay_factor, exponent)
        else:
            fraction = tf.minimum(adjusted, decay_steps) / decay_steps
            rate = base * 0.5 * (1.0 + tf.cos(math.pi * fraction))
        if self.slow_start_step:
            rate = tf.where(step < self.slow_start_step, self.slow_start_learning_rate, rate)
        return tf.cast(rate, tf.float32)


_ARGS = ("base_learning_rate", "training_number_of_steps", "learning_power",
         "learning_rate_decay_step", "learning_rate_decay_factor", "slow_start_step",
         "slow_start_learning_rate", "decay_steps", "end_learning_rate")


@keras.saving.register_keras_serializable(package="deeplab_tf")
class LearningRatePolicy(keras.optimizers.schedules.LearningRateSchedule):
    """The original's ``poly`` / ``step`` / ``cosine`` policy with slow start, as a Keras
    schedule (the optimizer's ``iterations`` is the step).

    Args:
        policy, base_learning_rate, ...: the arguments of ``LearningRate`` (``_ARGS``).
    """

    def __init__(self, policy="poly", *, base_learning_rate=1e-4,
                 training_number_of_steps=30000, learning_power=0.9,
                 learning_rate_decay_step=2000, learning_rate_decay_factor=0.1,
                 slow_start_step=0, slow_start_learning_rate=1e-4, decay_steps=0.0,
                 end_learning_rate=0.0):
        self._rate = LearningRate(
            policy, base_learning_rate=base_learning_rate,
            training_number_of_steps=training_number_of_steps, learning_power=learning_power,
            learning_rate_decay_step=learning_rate_decay_step,
            learning_rate_decay_factor=learning_rate_decay_factor,
            slow_start_step=slow_start_step, slow_start_learning_rate=slow_start_learning_rate,
            decay_steps=decay_steps, end_learning_rate=end_learning_rate)
        self.policy = self._rate.policy
        for name in _ARGS:
            setattr(self, name, getattr(self._rate, name))

    @classmethod
    def from_train_config(cls, config: TrainConfig) -> "LearningRatePolicy":
        """The schedule ``deeplab-train`` runs for ``config``."""
        rate = LearningRate.from_config(config)
        return cls(rate.policy, **{name: getattr(rate, name) for name in _ARGS})

    def __call__(self, step):
        return self._rate(step)

    def get_config(self):
        config = {"policy": self.policy}
        config.update({name: getattr(self, name) for name in _ARGS})
        return config


@keras.saving.register_keras_serializable(package="deeplab_tf")
class PolyLearningRate(LearningRatePolicy):
    """The ``poly`` policy: ``(base - end) * (1 - min(s', D) / D) ** learning_power + end``
    after a slow start (see ``deeplab_tf.schedules``); arguments as ``LearningRatePolicy``
    less ``policy``."""

    def __init__(self, base_learning_rate=1e-4, training_number_of_steps=30000,
                 learning_power=0.9, slow_start_step=0, slow_start_learning_rate=1e-4,
                 decay_steps=0.0, end_learning_rate=0.0, **kwargs):
        kwargs.pop("policy", None)
        super().__init__("poly", base_learning_rate=base_learning_rate,
                         training_number_of_steps=training_number_of_steps,
                         learning_power=learning_power, slow_start_step=slow_start_step,
                         slow_start_learning_rate=slow_start_learning_rate,
                         decay_steps=decay_steps, end_learning_rate=end_learning_rate,
                         **kwargs)
