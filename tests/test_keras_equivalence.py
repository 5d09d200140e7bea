"""Proof of equivalence: 20 steps of Keras ``fit`` and of deeplab-train's ``Trainer`` on one
device (same seed, data, schedule, weight decay, momentum, dropout, hard-pixel mining, label
weights and gradient multipliers) give the same loss sequence and the same variables.

The model has no image-pooling branch. This tiny network's float32 gradients carry a few
percent of rounding noise in its first layers (measured in one and the same loop: weights
perturbed by 1e-7 relative change the gradient by 3%, and the loss by 3e-4 (relative) at
step 2 and 1e-2 at step 4), and with the image-pooling branch the two loops' graphs round
differently there (loss 1 agrees to 3e-8, not exactly), which 20 steps grow into percents.
Without it both graphs compute the same operations and agree to float precision over all 20
steps, so any difference in what is computed (the rate's step, the loss's normalisation, the
multipliers, the weight decay, the top-k annealing step) shows as a large difference.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

from helpers import tiny_config
from keras_data import IGNORE, squares
from deeplab_tf.config import TrainConfig
from deeplab_tf.losses import SegmentationLoss
from deeplab_tf.model import build_model
from deeplab_tf.schedules import LearningRatePolicy
from deeplab_tf.train.loop import Trainer

STEPS = 20
BATCH = 4


def _state(model):
    """{variable path: value}, less the RNG state of the dropout's seed generator (its path
    carries a per-process counter, ``seed_generator_<n>``)."""
    return {v.path: v.numpy() for v in model.variables if "seed_generator" not in v.path}


def _compare(tmp_path, **schedule):
    model_config = tiny_config(weight_decay=1e-3, add_image_level_feature=False)
    train_config = TrainConfig(
        train_batch_size=BATCH, training_number_of_steps=STEPS, momentum=0.9, **schedule,
        label_weights=(1.0, 2.0, 3.0), top_k_percent_pixels=0.5, hard_example_mining_step=10,
        last_layer_gradient_multiplier=3.0, log_steps=1, save_interval_steps=STEPS, seed=7,
        strategy="one_device", save_summaries_images=False)
    images, labels = squares(count=8)

    def dataset():
        return tf.data.Dataset.from_tensor_slices((images, labels)).repeat().batch(BATCH)

    trainer = Trainer(model_config, train_config, train_logdir=str(tmp_path / "trainer"),
                      dataset_fn=lambda context: dataset(), ignore_label=IGNORE)
    trainer_losses = [loss for _, loss in trainer.run().history]

    keras.utils.set_random_seed(train_config.seed)
    model = build_model(model_config)
    model.compile(
        optimizer=keras.optimizers.SGD(
            learning_rate=LearningRatePolicy.from_train_config(train_config),
            momentum=train_config.momentum),
        loss=SegmentationLoss(
            num_classes=model_config.num_classes, ignore_label=IGNORE,
            label_weights=train_config.label_weights,
            top_k_percent_pixels=train_config.top_k_percent_pixels,
            hard_example_mining_step=train_config.hard_example_mining_step),
        last_layer_gradient_multiplier=train_config.last_layer_gradient_multiplier)
    history = model.fit(dataset(), steps_per_epoch=1, epochs=STEPS, verbose=0)
    fit_losses = history.history["loss"]

    assert len(trainer_losses) == len(fit_losses) == STEPS
    # Training moved the loss, so equal sequences are not equal by accident.
    assert abs(trainer_losses[-1] - trainer_losses[0]) > 0.05
    np.testing.assert_allclose(fit_losses, trainer_losses, rtol=1e-5, atol=1e-6)
    ours, theirs = _state(model), _state(trainer.model)
    assert sorted(ours) == sorted(theirs)
    assert len(ours) == len(model.variables) - 1  # only the seed generator left out
    for path, value in theirs.items():
        # Moving statistics included: both loops ran the same batches in the same order.
        np.testing.assert_allclose(ours[path], value, rtol=1e-4, atol=1e-6, err_msg=path)


@pytest.mark.slow
def test_fit_and_trainer_give_the_same_20_losses(tmp_path):
    # A constant rate ("step" policy decaying after the run); the default test below also
    # changes the rate at every step.
    _compare(tmp_path, base_learning_rate=0.005, learning_policy="step",
             learning_rate_decay_step=10 * STEPS)


def test_fit_and_trainer_agree_under_a_decaying_schedule(tmp_path):
    # Slow start at 0.001 for updates 0-2, then poly decay from 0.005: a rate read one step
    # late by either side would run update 3 at 0.001 instead of 0.005.
    _compare(tmp_path, base_learning_rate=0.005, slow_start_step=3,
             slow_start_learning_rate=0.001)


def test_fit_runs_update_s_at_the_rate_of_step_s():
    """The original's rate uses global_step before its increment: update s (counting from 0)
    runs at rate(s). With loss = w * x and x = 1 the gradient is 1, so update s moves w by
    exactly -rate(s)."""
    schedule = LearningRatePolicy("poly", base_learning_rate=0.1, training_number_of_steps=10,
                                  learning_power=0.9, slow_start_step=2,
                                  slow_start_learning_rate=0.01)
    model = keras.Sequential([keras.Input((1,)),
                              keras.layers.Dense(1, use_bias=False, kernel_initializer="zeros")])
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=schedule),
                  loss=lambda y_true, y_pred: y_pred[:, 0])
    weights = []
    record = keras.callbacks.LambdaCallback(
        on_train_batch_end=lambda batch, logs: weights.append(float(model.weights[0][0, 0])))
    model.fit(np.ones((6, 1), np.float32), np.zeros((6, 1), np.float32), batch_size=1,
              shuffle=False, verbose=0, callbacks=[record])
    moves = -np.diff(np.concatenate([[0.0], weights]))
    expected = [0.01, 0.01] + [0.1 * (1 - (s - 2) / 8) ** 0.9 for s in range(2, 6)]
    np.testing.assert_allclose(moves, expected, rtol=1e-5)
