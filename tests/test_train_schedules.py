"""Learning-rate policies against the original's formulas; TrainConfig validation."""

import math

import numpy as np
import pytest

from deeplab_tf.config import TrainConfig
from deeplab_tf.schedules import LearningRate


def _reference(step, policy, base=0.01, steps=100, power=0.9, decay_step=30, factor=0.5,
               slow_step=0, slow_rate=1e-4):
    if step < slow_step:
        return slow_rate
    adjusted = max(step - slow_step, 0)
    total = steps - slow_step
    if policy == "poly":
        return base * (1 - min(adjusted, total) / total) ** power
    if policy == "step":
        return base * factor ** (adjusted // decay_step)
    return base * 0.5 * (1 + math.cos(math.pi * min(adjusted, total) / total))


@pytest.mark.parametrize("policy", ["poly", "step", "cosine"])
@pytest.mark.parametrize("slow_step", [0, 10])
def test_policies_match_reference(policy, slow_step):
    schedule = LearningRate(policy, base_learning_rate=0.01, training_number_of_steps=100,
                            learning_power=0.9, learning_rate_decay_step=30,
                            learning_rate_decay_factor=0.5, slow_start_step=slow_step,
                            slow_start_learning_rate=1e-4)
    for step in (0, 1, 9, 10, 11, 29, 30, 31, 55, 99, 100, 150):
        expected = _reference(step, policy, slow_step=slow_step)
        np.testing.assert_allclose(float(schedule(step)), expected, rtol=1e-5, atol=1e-8,
                                   err_msg=f"{policy} at step {step}")


def test_from_config_uses_adam_rate_for_adam():
    config = TrainConfig(optimizer="adam", adam_learning_rate=0.002, base_learning_rate=0.5,
                         training_number_of_steps=10)
    assert float(LearningRate.from_config(config)(0)) == pytest.approx(0.002)


@pytest.mark.parametrize("fields, message", [
    (dict(learning_policy="exp"), "learning_policy must be one of"),
    (dict(train_batch_size=0), "train_batch_size must be >= 1"),
    (dict(slow_start_step=10, training_number_of_steps=10), "slow_start_step must be in"),
    (dict(top_k_percent_pixels=0.0), "top_k_percent_pixels must be in"),
    (dict(mixed_precision="int8"), "mixed_precision must be one of"),
    (dict(label_weights=(1.0, -1.0)), "label_weights must be >= 0"),
    (dict(momentum=1.0), "momentum must be in"),
])
def test_train_config_rejects_bad_values(fields, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig(**fields)


def test_train_config_round_trips():
    config = TrainConfig(label_weights=[1, 2.5], tf_initial_checkpoint="", seed=3)
    assert config.label_weights == (1.0, 2.5) and config.tf_initial_checkpoint is None
    assert TrainConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ValueError, match="Unknown TrainConfig fields"):
        TrainConfig.from_dict({"learning_rate_typo": 1})


def _np_polynomial_decay(step, base, steps, power, slow_step, decay_steps, end):
    """tf.train.polynomial_decay (no cycle) as the original's get_model_learning_rate calls it:
    decay_steps 0 means steps - slow_step; after the decay the rate stays at end."""
    adjusted = np.float64(max(step - slow_step, 0))
    length = np.float64(decay_steps or (steps - slow_step))
    return (base - end) * (1.0 - min(adjusted, length) / length) ** power + end


@pytest.mark.parametrize("decay_steps, end, slow_step", [
    (0.0, 0.0, 0), (0.0, 1e-4, 10), (40.0, 0.0, 0), (37.5, 2e-3, 10), (250.0, 1e-3, 0)])
def test_poly_decay_steps_and_end_learning_rate_match_numpy(decay_steps, end, slow_step):
    from deeplab_tf.schedules import LearningRatePolicy, PolyLearningRate

    config = TrainConfig(learning_policy="poly", base_learning_rate=0.01,
                         training_number_of_steps=100, learning_power=0.9,
                         slow_start_step=slow_step, slow_start_learning_rate=1e-5,
                         decay_steps=decay_steps, end_learning_rate=end)
    schedules = [LearningRate.from_config(config), LearningRatePolicy.from_train_config(config),
                 PolyLearningRate(base_learning_rate=0.01, training_number_of_steps=100,
                                  learning_power=0.9, slow_start_step=slow_step,
                                  slow_start_learning_rate=1e-5, decay_steps=decay_steps,
                                  end_learning_rate=end)]
    for schedule in schedules:
        for step in (0, 5, 9, 10, 11, 30, 47, 50, 60, 99, 100, 260, 400):
            expected = 1e-5 if step < slow_step else _np_polynomial_decay(
                step, 0.01, 100, 0.9, slow_step, decay_steps, end)
            np.testing.assert_allclose(float(schedule(step)), expected, rtol=1e-5, atol=1e-9,
                                       err_msg=f"{type(schedule).__name__} at step {step}")
    # After decay_steps (past the slow start) the rate stays at end_learning_rate.
    if decay_steps:
        assert float(schedules[0](slow_step + int(decay_steps) + 5)) == pytest.approx(end)
    rebuilt = PolyLearningRate.from_config(schedules[2].get_config())
    assert (rebuilt.decay_steps, rebuilt.end_learning_rate) == (decay_steps, end)


def test_decay_steps_must_not_be_negative():
    with pytest.raises(ValueError, match="decay_steps must be >= 0. Received: decay_steps=-1"):
        TrainConfig(decay_steps=-1.0)
    with pytest.raises(ValueError, match="end_learning_rate must be >= 0"):
        TrainConfig(end_learning_rate=-0.5)
