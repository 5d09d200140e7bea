"""OpenVINO and ONNX exports against the Keras model, each run by its own runtime.

A tiny model trained on the generated scenes (tests/export_helpers.py) is exported; the IR is
run by OpenVINO (at float32 precision, ``F32_CONFIG``) and the .onnx by ONNX Runtime, and
their labels are compared with ``inference.predict`` of the Keras model as trained (batch
norm not folded), on scenes of several sizes (dynamic input) and at a fixed crop size. Agreement figures are printed
(``pytest -s``) and must be at least 99.9 %; the model itself must segment the scenes.
"""

import os

import numpy as np
import pytest

from export_helpers import scene_config, scenes, train_scene_model

SIZES = [(33, 33), (37, 53), (65, 49)]


# Trains a scene model and converts it per runtime: minutes on 2 cores.
pytestmark = pytest.mark.slow

@pytest.fixture(scope="module")
def trained():
    from deeplab_tf.inference import InferenceSpec, predict
    from deeplab_tf.modeling.backbones import mean_pixel

    config = scene_config()
    model = train_scene_model(steps=150)
    spec = InferenceSpec(output_stride=config.output_stride,
                         pad_value=mean_pixel(config.model_variant))
    keras_spec = InferenceSpec(output_stride=config.output_stride,
                               pad_value=mean_pixel(config.model_variant), fold_batch_norm=False)
    rng = np.random.default_rng(7)
    cases = []
    for height, width in SIZES:
        images, truth = scenes(rng, 2, height, width)
        images = np.round(images).astype(np.uint8)
        outputs = predict(model, images, keras_spec)
        cases.append((images, truth, outputs["labels"].numpy(),
                      outputs["probabilities"].numpy()))
    return model, config, spec, cases


def _agreement(got, want):
    return float((np.asarray(got) == want).mean())


def test_keras_reference_segments_the_scenes(trained):
    *_, cases = trained
    accuracy = np.mean([_agreement(labels, truth) for _, truth, labels, _ in cases])
    assert accuracy > 0.8, accuracy


def test_openvino_ir_matches_keras(trained, tmp_path):
    import openvino as ov
    from deeplab_tf.export.openvino import F32_CONFIG, export_openvino

    model, config, spec, cases = trained
    xml = export_openvino(model, config, spec, str(tmp_path / "ov"), probabilities=True)
    assert sorted(os.listdir(tmp_path / "ov")) == ["deeplab.bin", "deeplab.xml"]
    compiled = ov.Core().compile_model(xml, "CPU", F32_CONFIG)
    assert compiled.inputs[0].get_element_type() == ov.Type.u8
    assert compiled.inputs[0].get_partial_shape().is_dynamic
    agreements = []
    for images, _, labels, probabilities in cases:
        for image, want, want_p in zip(images, labels, probabilities):
            outputs = compiled(image[np.newaxis])
            got = outputs[compiled.outputs[0]]
            assert got.dtype == np.int32 and got.shape == (1,) + want.shape
            agreements.append(_agreement(got[0], want))
            np.testing.assert_allclose(outputs[compiled.outputs[1]][0], want_p, atol=1e-4)
    print(f"OpenVINO IR argmax agreement with Keras: {100 * min(agreements):.3f} % (worst "
          f"of {len(agreements)} scenes)")
    assert min(agreements) >= 0.999


def test_openvino_fixed_crop_size_and_predictor(trained, tmp_path):
    import openvino as ov
    from deeplab_tf.export.openvino import F32_CONFIG, OpenVINOPredictor, export_openvino

    model, config, spec, cases = trained
    images, _, labels, probabilities = cases[1]
    xml = export_openvino(model, config, spec, str(tmp_path), model_name="fixed",
                          crop_size=images.shape[1:3])
    compiled = ov.Core().compile_model(xml, "CPU", F32_CONFIG)
    assert list(compiled.inputs[0].get_shape()) == [1, *images.shape[1:3], 3]
    assert len(compiled.outputs) == 1
    assert _agreement(compiled(images[:1])[0][0], labels[0]) >= 0.999
    outputs = OpenVINOPredictor(model, config, spec).predict(images)
    assert outputs["labels"].shape == labels.shape
    agreement = _agreement(outputs["labels"], labels)
    print(f"OpenVINOPredictor argmax agreement with Keras: {100 * agreement:.3f} %")
    assert agreement >= 0.999
    np.testing.assert_allclose(outputs["probabilities"], probabilities, atol=1e-4)


def test_openvino_export_errors(trained, tmp_path):
    from deeplab_tf.export.openvino import OpenVINOExportError, export_openvino

    model, config, spec, _ = trained
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(OpenVINOExportError, match="not writable"):
        export_openvino(model, config, spec, str(blocker / "sub"))
    with pytest.raises(OpenVINOExportError, match="crop_size"):
        export_openvino(model, config, spec, str(tmp_path), crop_size=(0, 5))
    assert os.listdir(tmp_path) == ["file"]


def test_onnx_matches_keras(trained, tmp_path):
    from deeplab_tf.export import onnx as onnx_export

    try:
        onnx_export._import_tf2onnx()
    except onnx_export.OnnxExportError as error:
        pytest.skip(str(error))
    model, config, spec, cases = trained
    path = onnx_export.export_onnx(model, config, spec, str(tmp_path))
    assert os.path.basename(path) == "deeplab.onnx"
    runner = onnx_export.ONNXRuntimePredictor(path)
    agreements = []
    for images, _, labels, _ in cases:
        got = runner.predict(images)["labels"]
        assert got.shape == labels.shape and got.dtype == np.int32
        agreements.append(_agreement(got, labels))
    print(f"ONNX Runtime argmax agreement with Keras: {100 * min(agreements):.3f} % (worst "
          f"of {len(agreements)} sizes)")
    assert min(agreements) >= 0.999
