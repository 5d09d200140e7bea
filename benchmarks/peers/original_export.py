"""The original export_model.py's ``frozen_inference_graph.pb``, built TF1 style: the
inference peer of ``deeplab-bench --compare_frozen_graph``.

Where the original's own frozen graph is not at hand, ``original_frozen_graph`` writes the
graph its export_model.py writes (single scale, no resize to range), from this project's
weights, so the two formulations can be timed side by side on the same machine and their
labels compared:

1. ``ImageTensor``: uint8 [1, H, W, 3] placeholder; squeezed, cast to float32 and padded at
   the bottom/right with the backbone's mean pixel to at least ``crop_size``, whose static
   shape the graph then takes (input_preprocess with ``is_training=False``);
2. ``original_graph.build_network`` with ``is_training=False``: reference variables and
   ``FusedBatchNormV3`` on the moving statistics (nothing folded), logits resized to the
   logits size (align corners);
3. ``predict_labels``: logits resized (align corners) to the padded size, argmax, cast to
   float32; sliced to the input size, resized back nearest-neighbour (align corners), cast to
   int32, ``SemanticPredictions``;
4. the variables given the Keras model's values by name (``original_variable_map``) and
   frozen to constants (``convert_variables_to_constants``, as freeze_graph).

Example:

>>> model = randomize_weights(build_model(config))
>>> graph_def = original_frozen_graph(model, config, (513, 513))
"""

from __future__ import annotations

from typing import Tuple

import tensorflow as tf

from deeplab_tf.modeling.backbones import mean_pixel
from deeplab_tf.bench.contenders import ORIGINAL_INPUT, ORIGINAL_OUTPUT
from peers.original_graph import build_network
from deeplab_tf.config import ModelConfig
from deeplab_tf.modeling.layers.original_layer import original_variable_map

v1 = tf.compat.v1


def _padded_input(image, crop_size: Tuple[int, int], pad_value):
    """input_preprocess for evaluation: float32 [crop_h, crop_w, 3] (static shape), the image
    padded with ``pad_value`` at the bottom/right up to ``crop_size``."""
    shape = tf.shape(image)
    target_h = tf.maximum(shape[0], crop_size[0])
    target_w = tf.maximum(shape[1], crop_size[1])
    pad = tf.reshape(tf.constant(pad_value, tf.float32), [1, 1, 3])
    padded = tf.pad(image - pad, [[0, target_h - shape[0]], [0, target_w - shape[1]], [0, 0]])
    padded = padded + pad
    padded.set_shape([crop_size[0], crop_size[1], 3])
    return padded


def build_inference_graph(model_config: ModelConfig, crop_size: Tuple[int, int]):
    """(graph, model variables): ImageTensor -> SemanticPredictions, variables uninitialised."""
    crop = tuple(int(v) for v in crop_size)
    graph = tf.Graph()
    with graph.as_default():
        images = v1.placeholder(tf.uint8, [1, None, None, 3], name=ORIGINAL_INPUT)
        size = tf.shape(images)[1:3]
        image = tf.cast(tf.squeeze(images, axis=0), tf.float32)
        padded = _padded_input(image, crop, mean_pixel(model_config.model_variant))[tf.newaxis]
        logits, variables = build_network(padded, model_config, crop[0], crop[1])
        logits = v1.image.resize_bilinear(logits, tf.shape(padded)[1:3], align_corners=True)
        labels = tf.cast(tf.argmax(logits, 3), tf.float32)
        labels = tf.slice(labels, [0, 0, 0], [1, size[0], size[1]])
        labels = v1.image.resize_nearest_neighbor(labels[..., tf.newaxis], size,
                                                  align_corners=True)
        tf.identity(tf.cast(tf.squeeze(labels, 3), tf.int32), name=ORIGINAL_OUTPUT)
    return graph, variables


def original_frozen_graph(model, model_config: ModelConfig, crop_size: Tuple[int, int]):
    """The frozen GraphDef of ``build_inference_graph`` holding ``model``'s weights.

    Raises:
        ValueError: the model's original variable names differ from the graph's (another
            architecture than ``model_config`` builds).
    """
    graph, variables = build_inference_graph(model_config, crop_size)
    source = {name: var.numpy() for name, var in original_variable_map(model).items()}
    names = {var.op.name for var in variables}
    if names != set(source):
        raise ValueError(f"The model's variables do not match the original graph's: "
                         f"{len(names - set(source))} only in the graph, "
                         f"{len(set(source) - names)} only in the model")
    with graph.as_default(), v1.Session(graph=graph) as session:
        feeds, assigns = {}, []
        for var in variables:
            value = v1.placeholder(tf.float32, var.shape)
            feeds[value] = source[var.op.name]
            assigns.append(v1.assign(var, value))
        session.run(assigns, feeds)  # one run: a run per variable costs ~40 ms each
        return v1.graph_util.convert_variables_to_constants(
            session, graph.as_graph_def(add_shapes=True), [ORIGINAL_OUTPUT])
