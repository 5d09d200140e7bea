"""The Keras workflow end to end: a user's script in fresh processes (fit on the pipeline,
save, load, identical predictions); serialisation of the loss, metric, schedule and
segmenter; Keras callbacks; TensorBoard reading a training run's scalars."""

import os
import subprocess
import sys

import keras
import numpy as np
import pytest

import helpers
from keras_data import IGNORE, squares
from train_data import write_shapes_dataset
from deeplab_tf.losses import SegmentationLoss
from deeplab_tf.metrics import MeanIoU
from deeplab_tf.model import DeepLab, build_model
from deeplab_tf.schedules import PolyLearningRate

HERE = os.path.dirname(__file__)


def _run(*args):
    env = dict(os.environ, PYTHONPATH=HERE)
    result = subprocess.run([sys.executable, os.path.join(HERE, "keras_user_script.py"), *args],
                            capture_output=True, text=True, env=env, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]


def test_user_script_fit_save_load_in_a_fresh_process_predicts_the_same(tmp_path):
    data_dir = write_shapes_dataset(tmp_path / "data", splits={"train": 6}, size=(40, 40))
    model_path, saved, loaded = (str(tmp_path / n) for n in ("m.keras", "a.npy", "b.npy"))
    _run("train", data_dir, model_path, saved)
    _run("predict", model_path, loaded)
    before, after = np.load(saved), np.load(loaded)
    assert before.shape == (2, 41, 37)
    np.testing.assert_array_equal(after, before)


def _compiled(**loss_kwargs):
    keras.utils.set_random_seed(0)
    model = build_model(helpers.tiny_config())
    model.compile(optimizer=keras.optimizers.SGD(PolyLearningRate(0.01, 20, slow_start_step=2),
                                                 momentum=0.9),
                  loss=SegmentationLoss(3, IGNORE, **loss_kwargs), metrics=[MeanIoU(3, IGNORE)])
    return model


def test_objects_round_trip_their_config():
    loss = SegmentationLoss(3, 255, label_weights=(1, 2, 3), top_k_percent_pixels=0.5,
                            hard_example_mining_step=7)
    assert SegmentationLoss.from_config(loss.get_config()).get_config() == loss.get_config()
    metric = MeanIoU(4, ignore_label=0)
    assert MeanIoU.from_config(metric.get_config()).get_config() == metric.get_config()
    rate = PolyLearningRate(0.007, 100, slow_start_step=10, slow_start_learning_rate=1e-3)
    clone = PolyLearningRate.from_config(rate.get_config())
    assert [float(clone(s)) for s in (0, 9, 10, 55)] == [float(rate(s)) for s in (0, 9, 10, 55)]
    np.testing.assert_allclose(float(rate(55)), 0.007 * (1 - 45 / 90) ** 0.9, rtol=1e-6)
    model = build_model(helpers.tiny_config())
    assert DeepLab.from_config(model.get_config()).config == model.config


def test_segmenter_outputs_at_the_input_size(tmp_path):
    model = build_model(helpers.tiny_config())
    images, _ = squares(count=2, size=33)  # 2 * 16 + 1: no padding
    logits = model.segmenter("logits").predict(images, verbose=0)
    labels = model.segmenter("labels").predict(images, verbose=0)
    assert logits.shape == (2, 33, 33, 3) and labels.shape == (2, 33, 33)
    np.testing.assert_array_equal(labels, logits.argmax(-1))
    np.testing.assert_array_equal(labels, model.predict_labels(images))
    path = str(tmp_path / "s.keras")
    model.segmenter("probabilities").save(path)
    probabilities = keras.saving.load_model(path).predict(images, verbose=0)
    np.testing.assert_allclose(probabilities.sum(-1), 1.0, rtol=1e-5)
    with pytest.raises(ValueError, match="output_type must be one of"):
        model.segmenter("masks")


def test_callbacks_checkpoint_early_stopping_tensorboard_backup(tmp_path):
    from tensorboard.backend.event_processing import event_accumulator

    images, labels = squares(count=4)
    model = _compiled(top_k_percent_pixels=0.5, hard_example_mining_step=4)
    callbacks = [
        keras.callbacks.ModelCheckpoint(str(tmp_path / "best.keras"), monitor="loss"),
        keras.callbacks.TensorBoard(str(tmp_path / "tb"), update_freq="epoch"),
        keras.callbacks.BackupAndRestore(str(tmp_path / "backup")),
        keras.callbacks.EarlyStopping(monitor="loss", patience=0, min_delta=100.0),
    ]
    history = model.fit(images, labels, batch_size=2, epochs=5, callbacks=callbacks, verbose=0)
    # min_delta=100: no epoch improves enough, so early stopping ends after patience + 1.
    assert len(history.history["loss"]) == 2
    assert isinstance(keras.saving.load_model(str(tmp_path / "best.keras")), DeepLab)
    # TensorBoard's own reader sees the scalars the run wrote.
    train_dir = os.path.join(tmp_path, "tb", "train")
    accumulator = event_accumulator.EventAccumulator(train_dir)
    accumulator.Reload()
    tags = accumulator.Tags()["tensors"] + accumulator.Tags()["scalars"]
    assert "epoch_loss" in tags and "epoch_mean_iou" in tags


def test_backup_and_restore_resumes_an_interrupted_fit(tmp_path):
    images, labels = squares(count=4)

    class Interrupt(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 1:
                raise RuntimeError("interrupted")

    backup = keras.callbacks.BackupAndRestore(str(tmp_path / "backup"))
    model = _compiled()
    with pytest.raises(RuntimeError, match="interrupted"):
        model.fit(images, labels, batch_size=2, epochs=4, callbacks=[backup, Interrupt()],
                  verbose=0)
    resumed = _compiled()
    history = resumed.fit(images, labels, batch_size=2, epochs=4, callbacks=[backup], verbose=0)
    # Epochs 0 and 1 were backed up: the resumed run does epochs 2 and 3 only, from step 4.
    assert len(history.history["loss"]) == 2
    assert int(resumed.optimizer.iterations.numpy()) == 8


def test_confusion_matrix_png_has_names_percentages_and_a_colour_scale(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure
    from PIL import Image

    from deeplab_tf.evaluation import report

    drawn = []
    original = Figure.savefig

    def keep(self, *args, **kwargs):
        drawn.append(self)
        return original(self, *args, **kwargs)

    cm = np.array([[8, 2, 0], [1, 9, 0], [0, 0, 5]])
    path = str(tmp_path / "cm.png")
    Figure.savefig = keep
    try:
        report.write_confusion_matrix_png(path, cm, ["circle", "square", "triangle"])
    finally:
        Figure.savefig = original
    with Image.open(path) as image:
        assert image.format == "PNG" and image.size[0] > 300
    axes, colorbar = drawn[0].axes
    assert [t.get_text() for t in axes.get_xticklabels()] == ["circle", "square", "triangle"]
    assert axes.get_xlabel() == "predicted class" and axes.get_ylabel() == "ground-truth class"
    assert {t.get_text() for t in axes.texts} >= {"80%", "20%", "10%", "90%", "100%"}
    assert colorbar.get_ylabel().startswith("fraction")


def _load_in_a_fresh_process(path, imports):
    code = (f"{imports}\nimport keras\nmodel = keras.saving.load_model({str(path)!r})\n"
            "print(type(model).__name__, model.config.depth_multiplier)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"), timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout.split()


def test_import_deeplab_tf_alone_makes_a_saved_model_loadable(tmp_path):
    """Keras finds DeepLab by its registered name after ``import deeplab_tf`` alone, which
    itself does not import TensorFlow."""
    path = tmp_path / "m.keras"
    build_model(helpers.tiny_config(depth_multiplier=0.5)).save(path)
    assert _load_in_a_fresh_process(path, "import sys, deeplab_tf\n"
                                          "assert 'tensorflow' not in sys.modules") == \
        ["DeepLab", "0.5"]


@pytest.mark.slow
def test_saved_model_loads_whichever_is_imported_first(tmp_path):
    path = tmp_path / "m.keras"
    build_model(helpers.tiny_config()).save(path)
    for imports in ("import tensorflow\nimport deeplab_tf", "import keras\nimport deeplab_tf"):
        assert _load_in_a_fresh_process(path, imports)[0] == "DeepLab"


def test_registration_table_lists_every_registered_class():
    """runtime.keras_registration.CLASSES names every class deeplab_tf registers with Keras
    (with its module), so that a saved model of any of them loads after import deeplab_tf."""
    import importlib
    import pkgutil

    import deeplab_tf
    from deeplab_tf.runtime.keras_registration import CLASSES, PACKAGE

    for info in pkgutil.walk_packages(deeplab_tf.__path__, "deeplab_tf."):
        if not info.name.startswith(("deeplab_tf.cli", "deeplab_tf.demo")) and \
                info.name not in ("deeplab_tf.hardware", "deeplab_tf.evaluation.inference"):
            importlib.import_module(info.name)
    registered = {name.split(">", 1)[1]: cls.__module__
                  for name, cls in keras.saving.get_custom_objects().items()
                  if name.startswith(PACKAGE + ">")}
    assert registered == CLASSES
