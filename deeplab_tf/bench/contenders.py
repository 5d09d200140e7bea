"""The inference contenders of ``bench.compare``: one callable each, uint8 image -> labels.

Every contender computes ``deeplab_tf.inference.predict`` (single scale) on the same weights
and the same image; they differ only in formulation, precision and runtime:

* ``tf_function``: ``tf.function`` of ``predict`` on the Keras model as trained (what the
  SavedModel and deeplab-eval ran before batch-norm folding became the default);
* ``tf_folded``: the same on ``prepare_model`` (batch norm folded), its graph frozen
  (``inference.predict_function``): deeplab-eval's and deeplab-vis' path in float32;
* ``tf_folded_bfloat16``: the same in bfloat16 (``--inference_precision=bfloat16``; what
  ``auto`` runs where bfloat16 is native);
* ``tf_frozen``: the frozen GraphDef (``export_frozen_graph``'s graph) run by TensorFlow;
* ``saved_model`` / ``saved_model_bfloat16``: the SavedModel export
  (``--inference_precision=float32`` / ``bfloat16``), loaded, its ``predict_images``
  signature called;
* ``openvino``: that graph converted by ``export.openvino`` (OpenVINO CPU runtime, float32
  inference precision), input shape fixed to the benchmark's size; ``openvino_bfloat16``:
  the same compiled at bfloat16 (OpenVINO's own default on CPUs with native bfloat16);
* ``onnxruntime``: that graph converted by ``export.onnx`` (tf2onnx + ONNX Runtime), input
  shape fixed likewise;
* ``tflite``: the float32 TFLite export (LiteRT, XNNPACK);
* ``tflite_int8``, ``openvino_tflite_int8``, ``openvino_int8``: post-training int8
  (``bench.int8``: the int8 TFLite export in LiteRT and in OpenVINO, and OpenVINO's own
  NNCF quantization), calibrated on ``Setup.calibration_images`` images like the timed one;
* ``original``: a frozen_inference_graph.pb of the original (``--compare_frozen_graph``):
  ImageTensor:0 uint8 [1, H, W, 3] -> SemanticPredictions:0, its own weights.

Each is built in its own process (``bench.worker``) from a ``Setup``.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Callable, Optional, Sequence, Tuple

import numpy as np

from deeplab_tf.bench.timing import precision_of
from deeplab_tf.errors import ConfigError

CONTENDERS = ("tf_function", "tf_folded", "tf_folded_bfloat16", "tf_frozen", "saved_model",
              "saved_model_bfloat16", "openvino", "openvino_bfloat16", "openvino_int8",
              "openvino_tflite_int8", "onnxruntime", "tflite", "tflite_int8", "original")
# ``--contenders=`` (empty): these, where their runtime is installed.
DEFAULT_CONTENDERS = ("tf_function", "tf_folded", "tf_frozen", "saved_model", "openvino",
                      "onnxruntime", "tflite")
REFERENCE = "tf_function"  # the Keras model as trained: the agreement reference
# The packages each non-TensorFlow contender needs (``pip install 'deeplab_tf[openvino]'`` /
# ``[onnx]``; LiteRT comes with the base install; NNCF: ``pip install nncf``).
RUNTIME_PACKAGES = {"openvino": ("openvino",), "openvino_bfloat16": ("openvino",),
                    "openvino_int8": ("openvino", "nncf"),
                    "openvino_tflite_int8": ("openvino", "ai_edge_litert"),
                    "onnxruntime": ("tf2onnx", "onnxruntime"), "tflite": ("ai_edge_litert",),
                    "tflite_int8": ("ai_edge_litert",)}
ORIGINAL_INPUT = "ImageTensor"
ORIGINAL_OUTPUT = "SemanticPredictions"


@dataclasses.dataclass(frozen=True)
class Setup:
    """What every contender process needs to build the same model on the same input.

    Attributes:
        model_config: dict (``ModelConfig.to_dict()``).
        height, width: int. Input size.
        seed: int. Weights (``model.randomize_weights``) and image seed.
        checkpoint_path: str or None. Load these weights instead of random ones.
        frozen_graph: str or None. The original's frozen_inference_graph.pb (``original``).
        threads: int or None. Threads of the OpenVINO / ONNX Runtime / LiteRT runtimes.
        scenes: bool. Time (and calibrate int8 on) the demo's scenes (``demo.scenes``:
            shapes on textured backgrounds, what the demo model was trained on) instead of
            smooth random blobs.
        calibration_images: int. Images that calibrate the int8 contenders.
    """

    model_config: dict
    height: int
    width: int
    seed: int = 0
    checkpoint_path: Optional[str] = None
    frozen_graph: Optional[str] = None
    threads: Optional[int] = None
    scenes: bool = False
    calibration_images: int = 8


def make_image(setup: Setup) -> np.ndarray:
    """The benchmark's uint8 image [1, H, W, 3], reproducible from ``setup.seed``: smooth
    blobs plus noise, or a demo scene (``setup.scenes``)."""
    rng = np.random.default_rng(setup.seed + 1)
    if setup.scenes:
        from deeplab_tf.demo.scenes import make_scene

        return np.asarray(make_scene(rng, (setup.height, setup.width))[0],
                          np.uint8)[np.newaxis]
    yy, xx = np.mgrid[0:setup.height, 0:setup.width] / max(setup.height, setup.width)
    base = np.stack([np.sin(6 * xx + c) + np.cos(5 * yy - c) for c in range(3)], -1)
    image = 127.5 + 60 * base + rng.normal(0, 20, base.shape)
    return np.clip(image, 0, 255).astype(np.uint8)[np.newaxis]


def _model_and_spec(setup: Setup):
    from deeplab_tf.bench.model import randomize_weights
    from deeplab_tf.config import ModelConfig
    from deeplab_tf.inference import InferenceSpec
    from deeplab_tf.model import build_model
    from deeplab_tf.modeling.backbones import mean_pixel

    config = ModelConfig.from_dict(setup.model_config)
    model = build_model(config)
    if setup.checkpoint_path:
        from deeplab_tf.checkpoints.strict import load_for_inference

        load_for_inference(model, setup.checkpoint_path)
    else:
        randomize_weights(model, setup.seed)
    spec = InferenceSpec(output_stride=config.output_stride,
                         pad_value=mean_pixel(config.model_variant),
                         prediction_with_upsampled_logits=config.prediction_with_upsampled_logits)
    return model, config, spec


def _tf_predict(model, spec):
    import tensorflow as tf

    from deeplab_tf import inference

    serve = inference.predict_function(model, spec, input_dtype=tf.uint8)
    return lambda image: serve(tf.constant(image)).numpy()


def _saved_model(setup: Setup, precision):
    """The SavedModel export's ``predict_images`` (written to a temporary folder, loaded as
    a server loads it: the Keras model and the export's traces freed first)."""
    import gc
    import tempfile

    import tensorflow as tf

    from deeplab_tf.config import ExportConfig
    from deeplab_tf.export.saved_model import export_saved_model

    with tempfile.TemporaryDirectory(prefix="bench-saved-model-") as folder:
        model, config, _ = _model_and_spec(setup)
        path = export_saved_model(model, config, ExportConfig(inference_precision=precision),
                                  folder)
        del model
        tf.keras.backend.clear_session()
        gc.collect()
        loaded = tf.saved_model.load(path)  # the weights are in its graph: the folder can go
    signature = loaded.signatures["predict_images"]
    return lambda image: signature(images=tf.constant(image))["semantic_predictions"].numpy()


def available_contenders() -> Tuple[str, ...]:
    """``DEFAULT_CONTENDERS`` whose runtime packages are installed here (TensorFlow's always).

    Only looks the packages up (nothing is imported): a package that is installed but cannot
    be used (e.g. a tf2onnx that does not import with this TensorFlow) gives a failed row
    with its reason in the comparison.
    """
    import importlib.util

    return tuple(name for name in DEFAULT_CONTENDERS
                 if all(importlib.util.find_spec(package) is not None
                        for package in RUNTIME_PACKAGES.get(name, ())))


def check_contenders(names: Sequence[str], frozen_graph: Optional[str]) -> Tuple[str, ...]:
    """``names`` validated (no duplicates); ValueError naming ``--contenders`` otherwise."""
    unknown = [name for name in names if name not in CONTENDERS]
    if unknown:
        raise ConfigError(f"--contenders: unknown contender(s) {', '.join(unknown)} (expected "
                         f"some of {', '.join(CONTENDERS)})")
    if "original" in names and not frozen_graph:
        raise ConfigError("--contenders=original needs --compare_frozen_graph=PATH (the "
                         "original's frozen_inference_graph.pb)")
    return tuple(dict.fromkeys(names))


def graph_function(graph_def, input_name: str = ORIGINAL_INPUT + ":0",
                   output_name: str = ORIGINAL_OUTPUT + ":0") -> Callable:
    """A callable uint8 [1, H, W, 3] -> labels of a frozen GraphDef, run by TensorFlow."""
    import tensorflow as tf

    def imported():
        tf.compat.v1.import_graph_def(graph_def, name="")

    wrapped = tf.compat.v1.wrap_function(imported, [])
    graph = wrapped.graph
    fn = wrapped.prune(graph.get_tensor_by_name(input_name),
                       graph.get_tensor_by_name(output_name))
    return lambda image: fn(tf.constant(image)).numpy()


def load_graph_def(path: str):
    """The GraphDef of a frozen .pb with the original's ImageTensor -> SemanticPredictions
    nodes; ValueError naming ``--compare_frozen_graph`` and the file when it is not one."""
    where = f"--compare_frozen_graph={path}"
    try:
        with open(path, "rb") as f:
            content = f.read()
    except OSError as error:
        raise ConfigError(f"{where}: cannot read the file ({error.strerror or error})") from None
    import tensorflow as tf

    try:
        graph_def = tf.compat.v1.GraphDef.FromString(content)
    except Exception as error:  # protobuf's DecodeError and friends
        raise ConfigError(f"{where}: not a frozen GraphDef (.pb): "
                         f"{' '.join(str(error).split()) or type(error).__name__}") from None
    nodes = {node.name for node in graph_def.node}
    missing = [name for name in (ORIGINAL_INPUT, ORIGINAL_OUTPUT) if name not in nodes]
    if missing:
        raise ConfigError(f"{where}: not a DeepLab frozen_inference_graph.pb (expected nodes "
                         f"{ORIGINAL_INPUT} -> {ORIGINAL_OUTPUT}; missing {', '.join(missing)}; "
                         f"{len(nodes)} nodes)")
    return graph_def


def build(name: str, setup: Setup) -> Callable[[np.ndarray], np.ndarray]:
    """The contender ``name`` as a callable uint8 [1, H, W, 3] -> int32 labels [1, H, W]."""
    if name not in CONTENDERS:
        raise ValueError(f"Unknown contender (expected one of {', '.join(CONTENDERS)}). "
                         f"Received: {name!r}")
    if name == "original":
        if not setup.frozen_graph:
            raise ConfigError("The 'original' contender needs --compare_frozen_graph=PATH")
        return graph_function(load_graph_def(setup.frozen_graph))
    if name in ("saved_model", "saved_model_bfloat16"):
        return _saved_model(setup, precision_of(name))
    model, config, spec = _model_and_spec(setup)
    if name == "tf_function":
        return _tf_predict(model, dataclasses.replace(spec, fold_batch_norm=False))
    from deeplab_tf.inference import prepare_model

    if name in ("tf_folded", "tf_folded_bfloat16"):
        spec = dataclasses.replace(spec, precision=precision_of(name))
        return _tf_predict(prepare_model(model, spec, config), spec)
    if name in ("tflite_int8", "openvino_tflite_int8", "openvino_int8"):
        from deeplab_tf.bench.int8 import BUILDERS
        from deeplab_tf.data.preprocess import padded_size

        size = (padded_size(setup.height, spec.output_stride),
                padded_size(setup.width, spec.output_stride))
        samples = [make_image(dataclasses.replace(setup, seed=setup.seed + 100 + index))
                   for index in range(setup.calibration_images)]
        return BUILDERS[name](model, config, spec, size, samples, setup.threads)
    if name == "tf_frozen":
        from deeplab_tf.export.openvino import frozen_inference_graph

        return graph_function(frozen_inference_graph(model, config, spec))
    if name in ("openvino", "openvino_bfloat16"):
        import openvino as ov

        from deeplab_tf.export.openvino import BF16_CONFIG, F32_CONFIG, convert

        properties = {"PERFORMANCE_HINT": "LATENCY",  # float32 as TensorFlow, or bfloat16
                      **(BF16_CONFIG if name == "openvino_bfloat16" else F32_CONFIG)}
        if setup.threads:
            properties["INFERENCE_NUM_THREADS"] = int(setup.threads)
        # A static input shape: OpenVINO's CPU plugin runs dynamic shapes much slower.
        converted = convert(model, config, spec, crop_size=(setup.height, setup.width))
        compiled = ov.Core().compile_model(converted, "CPU", properties)
        request = compiled.create_infer_request()
        return lambda image: request.infer({0: image})[compiled.outputs[0]]
    if name == "onnxruntime":
        from deeplab_tf.export.onnx import ONNXRuntimePredictor, convert_onnx

        runner = ONNXRuntimePredictor(
            convert_onnx(model, config, spec, crop_size=(setup.height, setup.width)),
            setup.threads)
        return lambda image: runner.predict(image)["labels"]
    # tflite: float32 export at the padded size; predict_image pads as the spec says.
    from deeplab_tf.config import ExportConfig
    from deeplab_tf.data.preprocess import padded_size
    from deeplab_tf.export.litert import LiteRTModel
    from deeplab_tf.export.tflite import convert_tflite

    size = (padded_size(setup.height, spec.output_stride),
            padded_size(setup.width, spec.output_stride))
    content = convert_tflite(prepare_model(model, spec, config),
                             ExportConfig(format="tflite", crop_size=size), model_config=config)
    runner = LiteRTModel(content, num_threads=setup.threads or os.cpu_count(), spec=spec)
    return lambda image: runner.predict_image(image[0])[np.newaxis]
