"""One fit step under MirroredStrategy over 2 logical CPUs vs one device from the same weights
(run by tests/test_keras_mirrored.py in a fresh process: devices are set before TF starts).

What must be equal, and is compared:

* with synchronised batch norm (``ModelConfig.sync_batch_norm``), the forward pass of the two
  replicas is the one device's on the global batch: the loss of the step (before the update)
  to float precision, and the batch-norm moving statistics after it;
* the update of every trainable variable. Summed in another order, this tiny network's float32
  gradients differ by a few percent (measured: 2.6% of the whole update, up to 9% of one
  variable's, in the first layers; the same spread as from perturbing the weights by 1e-7 in
  one and the same loop), so the two updates must agree within ``UPDATE_RTOL`` of the
  update's norm (per-replica batch norm, below, differs by 550%).

Not comparable, so not compared as equal: without synchronised batch norm each replica
normalises with its own 2 images' statistics, a different forward pass (its moving statistics
are per replica too); the script checks that the same comparison rejects that case, so the
tolerance above cannot hide a real difference. The dropout layer's rate is set to 0 in both
models: its masks are random per replica, and one device draws other masks.
"""

import sys

import numpy as np
import tensorflow as tf

tf.config.set_logical_device_configuration(
    tf.config.list_physical_devices("CPU")[0],
    [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()])

import keras  # noqa: E402

import helpers  # noqa: E402
from keras_data import IGNORE, squares  # noqa: E402
from deeplab_tf.losses import SegmentationLoss  # noqa: E402
from deeplab_tf.model import build_model  # noqa: E402

UPDATE_RTOL = 0.1
# One instance for the process: a second one's collectives would reuse the first's keys.
MIRRORED = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
assert MIRRORED.num_replicas_in_sync == 2


def fitted(strategy, config, weights, images, labels):
    """(the model after one fit step on the 4 images, the step's loss)."""
    with strategy.scope():
        model = build_model(config)
        model.set_weights(weights)
        for layer in model._flatten_layers():
            if isinstance(layer, keras.layers.Dropout):
                layer.rate = 0.0
        model.compile(optimizer=keras.optimizers.SGD(0.05),
                      loss=SegmentationLoss(3, IGNORE, label_weights=(1.0, 2.0, 0.5)))
    dataset = tf.data.Dataset.from_tensor_slices((images, labels)).batch(4)
    history = model.fit(dataset, epochs=1, verbose=0)
    return model, history.history["loss"][0]


def update_difference(ours, theirs, initial, trainable):
    """(||update_ours - update_theirs|| / ||update_theirs|| over all the trainable, or all
    the non-trainable, variables; the largest such ratio of one variable; its path).

    Variables whose update is at rounding level (a bias whose gradient is 0 up to rounding,
    as a batch norm follows) are left out of the per-variable ratio."""
    error = step = worst = 0.0
    name = None
    for a, b in zip(ours.weights, theirs.weights):
        assert a.path == b.path, (a.path, b.path)
        if a.trainable != trainable:
            continue
        difference = float(np.linalg.norm(a.numpy() - b.numpy()))
        update = float(np.linalg.norm(b.numpy() - initial[a.path]))
        error, step = error + difference ** 2, step + update ** 2
        if update > 1e-6 and difference / update > worst:
            worst, name = difference / update, a.path
    return (error / step) ** 0.5, worst, name


def compare(sync_batch_norm):
    keras.utils.set_random_seed(0)
    config = helpers.tiny_config(weight_decay=1e-3, sync_batch_norm=sync_batch_norm)
    initial_model = build_model(config)
    weights = initial_model.get_weights()
    initial = {v.path: v.numpy() for v in initial_model.weights}
    images, labels = squares(count=4)
    labels[:2, :, :20] = IGNORE  # unequal valid pixels per replica
    two, loss_two = fitted(MIRRORED, config, weights, images, labels)
    one, loss_one = fitted(tf.distribute.get_strategy(), config, weights, images, labels)
    trainable = update_difference(two, one, initial, trainable=True)
    statistics = update_difference(two, one, initial, trainable=False)
    print(f"sync_batch_norm={sync_batch_norm}: LOSS {loss_two} {loss_one}; relative update "
          f"difference (all; worst variable): trainable {trainable}, moving statistics "
          f"{statistics}", flush=True)
    return loss_two, loss_one, trainable[0], statistics[0]


loss_two, loss_one, trainable, statistics = compare(sync_batch_norm=True)
np.testing.assert_allclose(loss_two, loss_one, rtol=1e-5)
assert statistics < 1e-3, statistics
assert trainable < UPDATE_RTOL, trainable
# The same comparison tells per-replica batch norm apart: a different step, rejected.
loss_two, loss_one, trainable, _ = compare(sync_batch_norm=False)
if abs(loss_two - loss_one) < 1e-5 * abs(loss_one) or trainable < UPDATE_RTOL:
    sys.exit(f"per-replica batch norm not told apart: loss {loss_two} vs {loss_one}, "
             f"update difference {trainable}")
print("OK")
