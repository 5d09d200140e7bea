"""``PolyLearningRate`` (and ``LearningRatePolicy``): the original's learning-rate policies
with slow start as ``keras.optimizers.schedules.LearningRateSchedule`` objects.

The arithmetic is ``deeplab_tf.train.schedules.LearningRate`` (shared with ``deeplab-train``);
the Keras optimizer calls the schedule with its ``iterations`` (updates done so far), the
same step the custom loop passes.

Example:

>>> rate = PolyLearningRate(base_learning_rate=0.007, training_number_of_steps=30000,
...                         slow_start_step=300, slow_start_learning_rate=1e-4)
>>> optimizer = keras.optimizers.SGD(learning_rate=rate, momentum=0.9)
"""

from __future__ import annotations

import keras

from deeplab_tf.config import TrainConfig
from deeplab_tf.train.schedules import LearningRate

_ARGS = ("base_learning_rate", "training_number_of_steps", "learning_power",
         "learning_rate_decay_step", "learning_rate_decay_factor", "slow_start_step",
         "slow_start_learning_rate")


@keras.saving.register_keras_serializable(package="deeplab_tf")
class LearningRatePolicy(keras.optimizers.schedules.LearningRateSchedule):
    """The original's ``poly`` / ``step`` / ``cosine`` policy with slow start.

    Args:
        policy: str. ``"poly"``, ``"step"`` or ``"cosine"``.
        base_learning_rate: float. Rate at the start of the decay.
        training_number_of_steps: int. Total steps; poly and cosine reach 0 there.
        learning_power: float. Power of the poly policy.
        learning_rate_decay_step: int. Period of the step policy.
        learning_rate_decay_factor: float. Factor of the step policy.
        slow_start_step: int. Steps run at ``slow_start_learning_rate`` first.
        slow_start_learning_rate: float. Rate of the slow start.
    """

    def __init__(self, policy="poly", *, base_learning_rate=1e-4,
                 training_number_of_steps=30000, learning_power=0.9,
                 learning_rate_decay_step=2000, learning_rate_decay_factor=0.1,
                 slow_start_step=0, slow_start_learning_rate=1e-4):
        self._rate = LearningRate(
            policy, base_learning_rate=base_learning_rate,
            training_number_of_steps=training_number_of_steps, learning_power=learning_power,
            learning_rate_decay_step=learning_rate_decay_step,
            learning_rate_decay_factor=learning_rate_decay_factor,
            slow_start_step=slow_start_step, slow_start_learning_rate=slow_start_learning_rate)
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
    """The ``poly`` policy: ``base * (1 - s' / T') ** learning_power`` after a slow start
    (see ``deeplab_tf.train.schedules``); arguments as ``LearningRatePolicy`` less
    ``policy``."""

    def __init__(self, base_learning_rate=1e-4, training_number_of_steps=30000,
                 learning_power=0.9, slow_start_step=0, slow_start_learning_rate=1e-4,
                 **kwargs):
        kwargs.pop("policy", None)
        super().__init__("poly", base_learning_rate=base_learning_rate,
                         training_number_of_steps=training_number_of_steps,
                         learning_power=learning_power, slow_start_step=slow_start_step,
                         slow_start_learning_rate=slow_start_learning_rate, **kwargs)
