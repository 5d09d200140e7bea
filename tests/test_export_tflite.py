"""TFLite export: every mode converts, runs in LiteRT and agrees with the Keras model on scenes
a small trained model segments well; int8 is calibrated from TFRecord shards."""

import dataclasses
import json
import os

import numpy as np
import pytest

from deeplab_tf.config import ExportConfig
from deeplab_tf import inference
from deeplab_tf.inference import predict_labels, upsample_logits
from deeplab_tf.export import litert, tflite
from deeplab_tf.export.litert import LiteRTModel
from deeplab_tf.export.errors import ExportError
from deeplab_tf.export.tflite import TFLiteExportError, export_tflite
from export_helpers import scene_config, scenes, train_scene_model, write_scene_tfrecords
from helpers import np_resize_bilinear_align_corners

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
    from deeplab_tf.inference import InferenceSpec, predict, prepare_model

    images, _ = scenes(np.random.default_rng(101), 8, 45, 61)
    spec = InferenceSpec.from_configs(scene_config(), EvalConfig(inference_precision="float32"))
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
    assert info["inference_spec"]["pad_value"] == list(MEAN_PIXEL)
    assert info["inference_spec"]["crop_size"] == list(CROP)
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


def _spec(**fields):
    config = ExportConfig(format="tflite", crop_size=CROP, **fields)
    return tflite.tflite_spec(scene_config(), config)


def test_prepare_image_pads_small_and_shrinks_large_images():
    spec = _spec()
    assert spec.crop_size == CROP and spec.pad_value == MEAN_PIXEL and spec.single_pass
    small = np.full((20, 30, 3), 7, np.uint8)
    prepared, sizes, used = litert.prepare_image(small, spec, CROP)
    assert prepared.shape == (1,) + CROP + (3,) and used == spec
    assert (prepared[0, :20, :30] == 7).all() and (prepared[0, 20:] == 127.5).all()
    assert (prepared[0, :, 30:] == 127.5).all()
    assert list(sizes.numpy()) == [20, 30, 20, 30]
    # The same function as the one inference path's pre-processing.
    padded, _ = inference.pad_inputs(small[None], spec)
    np.testing.assert_array_equal(prepared, padded.numpy())
    # Too large: the spec's resize to range (a lower max_resize_value) shrinks it to fit.
    large = np.zeros((66, 66, 3), np.uint8)
    prepared, sizes, used = litert.prepare_image(large, spec, CROP)
    assert used.max_resize_value == 33 and list(sizes.numpy()) == [66, 66, 33, 33]
    assert prepared.shape == (1,) + CROP + (3,) and (prepared[0, :, 33:] == 127.5).all()
    tall = np.zeros((80, 40, 3), np.uint8)  # 80 rows into 33: 33 x floor(16.5)
    _, sizes, _ = litert.prepare_image(tall, spec, CROP)
    assert list(sizes.numpy()) == [80, 40, 33, 16]


def test_a_multi_scale_spec_is_refused():
    with pytest.raises(ValueError, match="one pass"):
        litert.fitting_spec(dataclasses.replace(_spec(), scales=(0.5, 1.0)), 10, 10, CROP)


def test_predict_image_of_another_size(trained, exports):
    runner = LiteRTModel(exports("float32")["path"])  # the spec from the .json beside it
    assert runner.spec == _spec()
    images, labels = scenes(np.random.default_rng(3), 2, 25, 40)
    for image, label in zip(images, labels):
        predicted = runner.predict_image(image)
        assert predicted.shape == label.shape
        assert (predicted == label).mean() > 0.85


def test_predict_image_of_a_larger_image_resizes_back(trained, exports):
    """66x98 is twice the 33x49 input: downscaled (align corners), predicted, labels
    resized back nearest (align corners), as a NumPy recomputation says."""
    runner = LiteRTModel(exports("float32")["path"])
    image = scenes(np.random.default_rng(4), 1, 66, 98)[0][0]
    small = np_resize_bilinear_align_corners(image[None].astype(np.float32), *CROP)
    small_labels = predict_labels(trained["model"], small).numpy()[0]
    rows = np.floor(np.arange(66) * (CROP[0] - 1) / 65 + 0.5).astype(int)
    cols = np.floor(np.arange(98) * (CROP[1] - 1) / 97 + 0.5).astype(int)
    expected = small_labels[rows][:, cols]
    predicted = runner.predict_image(image)
    assert predicted.shape == (66, 98)
    agreement = (predicted == expected).mean()
    print(f"66x98 through the 33x49 TFLite input: agreement {agreement:.5f}")
    assert agreement >= 0.99


def test_predict_image_needs_a_spec(exports):
    with open(exports("float32")["path"], "rb") as f:
        runner = LiteRTModel(f.read())  # bytes: no .json to read
    with pytest.raises(ValueError, match="needs the model's InferenceSpec"):
        runner.predict_image(np.zeros((10, 10, 3), np.uint8))


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
    with pytest.raises(ExportError, match="must have shape"):
        tflite.convert_tflite(trained["model"], config,
                              representative_images=[np.zeros((1, 10, 10, 3), np.float32)])
