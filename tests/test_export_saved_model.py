"""SavedModel export: signatures, predictions equal to deeplab-eval's, REST/gRPC requests,
bad input, and the TF Serving version layout."""

import base64
import importlib.util
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from deeplab_tf.config import EvalConfig, ExportConfig
from deeplab_tf.data import schema
from deeplab_tf.data.preprocess import padded_size
from deeplab_tf.evaluation import evaluator
from deeplab_tf import inference
from deeplab_tf.export import saved_model
from deeplab_tf.export.saved_model import ExportError, export_saved_model
from export_helpers import encode_jpeg, encode_png
from helpers import tiny_config
from test_inference import calibrated_model

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MEAN_PIXEL = (127.5, 127.5, 127.5)  # mobilenet_v2's
SIZES = [(33, 45), (50, 61)]
SCALES = (0.75, 1.25)


def load_client():
    """export/client.py (a script in the top-level assets folder, not a package)."""
    spec = importlib.util.spec_from_file_location("deeplab_export_client",
                                                  os.path.join(REPO, "export", "client.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _images(seed=0):
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for h, w in SIZES]


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """One model exported twice into one model folder: single-scale, then multi-scale + flip."""
    config = tiny_config(num_classes=3)
    model = calibrated_model(config, seed=3)
    export_dir = str(tmp_path_factory.mktemp("exports"))
    # float32 (not the machine's ``auto``): compared below with the float32 model's numbers.
    single = export_saved_model(model, config, ExportConfig(export_probabilities=True,
                                                            inference_precision="float32"),
                                export_dir, metadata={"checkpoint": "none"})
    multi = export_saved_model(
        model, config, ExportConfig(inference_scales=SCALES, add_flipped_images=True,
                                    inference_precision="float32"),
        export_dir)
    return {"model": model, "config": config, "export_dir": export_dir, "single": single,
            "multi": multi}


def _eval_predict(model, **eval_kwargs):
    """deeplab-eval's predict function (pad to k*16+1 with the mean pixel, predict, crop), on
    eval's formulation (batch norm folded by default, as the export); without
    eval_crop_size, as ExportConfig's default."""
    eval_kwargs.setdefault("eval_crop_size", None)
    eval_kwargs.setdefault("inference_precision", "float32")
    return evaluator.make_predict_fn(model, EvalConfig(**eval_kwargs), tiny_config(num_classes=3))


def test_versions_are_consecutive_folders(exported):
    model_dir = os.path.join(exported["export_dir"], "deeplab")
    assert exported["single"] == os.path.join(model_dir, "1")
    assert exported["multi"] == os.path.join(model_dir, "2")
    assert sorted(os.listdir(model_dir)) == ["1", "2"]  # no staging folder left behind
    with open(os.path.join(exported["single"], "assets.extra", "deeplab_export.json")) as f:
        metadata = json.load(f)
    assert metadata["model"] == exported["config"].to_dict()
    assert metadata["export"]["export_probabilities"] is True
    assert metadata["checkpoint"] == "none"


def test_saved_model_cli_lists_signatures(exported):
    result = subprocess.run(
        [sys.executable, "-m", "tensorflow.python.tools.saved_model_cli", "show", "--dir",
         exported["single"], "--tag_set", "serve", "--all"],
        capture_output=True, text=True, timeout=120,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
    assert result.returncode == 0, result.stderr[-2000:]
    text = result.stdout

    def block(name):
        start = text.index(f"signature_def['{name}']")
        end = text.find("signature_def[", start + 1)
        return text[start:end if end > 0 else None]

    default = block("serving_default")
    assert "inputs['image_bytes']" in default
    assert "dtype: DT_STRING\n        shape: (-1)" in default
    for name, dtype, shape in [("semantic_predictions", "DT_INT32", "(-1, -1, -1)"),
                               ("semantic_probabilities", "DT_FLOAT", "(-1, -1, -1, 3)"),
                               ("image_height", "DT_INT32", "(-1)"),
                               ("image_width", "DT_INT32", "(-1)")]:
        assert f"outputs['{name}'] tensor_info:\n        dtype: {dtype}\n        shape: {shape}" \
            in default, name
    images = block("predict_images")
    assert ("inputs['images'] tensor_info:\n        dtype: DT_UINT8\n"
            "        shape: (-1, -1, -1, 3)") in images
    assert "outputs['semantic_predictions'] tensor_info:\n        dtype: DT_INT32\n" \
        "        shape: (-1, -1, -1)" in images
    assert "Method name is: tensorflow/serving/predict" in default


def test_signatures_equal_eval_predictions_at_two_sizes(exported):
    loaded = tf.saved_model.load(exported["single"])
    predict = _eval_predict(exported["model"])
    for image in _images():
        height, width = image.shape[:2]
        expected = predict(image[None].astype(np.float32)).numpy()
        assert expected.shape == (1, height, width) and len(np.unique(expected)) > 1
        outputs = loaded.signatures["predict_images"](images=tf.constant(image[None]))
        np.testing.assert_array_equal(outputs["semantic_predictions"].numpy(), expected)
        padded = inference.pad_images(image[None].astype(np.float32),
                                      padded_size(height, 16),
                                      padded_size(width, 16), MEAN_PIXEL)
        probabilities = inference.predict_probabilities(exported["model"], padded)
        np.testing.assert_allclose(outputs["semantic_probabilities"].numpy(),
                                   probabilities.numpy()[:, :height, :width], atol=1e-5)

        encoded = loaded.signatures["serving_default"](image_bytes=tf.constant([encode_png(image)]))
        np.testing.assert_array_equal(encoded["semantic_predictions"].numpy(), expected)
        assert encoded["image_height"].numpy().tolist() == [height]
        assert encoded["image_width"].numpy().tolist() == [width]


def test_multi_scale_flip_baked_in_equals_eval(exported):
    loaded = tf.saved_model.load(exported["multi"])
    signature = loaded.signatures["predict_images"]
    assert set(signature.structured_outputs) == {"semantic_predictions"}
    predict = _eval_predict(exported["model"], eval_scales=SCALES, add_flipped_images=True)
    single = _eval_predict(exported["model"])
    changed = 0
    for image in _images(seed=1) + _images(seed=3):
        expected = predict(image[None].astype(np.float32)).numpy()
        got = signature(images=tf.constant(image[None]))["semantic_predictions"].numpy()
        np.testing.assert_array_equal(got, expected)
        changed += (single(image[None].astype(np.float32)).numpy() != expected).sum()
    assert changed > 0  # the scales and flip change the answer: they really are in the graph


def test_folded_batch_norm_export(exported, tmp_path):
    """The default export folds batch norm into constants: the SavedModel holds no variables
    (the weights are not saved twice); --nofold_batch_norm keeps the Keras model and its
    variables, with the same probabilities to float rounding."""
    saved = tf.train.list_variables(os.path.join(exported["single"], "variables", "variables"))
    assert [name for name, _ in saved] == ["_CHECKPOINTABLE_OBJECT_GRAPH"]
    path = export_saved_model(exported["model"], exported["config"],
                              ExportConfig(fold_batch_norm=False, export_probabilities=True,
                                           inference_precision="float32"),
                              str(tmp_path))
    unfolded = tf.saved_model.load(path).signatures["predict_images"]
    assert len(tf.train.list_variables(os.path.join(path, "variables", "variables"))) > 10
    folded = tf.saved_model.load(exported["single"]).signatures["predict_images"]
    for image in _images():
        got = unfolded(images=tf.constant(image[None]))
        expected = folded(images=tf.constant(image[None]))
        np.testing.assert_allclose(got["semantic_probabilities"].numpy(),
                                   expected["semantic_probabilities"].numpy(), atol=1e-4)
    # The caller's model is left as it was (trainable, unfolded).
    assert all(layer._folded is None for layer in exported["model"]._flatten_layers()
               if hasattr(layer, "_folded"))


def _folded_weight_bytes(model, config, precision):
    spec = inference.InferenceSpec(output_stride=16, pad_value=MEAN_PIXEL, precision=precision)
    folded = inference.prepare_model(model, spec, config)
    return sum(int(np.prod(t.shape)) * t.dtype.size for layer in folded._flatten_layers()
               for t in (getattr(layer, "_folded", None) or ()))


def test_signatures_run_the_frozen_graph_with_the_weights_stored_once(exported):
    """The folded weights are Const nodes of one function both signatures call (frozen, as
    deeplab-eval's graph), not captured inputs: saved_model.pb holds them once."""
    loaded = tf.saved_model.load(exported["single"])
    for name in ("predict_images", "serving_default"):
        assert not loaded.signatures[name].captured_inputs, name
    weights = _folded_weight_bytes(exported["model"], exported["config"], "float32")
    graph_bytes = os.path.getsize(os.path.join(exported["single"], "saved_model.pb"))
    assert weights < graph_bytes < 1.5 * weights, (weights, graph_bytes)


def test_bfloat16_export_equals_eval_in_bfloat16(exported, tmp_path):
    """--inference_precision=bfloat16: the same labels as deeplab-eval's bfloat16 path, the
    weights stored in bfloat16 (about half the bytes), the precision in the metadata."""
    path = export_saved_model(exported["model"], exported["config"],
                              ExportConfig(inference_precision="bfloat16"), str(tmp_path))
    with open(os.path.join(path, "assets.extra", "deeplab_export.json")) as f:
        metadata = json.load(f)
    assert metadata["precision"] == "bfloat16" and "as asked" in metadata["precision_reason"]
    weights = _folded_weight_bytes(exported["model"], exported["config"], "bfloat16")
    # Every layer but the logits (float32 by design) in bfloat16.
    assert weights < 0.51 * _folded_weight_bytes(exported["model"], exported["config"],
                                                 "float32")
    # Stored once: the graph is the weights plus the float32 export's non-weight part (the
    # signatures' decoding and request checks), well short of a second copy.
    float_graph = os.path.getsize(os.path.join(exported["single"], "saved_model.pb"))
    overhead = float_graph - _folded_weight_bytes(exported["model"], exported["config"],
                                                  "float32")
    graph_bytes = os.path.getsize(os.path.join(path, "saved_model.pb"))
    assert weights < graph_bytes < 1.5 * weights + overhead, (weights, overhead, graph_bytes)
    signature = tf.saved_model.load(path).signatures["predict_images"]
    half = _eval_predict(exported["model"], inference_precision="bfloat16")
    full = _eval_predict(exported["model"])
    agree = []
    for image in _images(seed=5):
        got = signature(images=tf.constant(image[None]))["semantic_predictions"].numpy()
        np.testing.assert_array_equal(got, half(image[None].astype(np.float32)).numpy())
        agree.append((got == full(image[None].astype(np.float32)).numpy()).mean())
    # A random tiny model has small logit margins; trained ones agree on >= 99.5 %
    # (tests/test_export_tflite.py, docs/performance.md).
    assert np.mean(agree) > 0.8, agree


def test_batch_of_differently_sized_jpeg_and_png(exported):
    loaded = tf.saved_model.load(exported["single"])
    predict = _eval_predict(exported["model"])
    images = _images(seed=2)
    encoded = [encode_jpeg(images[0]), encode_png(images[1])]
    outputs = loaded.signatures["serving_default"](image_bytes=tf.constant(encoded))
    labels = outputs["semantic_predictions"].numpy()
    assert labels.shape == (2, 50, 61)
    for index, data in enumerate(encoded):
        decoded = schema.decode_image(tf.constant(data)).numpy()  # the graph's decoder
        height, width = decoded.shape[:2]
        expected = predict(decoded[None].astype(np.float32)).numpy()[0]
        np.testing.assert_array_equal(labels[index, :height, :width], expected)
        assert (labels[index, height:] == -1).all() and (labels[index, :, width:] == -1).all()
        probabilities = outputs["semantic_probabilities"].numpy()[index]
        np.testing.assert_allclose(probabilities[:height, :width].sum(-1), 1.0, atol=1e-5)
        assert (probabilities[height:] == 0).all()
    assert outputs["image_height"].numpy().tolist() == [33, 50]
    assert outputs["image_width"].numpy().tolist() == [45, 61]


def test_malformed_image_bytes_are_invalid_argument(exported):
    loaded = tf.saved_model.load(exported["single"])
    signature = loaded.signatures["serving_default"]
    good = encode_png(_images()[0])
    for bad in [b"not an image", b"", good[:40]]:
        with pytest.raises(tf.errors.InvalidArgumentError):
            signature(image_bytes=tf.constant([good, bad]))
    # The model still serves afterwards.
    assert signature(image_bytes=tf.constant([good]))["semantic_predictions"].shape == (1, 33, 45)


# --- REST and gRPC requests -------------------------------------------------------------------

def serve_rest_json(body: str, signature) -> str:
    """What TF Serving does with a REST predict request in row format ("instances"):

    JSON objects of the single key "b64" are base64-decoded into binary strings; with one
    input, each instance is that input's value for one example (else an object of named
    inputs); instances are stacked into the batch. The response lists one row per example:
    the output's value, or an object of named outputs when there are several.
    """
    request = json.loads(body)
    inputs = signature.structured_input_signature[1]

    def value(item):
        if isinstance(item, dict) and set(item) == {"b64"}:
            return base64.b64decode(item["b64"])
        if isinstance(item, list):
            return [value(v) for v in item]
        return item

    rows = request["instances"]
    if len(inputs) == 1 and not (isinstance(rows[0], dict) and set(rows[0]) != {"b64"}):
        columns = {next(iter(inputs)): [value(row) for row in rows]}
    else:
        columns = {name: [value(row[name]) for row in rows] for name in inputs}
    feed = {name: tf.constant(column, dtype=inputs[name].dtype) for name, column in columns.items()}
    outputs = {name: tensor.numpy() for name, tensor in signature(**feed).items()}
    if len(outputs) == 1:
        predictions = next(iter(outputs.values())).tolist()
    else:
        predictions = [{name: array[i].tolist() for name, array in outputs.items()}
                       for i in range(len(rows))]
    return json.dumps({"predictions": predictions})


def test_rest_json_request_reaches_the_signature(exported):
    client = load_client()
    loaded = tf.saved_model.load(exported["multi"])
    predict = _eval_predict(exported["model"], eval_scales=SCALES, add_flipped_images=True)
    images = _images(seed=4)
    request = client.build_rest_request([encode_png(image) for image in images])
    assert request["signature_name"] == "serving_default"
    assert set(request["instances"][0]) == {"b64"}
    body = json.dumps(request)
    response = json.loads(serve_rest_json(body, loaded.signatures[request["signature_name"]]))
    labels = client.parse_rest_response(response)
    for image, got in zip(images, labels):
        np.testing.assert_array_equal(got, predict(image[None].astype(np.float32)).numpy()[0])
    assert client.rest_url("localhost:8501") == "http://localhost:8501/v1/models/deeplab:predict"
    assert client.rest_url("http://h:1/", "m", 3) == "http://h:1/v1/models/m/versions/3:predict"
    with pytest.raises(RuntimeError, match="TF Serving error"):
        client.parse_rest_response({"error": "Unknown image file format"})


def test_client_script_against_a_rest_stub(exported, tmp_path):
    """client.py end to end over HTTP: a stub server answers as TF Serving would (above)."""
    import http.server
    import threading

    from PIL import Image

    client = load_client()
    signature = tf.saved_model.load(exported["single"]).signatures["serving_default"]
    seen = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            seen.append(self.path)
            body = self.rfile.read(int(self.headers["Content-Length"])).decode()
            try:
                reply, status = serve_rest_json(body, signature), 200
            except tf.errors.InvalidArgumentError as error:
                reply, status = json.dumps({"error": error.message.splitlines()[-1]}), 400
            data = reply.encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        host = f"127.0.0.1:{server.server_port}"
        image = _images(seed=6)[1]
        (tmp_path / "in.png").write_bytes(encode_png(image))
        output = tmp_path / "out.png"
        assert client.main([f"--image={tmp_path / 'in.png'}", f"--output={output}",
                            f"--rest={host}", "--palette=pascal"]) == 0
        assert seen == ["/v1/models/deeplab:predict"]
        expected = _eval_predict(exported["model"])(image[None].astype(np.float32)).numpy()[0]
        with Image.open(output) as written:
            np.testing.assert_array_equal(np.asarray(written),
                                          client.colorize(expected, client.palette("pascal")))
        with pytest.raises(RuntimeError, match="HTTP 400"):
            client.predict_rest(host, [b"not an image"])
    finally:
        server.shutdown()
        server.server_close()


def test_grpc_tensor_protos_reach_the_signature(exported, monkeypatch):
    client = load_client()
    loaded = tf.saved_model.load(exported["single"])
    images = _images(seed=5)
    proto = client.image_tensor_proto([encode_png(image) for image in images])
    assert proto.dtype == tf.string.as_datatype_enum
    outputs = loaded.signatures["serving_default"](image_bytes=tf.constant(tf.make_ndarray(proto)))
    response = {name: tf.make_tensor_proto(tensor) for name, tensor in outputs.items()}
    labels = client.parse_outputs(response)
    predict = _eval_predict(exported["model"])
    for image, got in zip(images, labels):
        np.testing.assert_array_equal(got, predict(image[None].astype(np.float32)).numpy()[0])
    # Without tensorflow-serving-api the gRPC path says what to install.
    monkeypatch.setitem(sys.modules, "tensorflow_serving", None)
    with pytest.raises(ImportError, match="pip install tensorflow-serving-api"):
        client.build_grpc_request([b"x"])


def test_client_colours_labels():
    client = load_client()
    colors = client.palette("pascal")
    labels = np.array([[0, 1], [2, -1]], np.int32)
    rgb = client.colorize(labels, colors)
    assert rgb.dtype == np.uint8 and rgb.shape == (2, 2, 3)
    np.testing.assert_array_equal(rgb[0, 1], colors[1])
    np.testing.assert_array_equal(rgb[1, 1], [0, 0, 0])  # padding (-1) is black


# --- destination and versions -----------------------------------------------------------------

def test_next_version_and_no_overwrite(tmp_path):
    model_dir = tmp_path / "deeplab"
    assert saved_model.next_version(str(model_dir)) == 1
    for name in ["1", "7", "notes", ".tmp-export-x"]:
        (model_dir / name).mkdir(parents=True)
    (model_dir / "8").write_text("a file, not a version")
    assert saved_model.next_version(str(model_dir)) == 8
    staging = tmp_path / "staging"
    staging.mkdir()
    (staging / "saved_model.pb").write_text("new")
    # "8" is taken by a file: the next free number is used.
    assert saved_model._publish(str(staging), str(model_dir), None) == str(model_dir / "9")
    (model_dir / "7" / "saved_model.pb").write_text("old")
    staging.mkdir()
    with pytest.raises(ExportError, match="already exists"):
        saved_model._publish(str(staging), str(model_dir), 7)
    assert (model_dir / "7" / "saved_model.pb").read_text() == "old"


def test_existing_version_is_refused_before_export(exported):
    config = ExportConfig(export_version=1)
    with pytest.raises(ExportError, match="Version 1 already exists"):
        export_saved_model(exported["model"], exported["config"], config, exported["export_dir"])


def test_unwritable_export_dir(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    with pytest.raises(ExportError, match="not writable"):
        saved_model.check_writable(str(blocker / "exports"))
    if os.geteuid() != 0:  # root may write anywhere
        readonly = tmp_path / "readonly"
        readonly.mkdir()
        readonly.chmod(0o500)
        try:
            with pytest.raises(ExportError, match="not writable"):
                saved_model.check_writable(str(readonly / "deeplab"))
            with pytest.raises(ExportError, match="not writable"):
                saved_model.check_writable(str(readonly))
        finally:
            readonly.chmod(0o700)
