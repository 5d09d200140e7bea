"""The one inference path: ``prepare_model`` + ``predict`` (+ ``predict_function``).

deeplab-eval, deeplab-vis, the SavedModel signatures, the frozen graph, the TFLite helper and
the OpenVINO / ONNX exports all compute through ``predict``, so their predictions agree pixel
for pixel:

1. optional resize to range (``min_resize_value`` / ``max_resize_value`` / ``resize_factor``,
   align-corners bilinear, as the original's ``resize_to_range``);
2. padding at the bottom/right with the model's mean pixel to the next ``k * output_stride + 1``
   (``data.preprocess.padded_size``, the one padding rule) and to at least ``crop_size``;
3. the model: single scale, multi-scale + left-right flip (``multiscale``) or overlapping
   windows (``sliding_window``); logits upsampled to the padded size (align corners), or for
   a single pass with ``prediction_with_upsampled_logits=False`` the argmax taken at logits
   resolution and resized nearest-neighbour (``single_pass_outputs``);
4. the padding cropped off; when step 1 resized, labels resized back nearest-neighbour and
   probabilities bilinear (both align corners), as the original's export_model.py.

``prepare_model`` gives the formulation inference runs: by default (``fold_batch_norm=True``)
a copy of the model with batch norm folded into the convolutions and every weight a constant
(``modeling.layers.original_layer.fold_batch_norm``), which is faster; build it once after
the weights are loaded. The copy computes in ``spec.precision`` (float32, or bfloat16 with
float32 logits).
``predict_function`` compiles ``predict`` on it: one graph for any image size, and for a
folded model the graph frozen, its weights ``Const`` nodes as in the frozen graph export.

Example:

>>> spec = InferenceSpec.from_configs(model_config, EvalConfig(eval_scales=(0.75, 1.0)))
>>> fast = prepare_model(model, spec, model_config)
>>> outputs = predict(fast, images, spec)   # images uint8/float32 [B, H, W, 3]
>>> outputs["labels"].shape, outputs["probabilities"].shape
(TensorShape([1, 37, 53]), TensorShape([1, 37, 53, 3]))
>>> labels = predict_function(fast, spec)(images)   # the same labels, compiled
"""

from __future__ import annotations

from typing import Optional

import keras
import tensorflow as tf

from deeplab_tf.config import ModelConfig
from deeplab_tf.data.preprocess import padded_size, resize_to_range_size
from deeplab_tf.inference.multiscale import pad_images, predict_probabilities, upsample_logits
from deeplab_tf.inference.sliding_window import predict_probabilities_sliding_window
from deeplab_tf.inference.spec import InferenceSpec
from deeplab_tf.modeling.layers.original_layer import fold_batch_norm, iter_original_layers
from deeplab_tf.modeling.layers.quantize import is_quantized
from deeplab_tf.modeling.layers.resize import resize_bilinear, resize_nearest
from deeplab_tf.modeling.network import build_network
from deeplab_tf.modeling.precision import dtype_policy

LABELS = "labels"
PROBABILITIES = "probabilities"


def _is_folded(model) -> bool:
    return any(layer.is_folded for layer in iter_original_layers(model))


def prepare_model(model, spec: InferenceSpec, model_config: Optional[ModelConfig] = None):
    """The formulation inference runs: ``model`` itself, or a copy with batch norm folded into
    the convolutions and the weights constants (``spec.fold_batch_norm``), computing in
    ``spec.precision``.

    ``model`` is left unchanged (trainable). Call after loading the weights: the copy holds
    the values of that moment. In float32, predictions equal the unfolded model's up to float
    rounding. In bfloat16 the copy is built under Keras' ``mixed_bfloat16`` policy (folded
    weights stored in bfloat16); its logits layer computes in float32, so the logits,
    their upsampling, the softmax and the argmax stay float32.

    Args:
        model: a DeepLab Keras model (``build_model``) or any callable images -> logits (a
            plain callable is returned as is).
        spec: InferenceSpec.
        model_config: the ModelConfig ``model`` was built from (default: ``model.config``).

    Raises:
        ValueError: folding or bfloat16 asked for but no ModelConfig known.
    """
    if (not hasattr(model, "_flatten_layers") or _is_folded(model)
            or is_quantized(model)):  # its layers compute the folded form already
        return model
    if not spec.fold_batch_norm and spec.precision == "float32":
        return model
    config = model_config if model_config is not None else getattr(model, "config", None)
    if not isinstance(config, ModelConfig):
        raise ValueError("prepare_model needs the model's ModelConfig to fold batch norm or "
                         "compute in bfloat16 (pass model_config=...), or use "
                         "fold_batch_norm=False and precision='float32'")
    # The network alone (a plain functional model): the copy only runs inference.
    with dtype_policy(spec.precision):  # the logits layer computes in float32 in any case
        images, logits = build_network(config)
    suffix = ("_folded" if spec.fold_batch_norm else "") + (
        f"_{spec.precision}" if spec.precision != "float32" else "")
    copy = keras.Model(images, logits, name=f"{model.name}{suffix}")
    if len(copy.weights) != len(model.weights):
        raise ValueError(f"The model does not match its ModelConfig: {len(model.weights)} "
                         f"weights, the config builds {len(copy.weights)}")
    for source, target in zip(model.weights, copy.weights):
        target.assign(tf.cast(source, target.dtype))
    return fold_batch_norm(copy) if spec.fold_batch_norm else copy


def _same_size(size, height, width):
    return tf.logical_and(tf.equal(size[0], height), tf.equal(size[1], width))


def single_pass_outputs(logits, size, upsampled_logits: bool = True):
    """(labels int32 [B, H, W], probabilities float32 [B, H, W, C]) of one pass's logits at
    ``size`` = (H, W), as the original's ``predict_labels``.

    ``upsampled_logits`` (its ``prediction_with_upsampled_logits``): the argmax and softmax
    of the logits upsampled (bilinear, align corners). Otherwise the argmax at logits
    resolution resized nearest-neighbour (align corners) and the softmax resized bilinear.
    """
    if upsampled_logits:
        logits = upsample_logits(logits, size)
        return tf.argmax(logits, axis=3, output_type=tf.int32), tf.nn.softmax(logits)
    logits = tf.cast(logits, tf.float32)
    labels = tf.argmax(logits, axis=3, output_type=tf.int32)
    return resize_nearest(labels, size), resize_bilinear(tf.nn.softmax(logits), size)


def pad_inputs(images, spec: InferenceSpec):
    """Steps 1 and 2 of ``predict``: resize to range (if ``spec`` resizes), then pad at the
    bottom/right with the mean pixel to the next ``k * output_stride + 1`` and to at least
    ``crop_size``. Also the pre-processing of the fixed-size TFLite model (``export.tflite``).

    Args:
        images: uint8 or float32 [B, H, W, 3], plain RGB pixels in [0, 255].
        spec: InferenceSpec.

    Returns:
        (padded float32 [B, H', W', 3], sizes int32 [4]): ``sizes`` holds the input's height
        and width, then the height and width before padding (after the resize), for
        ``crop_outputs``.
    """
    images = tf.cast(tf.convert_to_tensor(images), tf.float32)
    shape = tf.shape(images)
    height, width = shape[1], shape[2]
    resized = images
    if spec.resizes:
        size = resize_to_range_size(height, width, spec.min_resize_value,
                                    spec.max_resize_value, spec.resize_factor)
        resized = tf.cond(_same_size(size, height, width), lambda: images,
                          lambda: resize_bilinear(images, size))
    inner = tf.shape(resized)
    inner_h, inner_w = inner[1], inner[2]
    min_h, min_w = spec.crop_size or (1, 1)
    padded = pad_images(resized, tf.maximum(padded_size(inner_h, spec.output_stride), min_h),
                        tf.maximum(padded_size(inner_w, spec.output_stride), min_w),
                        spec.pad_value)
    return padded, tf.stack([height, width, inner_h, inner_w])


def crop_outputs(outputs: dict, sizes, spec: InferenceSpec) -> dict:
    """Step 4 of ``predict``: the padding cropped off; when ``spec`` resized, labels resized
    back nearest-neighbour and probabilities bilinear (both align corners).

    Args:
        outputs: {"labels": int32 [B, H', W'], "probabilities": float32 [B, H', W', C]} (either
            may be left out) at the padded size.
        sizes: ``pad_inputs``' sizes.
        spec: InferenceSpec.

    Returns:
        The same keys at the input's size.
    """
    sizes = tf.convert_to_tensor(sizes)
    inner_h, inner_w = sizes[2], sizes[3]
    cropped = {key: tf.convert_to_tensor(value)[:, :inner_h, :inner_w]
               for key, value in outputs.items()}
    if not spec.resizes:
        return cropped
    back = sizes[:2]
    unchanged = _same_size(sizes[2:], sizes[0], sizes[1])
    resize_back = {LABELS: resize_nearest, PROBABILITIES: resize_bilinear}
    return {key: tf.cond(unchanged, lambda v=value: v,
                         lambda v=value, k=key: resize_back[k](v, back))
            for key, value in cropped.items()}


def predict(model, images, spec: InferenceSpec) -> dict:
    """Labels and probabilities of images of any size, computed as ``spec`` says.

    Args:
        model: the model to run (``prepare_model(model, spec)`` for the fast formulation).
        images: uint8 or float32 [B, H, W, 3], plain RGB pixels in [0, 255].
        spec: InferenceSpec.

    Returns:
        {"labels": int32 [B, H, W], "probabilities": float32 [B, H, W, C]}. For a single
        pass the labels are the original's ``predict_labels``' (``single_pass_outputs``);
        otherwise the argmax of the averaged probabilities.
    """
    padded, sizes = pad_inputs(images, spec)
    kwargs = dict(scales=spec.scales, add_flipped_images=spec.add_flipped_images)
    if spec.sliding_window_size is not None:
        probabilities = predict_probabilities_sliding_window(
            model, padded, window=spec.sliding_window_size,
            overlap=spec.sliding_window_overlap, pad_value=spec.pad_value, **kwargs)
        labels = tf.argmax(probabilities, axis=3, output_type=tf.int32)
    elif spec.single_pass:
        labels, probabilities = single_pass_outputs(model(padded, training=False),
                                                    tf.shape(padded)[1:3],
                                                    spec.prediction_with_upsampled_logits)
    else:
        probabilities = predict_probabilities(model, padded, **kwargs)
        labels = tf.argmax(probabilities, axis=3, output_type=tf.int32)
    return crop_outputs({LABELS: labels, PROBABILITIES: probabilities}, sizes, spec)


def compiled_predict(model, spec: InferenceSpec, outputs=(LABELS,), input_dtype=tf.float32):
    """``predict`` traced once: a concrete function images [B, H, W, 3] of ``input_dtype``
    (any B, H, W) -> the list of ``outputs`` (names among ``LABELS``, ``PROBABILITIES``).

    For a folded model (``prepare_model``'s default) the graph is frozen: the weights,
    captured constants, become ``Const`` nodes of the graph, as in ``export_frozen_graph``,
    so grappler folds and fuses with them and oneDNN keeps its reordered copy of each filter
    from call to call (faster than the unfrozen graph: docs/performance.md). The SavedModel
    signatures call this one function, so its weights are stored once. A model with
    variables (``fold_batch_norm=False``) reads them at every call.
    """
    names = tuple(outputs)
    unknown = [name for name in names if name not in (LABELS, PROBABILITIES)]
    if not names or unknown:
        raise ValueError(f"outputs must be some of {LABELS!r}, {PROBABILITIES!r}. Received: "
                         f"{list(names)}")

    def run(images):
        result = predict(model, images, spec)
        return [result[name] for name in names]  # a list: what a frozen function returns

    function = tf.function(run, input_signature=[
        tf.TensorSpec([None, None, None, 3], input_dtype)]).get_concrete_function()
    if hasattr(model, "_flatten_layers") and _is_folded(model):
        from tensorflow.python.framework.convert_to_constants import (
            convert_variables_to_constants_v2)

        function = convert_variables_to_constants_v2(function)
    return function


def predict_function(model, spec: InferenceSpec, outputs=(LABELS,), input_dtype=tf.float32):
    """``predict`` compiled (``compiled_predict``): callable images [B, H, W, 3] of
    ``input_dtype`` -> the one output named in ``outputs`` (a tensor), or a dict of them.
    deeplab-eval, deeplab-vis and deeplab-bench's ``tf_folded`` run this.
    """
    names = tuple(outputs)
    function = compiled_predict(model, spec, names, input_dtype)

    def call(images):
        values = function(tf.cast(tf.convert_to_tensor(images), input_dtype))
        return values[0] if len(names) == 1 else dict(zip(names, values))

    return call
