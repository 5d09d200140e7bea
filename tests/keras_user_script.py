"""A Keras user's script, run by tests/test_keras_workflow.py in fresh processes.

``train DATA_DIR MODEL_PATH OUT.npy``: build -> compile with the project's loss and metric ->
fit a few steps on the converted miniature dataset through the project's tf.data pipeline ->
save .keras -> write predict_labels of fixed images. ``predict MODEL_PATH OUT.npy``: load the
.keras file and write predict_labels of the same images.
"""

import sys

import keras
import numpy as np

import deeplab_tf
from deeplab_tf.config import DataConfig
from deeplab_tf.data import pipeline
from deeplab_tf.losses import SegmentationLoss
from deeplab_tf.metrics import MeanIoU
from deeplab_tf.modeling.backbones import mean_pixel
from deeplab_tf.schedules import PolyLearningRate


def images():
    return np.random.default_rng(3).uniform(0, 255, (2, 41, 37, 3)).astype("float32")


def train(data_dir, model_path, out):
    keras.utils.set_random_seed(0)
    config = deeplab_tf.ModelConfig(model_variant="mobilenet_v2", depth_multiplier=0.25,
                                    num_classes=5, output_stride=16,
                                    decoder_output_stride=(4,))
    model = deeplab_tf.DeepLab(config)
    model.compile(
        optimizer=keras.optimizers.SGD(PolyLearningRate(0.01, training_number_of_steps=6),
                                       momentum=0.9),
        loss=SegmentationLoss(num_classes=5, ignore_label=255),
        metrics=[MeanIoU(num_classes=5, ignore_label=255)])
    data = DataConfig(dataset="", dataset_dir=data_dir, train_crop_size=(33, 33), seed=0)
    dataset = pipeline.train_dataset(data, batch_size=2,
                                     mean_pixel=mean_pixel(config.model_variant))
    history = model.fit(dataset, steps_per_epoch=3, epochs=2, verbose=0)
    assert len(history.history["loss"]) == 2 and "mean_iou" in history.history
    model.save(model_path)
    np.save(out, model.predict_labels(images()))


def predict(model_path, out):
    model = keras.saving.load_model(model_path)
    assert isinstance(model, deeplab_tf.DeepLab), type(model)
    np.save(out, model.predict_labels(images()))


if __name__ == "__main__":
    {"train": train, "predict": predict}[sys.argv[1]](*sys.argv[2:])
