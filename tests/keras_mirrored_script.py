"""One fit step under MirroredStrategy over 2 logical CPUs vs one device from the same weights
(run by tests/test_keras_mirrored.py in a fresh process: devices are set before TF starts)."""

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


def fitted(strategy, weights, images, labels):
    with strategy.scope():
        model = build_model(helpers.tiny_config(weight_decay=1e-3))
        model.set_weights(weights)
        model.compile(optimizer=keras.optimizers.SGD(0.05),
                      loss=SegmentationLoss(3, IGNORE, label_weights=(1.0, 2.0, 0.5)))
    dataset = tf.data.Dataset.from_tensor_slices((images, labels)).batch(4)
    history = model.fit(dataset, epochs=1, verbose=0)
    return model.get_weights(), history.history["loss"][0]


images, labels = squares(count=4)
labels[:2, :, :20] = IGNORE  # unequal valid pixels per replica
weights = build_model(helpers.tiny_config(weight_decay=1e-3)).get_weights()
mirrored = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
assert mirrored.num_replicas_in_sync == 2
ours, loss_two = fitted(mirrored, weights, images, labels)
theirs, loss_one = fitted(tf.distribute.get_strategy(), weights, images, labels)
worst = max(float(np.abs(a - b).max()) for a, b in zip(ours, theirs))
print("WEIGHTS max difference", worst, "LOSS", loss_two, loss_one, flush=True)
for a, b in zip(ours, theirs):
    np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-5)
np.testing.assert_allclose(loss_two, loss_one, rtol=1e-4)
print("OK", loss_two, loss_one)
