"""TFLite export: every mode converts, runs in LiteRT and agrees with the Keras model on scenes
a small trained model segments well; int8 is calibrated from TFRecord shards."""

import json
import os

import numpy as np
import pytest

from deeplab_tf.config import ExportConfig
from deeplab_tf.evaluation.inference import predict_labels, upsample_logits
from deeplab_tf.export import tflite
from deeplab_tf.export.tflite import LiteRTModel, TFLiteExportError, export_tflite
from export_helpers import scene_config, scenes, train_scene_model, write_scene_tfrecords

CROP = (33, 49)
MEAN_PIXEL = (127.5, 127.5, 127.5)  # mobilenet_v2's
# Minimum pixel agreement with the Keras model's labels.
AGREEMENT = {"float32": 0.999, "float16": 0.999, "dynamic_range": 0.99, "int8": 0.97}


@pytest.fixture(scope="session")
def trained():
    """A tiny model trained on scenes, its Keras labels on test scenes, calibration shards."""
    model = train_scene_model()
    images, labels = scenes(np.random.default_rng(100), 16, *CROP)
    keras_labels = predict_labels(model, images).numpy()
    return {"model": model, "images": images, "labels": labels, "keras_labels": keras_labels}


@pytest.fixture(scope="session")
def exports(trained, tmp_path_factory):
    """Each mode exported once (lazily) with ``export_tflite``."""
    root = tmp_path_factory.mktemp("tflite")
    calibration_dir = str(root / "calibration")
    # Calibration scenes at another size than the input: they are fitted to it as at inference.
    write_scene_tfrecords(calibration_dir, "train", *scenes(np.random.default_rng(7), 12, 40, 60))
    cache = {}

    def get(mode, output="argmax"):
        if (mode, output) not in cache:
            config = ExportConfig(format="tflite", crop_size=CROP, tflite_mode=mode,
                                  tflite_output=output, model_name=f"scenes_{output}",
                                  calibration_dataset_dir=calibration_dir,
                                  calibration_steps=16)
            cache[mode, output] = export_tflite(trained["model"], scene_config(), config,
                                                str(root / "out"))
        return cache[mode, output]

    return get


def test_model_segments_scenes_well(trained):
    accuracy = (trained["keras_labels"] == trained["labels"]).mean()
    assert accuracy > 0.9, accuracy


def test_fast_default_formulation_keeps_the_trained_models_labels(trained):
    """Issue 14: the default inference formulation (batch norm folded, weights constants)
    gives the unfolded Keras model's labels on the golden-style scenes."""
    from deeplab_tf.config import EvalConfig
    from deeplab_tf.evaluation.inference import InferenceSpec, predict, prepare_model

    images, _ = scenes(np.random.default_rng(101), 8, 45, 61)
    spec = InferenceSpec.from_configs(scene_config(), EvalConfig())
    fast = predict(prepare_model(trained["model"], spec, scene_config()), images, spec)
    slow = predict(trained["model"], images, InferenceSpec.from_configs(
        scene_config(), EvalConfig(fold_batch_norm=False)))
    agreement = float((fast["labels"].numpy() == slow["labels"].numpy()).mean())
    print(f"trained model, folded vs unfolded argmax agreement: {agreement:.6f} "
          f"(8 scenes of 45x61)")
    assert agreement == 1.0


@pytest.mark.parametrize("mode", ["float32", "float16", "dynamic_range", "int8"])
def test_mode_runs_in_litert_and_agrees_with_keras(trained, exports, mode):
    result = exports(mode)
    runner = LiteRTModel(result["path"])
    assert runner.input_size == CROP
    ops = runner.op_names()
    assert {"RESIZE_BILINEAR", "ARG_MAX", "CONV_2D", "DEPTHWISE_CONV_2D"} <= ops
    # Frozen weights: no resource variables, no TensorFlow (Flex) fallback ops.
    assert not ops & {"VAR_HANDLE", "READ_VARIABLE"}
    assert not any(op.startswith("Flex") for op in ops)
    predictions = np.concatenate([runner.predict(image[None]) for image in trained["images"]])
    assert predictions.dtype == np.int32 and predictions.shape == trained["labels"].shape
    agreement = (predictions == trained["keras_labels"]).mean()
    print(f"{mode}: {result['size_bytes']} bytes, agreement {agreement:.5f}")
    assert agreement >= AGREEMENT[mode], (mode, agreement)
    accuracy = (predictions == trained["labels"]).mean()
    assert accuracy >= (trained["keras_labels"] == trained["labels"]).mean() - 0.01


def test_int8_takes_raw_uint8_pixels_and_is_small(exports):
    int8, float32 = exports("int8"), exports("float32")
    runner = LiteRTModel(int8["path"])
    assert runner.input_dtype == np.uint8
    assert runner.input_details["quantization"] == (1.0, 0)  # raw pixels, no rescaling
    assert runner.output_details["dtype"] == np.int32
    assert LiteRTModel(float32["path"]).input_dtype == np.float32
    sizes = {mode: os.path.getsize(exports(mode)["path"])
             for mode in ("float32", "float16", "dynamic_range", "int8")}
    assert sizes["int8"] <= 0.30 * sizes["float32"], sizes
    assert sizes["dynamic_range"] <= 0.30 * sizes["float32"], sizes
    assert sizes["float16"] <= 0.55 * sizes["float32"], sizes
    assert int8["size_bytes"] == sizes["int8"]


def test_metadata_json_describes_input_and_output(exports):
    result = exports("int8")
    with open(result["metadata_path"]) as f:
        info = json.load(f)
    assert result["path"].endswith("scenes_argmax_int8.tflite")
    assert info["input"] == {"name": "images", "shape": [1, 33, 49, 3], "dtype": "uint8",
                             "pixels": "RGB 0..255 (normalisation is inside the model)",
                             "pad_value": list(MEAN_PIXEL)}
    assert info["output"] == {"name": "semantic_predictions", "shape": [1, 33, 49],
                              "dtype": "int32"}
    assert info["num_classes"] == 3 and info["tflite_mode"] == "int8"
    assert info["export"]["calibration_steps"] == 16


def test_logits_output_matches_keras_logits(trained, exports):
    runner = LiteRTModel(exports("float32", "logits")["path"])
    assert "ARG_MAX" not in runner.op_names()
    image = trained["images"][:1]
    logits = runner.run(image)
    assert logits.shape == (1,) + CROP + (3,) and logits.dtype == np.float32
    expected = upsample_logits(trained["model"](image), CROP).numpy()
    np.testing.assert_allclose(logits, expected, atol=1e-3)
    np.testing.assert_array_equal(runner.predict(image), trained["keras_labels"][:1])


def test_fit_to_input_pads_small_and_shrinks_large_images():
    small = np.full((20, 30, 3), 7, np.uint8)
    prepared, content = tflite.fit_to_input(small, CROP, MEAN_PIXEL)
    assert prepared.shape == CROP + (3,) and content == (20, 30)
    assert (prepared[:20, :30] == 7).all() and (prepared[20:] == 127.5).all()
    assert (prepared[:, 30:] == 127.5).all()
    large = np.zeros((66, 66, 3), np.uint8)  # scale 0.5 to fit 33 rows
    prepared, content = tflite.fit_to_input(large, CROP, MEAN_PIXEL)
    assert content == (33, 33) and (prepared[:, 33:] == 127.5).all()


def test_predict_image_of_another_size(trained, exports):
    runner = LiteRTModel(exports("float32")["path"])
    images, labels = scenes(np.random.default_rng(3), 2, 25, 40)
    for image, label in zip(images, labels):
        predicted = runner.predict_image(image, MEAN_PIXEL)
        assert predicted.shape == label.shape
        assert (predicted == label).mean() > 0.85


def test_existing_file_needs_overwrite(trained, exports):
    result = exports("float32")
    directory = os.path.dirname(result["path"])
    config = ExportConfig(format="tflite", crop_size=CROP, model_name="scenes_argmax")
    with pytest.raises(TFLiteExportError, match="already exists"):
        export_tflite(trained["model"], scene_config(), config, directory)


def test_int8_needs_representative_images(trained):
    config = ExportConfig(format="tflite", crop_size=CROP, tflite_mode="int8")
    with pytest.raises(TFLiteExportError, match="representative images"):
        tflite.convert_tflite(trained["model"], config)
    with pytest.raises(TFLiteExportError, match="must have shape"):
        tflite.convert_tflite(trained["model"], config,
                              representative_images=[np.zeros((1, 10, 10, 3), np.float32)])
