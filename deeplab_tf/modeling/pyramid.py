"""The image pyramid: the original's multi-scale feature extraction (``--image_pyramid``).

As the original's ``model.multi_scale_logits``, for images [B, H, W, 3] and the scales
``s`` of ``ModelConfig.image_pyramid``, in order::

    images -> resized to scale_dimension(H, s) x scale_dimension(W, s)  (align corners; s != 1)
           -> the single-scale network (the same layers, so the same weights, at every scale)
           -> logits resized to scale_dimension(H, f) x scale_dimension(W, f),
              f = max(1, max(s)) / logits stride       ("logits_%.2f" % s)
    merged_logits = element-wise max ("max") or mean ("avg") of those  ("merged_logits")

(the logits stride is the smallest decoder output stride, else the output stride). With one
scale there is no merge: ``merged_logits`` is that scale's resized logits. An explicit
``image_pooling_crop_size`` is scaled too (``scale_dimension(crop, s)``), as the original
does, so a scale whose pooling kernel differs runs a twin of the network that shares every
layer and passes its own kernel to ``ImagePooling``.

Where each output goes (the model contract holds: the model's output is ``merged_logits``):

* ``DeepLab``'s output, hence evaluation, visualisation and every export, is ``merged_logits``;
* training (deeplab-train's loop and ``DeepLab.fit``) sums the loss of every entry,
  ``logits_<s>`` and ``merged_logits``, as the original's
  ``add_softmax_cross_entropy_loss_for_each_scale`` (``DeepLab.logits_by_scale``);
* multi-scale inference (eval scales other than ``(1.0,)``) runs the single-scale network at
  each eval scale, as the original's ``predict_labels_multi_scale``, which ignores the
  pyramid (``single_scale_network``).

In training each scale runs batch norm on its own batch statistics and updates the moving
averages once per scale, as the original.
"""

from __future__ import annotations

from typing import Callable, Dict

import keras

from deeplab_tf.config import ModelConfig
from deeplab_tf.modeling.heads.aspp import ImagePooling, image_pooling_size
from deeplab_tf.modeling.layers.merge_logits import MergeLogits
from deeplab_tf.modeling.layers.scaled_resize import ScaledResize

MERGED_LOGITS = "merged_logits"
SINGLE_SCALE_NETWORK = "single_scale_network"


def scale_key(scale: float) -> str:
    """The original's name of one scale's logits: ``"logits_%.2f" % scale``."""
    return f"logits_{scale:.2f}"


def logits_factor(config: ModelConfig) -> float:
    """Size factor of the common logits grid: ``max(1, max scale) / logits stride``."""
    stride = min(config.decoder_output_stride) if config.uses_decoder else config.output_stride
    return max(1.0, max(config.image_pyramid)) / stride


def pyramid_logits(images, config: ModelConfig,
                   network_for_scale: Callable[[float], keras.Model]) -> Dict[str, object]:
    """The pyramid's logits, ``{"logits_<s>": ..., "merged_logits": ...}`` (KerasTensors).

    Args:
        images: KerasTensor [B, H, W, 3], plain pixels.
        config: ModelConfig with ``image_pyramid``.
        network_for_scale: callable(scale) -> the single-scale network to run at ``scale``.
    """
    factor = logits_factor(config)
    outputs = {}
    # float32 throughout, also under a mixed-precision policy (as the logits layer).
    for scale in config.image_pyramid:
        scaled = images
        if scale != 1.0:
            scaled = ScaledResize(scale, name=f"images_{scale:.2f}", dtype="float32")(
                [images, images])
        logits = network_for_scale(scale)(scaled)
        outputs[scale_key(scale)] = ScaledResize(factor, name=scale_key(scale),
                                                 dtype="float32")([logits, images])
    if len(outputs) == 1:
        return {MERGED_LOGITS: next(iter(outputs.values()))}
    outputs[MERGED_LOGITS] = MergeLogits(config.merge_method, name=MERGED_LOGITS,
                                         dtype="float32")(list(outputs.values()))
    return outputs


def with_scaled_image_pooling(network: keras.Model, config: ModelConfig,
                              scale: float) -> keras.Model:
    """A twin of ``network`` (every layer shared) whose ``ImagePooling`` uses the kernel of
    ``image_pooling_crop_size`` scaled by ``scale``; ``network`` itself when that is its own."""
    pool_size = image_pooling_size(config, scale)
    if pool_size == image_pooling_size(config):
        return network

    def call(layer, *args, **kwargs):
        if isinstance(layer, ImagePooling):
            kwargs["pool_size"] = pool_size
        return layer(*args, **kwargs)

    twin = keras.models.clone_model(network, clone_function=lambda layer: layer,
                                    call_function=call)
    return keras.Model(twin.input, twin.output, name=f"{network.name}_{scale:.2f}")


def single_scale_network(model):
    """The single-scale network inside an image-pyramid ``model``; ``model`` itself otherwise
    (or when every pyramid scale has its own pooling kernel, so the network is not part of
    the model)."""
    if isinstance(model, keras.Model):
        for layer in model.layers:
            if layer.name == SINGLE_SCALE_NETWORK:
                return layer
    return model
