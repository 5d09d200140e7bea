"""``InferenceSpec``: how one image becomes labels, built once from the configs.

Every inference consumer (deeplab-eval, deeplab-vis, the exports, the Keras model's
``predict_labels``) describes its run with one spec; ``deeplab_tf.inference.predict`` follows
it.
"""

from __future__ import annotations

import dataclasses
from typing import Optional, Tuple

from deeplab_tf.config import EvalConfig, ExportConfig, ModelConfig
from deeplab_tf.errors import ConfigError
from deeplab_tf.modeling.backbones import mean_pixel
from deeplab_tf.runtime.hardware import resolve_inference_precision

PRECISIONS = ("float32", "bfloat16")


def _optional_pair(value, name) -> Optional[Tuple[int, int]]:
    if value is None:
        return None
    value = (value, value) if isinstance(value, int) else tuple(int(v) for v in value)
    if len(value) != 2 or min(value) < 1:
        raise ConfigError(f"{name} must be two positive integers. Received: {name}={value}")
    return value


def _padded_at_least(crop_size, model_config: ModelConfig):
    """The size images are padded up to: ``crop_size``, and at least the model's
    ``image_pooling_crop_size`` (its pooling window must fit the features: the original
    could not run smaller inputs at all)."""
    pooling = model_config.image_pooling_crop_size
    if pooling is None:
        return crop_size
    if crop_size is None:
        return tuple(pooling)
    crop = _optional_pair(crop_size, "crop_size")
    return tuple(max(c, p) for c, p in zip(crop, pooling))


@dataclasses.dataclass(frozen=True)
class InferenceSpec:
    """How one image becomes labels; built once from the configs.

    Attributes:
        output_stride: int. The model's encoder stride (padding to ``k * output_stride + 1``).
        pad_value: 3 floats. The backbone's mean pixel (``modeling.backbones.mean_pixel``), never a default.
        scales: tuple of float. Input scales averaged (``--eval_scales``).
        add_flipped_images: bool. Also average left-right flipped inputs.
        crop_size: (h, w) or None. Smaller images are padded up to it (``--eval_crop_size``,
            and at least the model's ``image_pooling_crop_size``); larger ones are predicted
            whole.
        sliding_window_size: (h, w) or None. Predict with overlapping windows of this size.
        sliding_window_overlap: float in [0, 1). Overlap of neighbouring windows.
        min_resize_value, max_resize_value, resize_factor: resize to range before inference
            (the ADE20K recipe); predictions come back at the input size.
        fold_batch_norm: bool. ``prepare_model`` folds batch norm (fast; default).
        precision: str. ``"float32"`` or ``"bfloat16"``: what ``prepare_model``'s copy
            computes in (resolved: ``from_configs`` turns the configs' ``"auto"`` into one
            of them).
        precision_reason: str. Why ``precision`` (for logs; not compared).
        prediction_with_upsampled_logits: bool. A single pass takes the argmax of the
            upsampled logits (true), or at logits resolution, resized nearest-neighbour
            (``ModelConfig.prediction_with_upsampled_logits``; multi-scale, flipped and
            sliding-window predictions always upsample, as the original's).
        image_pyramid: tuple of float. The model's own pyramid scales
            (``ModelConfig.image_pyramid``): counted in ``passes``, nothing else.
    """

    output_stride: int
    pad_value: Tuple[float, float, float]
    scales: Tuple[float, ...] = (1.0,)
    add_flipped_images: bool = False
    crop_size: Optional[Tuple[int, int]] = None
    sliding_window_size: Optional[Tuple[int, int]] = None
    sliding_window_overlap: float = 1.0 / 3.0
    min_resize_value: Optional[int] = None
    max_resize_value: Optional[int] = None
    resize_factor: Optional[int] = None
    fold_batch_norm: bool = True
    precision: str = "float32"
    precision_reason: str = dataclasses.field(default="", compare=False)
    prediction_with_upsampled_logits: bool = True
    image_pyramid: Tuple[float, ...] = ()

    def __post_init__(self):
        set_ = lambda k, v: object.__setattr__(self, k, v)  # noqa: E731 (frozen dataclass)
        if int(self.output_stride) < 1:
            raise ConfigError(f"output_stride must be >= 1. Received: {self.output_stride}")
        set_("output_stride", int(self.output_stride))
        pad = tuple(float(v) for v in self.pad_value)
        if len(pad) != 3:
            raise ConfigError(f"pad_value must be 3 numbers (the mean pixel). Received: {pad}")
        set_("pad_value", pad)
        scales = tuple(float(s) for s in self.scales)
        if not scales or any(not s > 0 for s in scales):
            raise ConfigError(f"scales must be positive numbers. Received: scales={list(scales)}")
        set_("scales", scales)
        set_("image_pyramid", tuple(float(s) for s in self.image_pyramid or ()))
        set_("crop_size", _optional_pair(self.crop_size, "crop_size"))
        set_("sliding_window_size", _optional_pair(self.sliding_window_size,
                                                   "sliding_window_size"))
        if not 0.0 <= self.sliding_window_overlap < 1.0:
            raise ConfigError("sliding_window_overlap must be in [0, 1). Received: "
                             f"{self.sliding_window_overlap}")
        if self.precision not in PRECISIONS:
            raise ConfigError(f"precision must be one of {', '.join(PRECISIONS)} (resolve "
                              f"'auto' with from_configs). Received: precision={self.precision!r}")

    @property
    def resizes(self) -> bool:
        """True when images are resized to range before inference."""
        return bool(self.min_resize_value or self.max_resize_value)

    @property
    def passes(self) -> float:
        """Model passes per image, each counted at ``max(1, scale**2)`` times the padded size
        (its input and its upsampled outputs): the sum over ``scales``, doubled with flips,
        times the same sum over the model's ``image_pyramid``."""
        def total(scales):
            return sum(max(1.0, s * s) for s in scales) if scales else 1.0

        return (total(self.scales) * (2 if self.add_flipped_images else 1)
                * total(self.image_pyramid))

    def pixels(self, height, width):
        """float64 tensor: what predicting an ``height`` x ``width`` image allocates, in pixels:
        the padded size (after the resize to range: ``k * output_stride + 1`` and at least
        ``crop_size``) times ``passes``, and at least the image itself. The measure that
        ``max_image_pixels`` limits (serving, eval, vis); computed in float64, so sizes read
        from a forged header cannot overflow it."""
        import tensorflow as tf

        from deeplab_tf.data.preprocess import padded_pixels

        padded = padded_pixels(height, width, output_stride=self.output_stride,
                               crop_size=self.crop_size, min_resize_value=self.min_resize_value,
                               max_resize_value=self.max_resize_value,
                               resize_factor=self.resize_factor)
        return tf.maximum(tf.cast(height, tf.float64) * tf.cast(width, tf.float64),
                          padded * self.passes)

    @property
    def single_pass(self) -> bool:
        """One forward pass per image (single scale 1.0, no flip, no windows)."""
        return (self.scales == (1.0,) and not self.add_flipped_images
                and self.sliding_window_size is None)

    @classmethod
    def from_configs(cls, model_config: ModelConfig, eval_config: EvalConfig) -> "InferenceSpec":
        """deeplab-eval's / deeplab-vis' spec: the model's stride and mean pixel, the rest
        from ``eval_config``."""
        return cls(output_stride=model_config.output_stride,
                   pad_value=mean_pixel(model_config.model_variant),
                   scales=eval_config.eval_scales,
                   add_flipped_images=eval_config.add_flipped_images,
                   crop_size=_padded_at_least(eval_config.eval_crop_size, model_config),
                   sliding_window_size=eval_config.sliding_window_size,
                   sliding_window_overlap=eval_config.sliding_window_overlap,
                   min_resize_value=eval_config.min_resize_value,
                   max_resize_value=eval_config.max_resize_value,
                   resize_factor=eval_config.resize_factor,
                   fold_batch_norm=eval_config.fold_batch_norm,
                   prediction_with_upsampled_logits=model_config.prediction_with_upsampled_logits,
                   image_pyramid=model_config.image_pyramid,
                   **_precision(eval_config.inference_precision))

    @classmethod
    def from_export_config(cls, model_config: ModelConfig,
                           export_config: ExportConfig) -> "InferenceSpec":
        """An export's spec. Images are padded up to ``eval_crop_size`` (SavedModel, as
        deeplab-eval) or, for ``format="frozen_graph"``, to ``crop_size`` (the original
        export_model.py's ``--crop_size``). The precision applies to SavedModels; the other
        formats hold the float32 graph."""
        crop = (export_config.crop_size if export_config.format == "frozen_graph"
                else export_config.eval_crop_size)
        precision = (_precision(export_config.inference_precision)
                     if export_config.format == "saved_model" else
                     {"precision": "float32", "precision_reason": f"{export_config.format} "
                      "exports hold the float32 graph"})
        return cls(output_stride=model_config.output_stride,
                   pad_value=mean_pixel(model_config.model_variant),
                   scales=export_config.inference_scales,
                   add_flipped_images=export_config.add_flipped_images,
                   crop_size=_padded_at_least(crop, model_config),
                   min_resize_value=export_config.min_resize_value,
                   max_resize_value=export_config.max_resize_value,
                   resize_factor=export_config.resize_factor,
                   fold_batch_norm=export_config.fold_batch_norm,
                   prediction_with_upsampled_logits=model_config.prediction_with_upsampled_logits,
                   image_pyramid=model_config.image_pyramid,
                   **precision)


def _precision(name: str) -> dict:
    """``precision`` and ``precision_reason`` of a config's ``inference_precision``: the one
    place ``"auto"`` is resolved for inference."""
    precision, reason = resolve_inference_precision(name)
    return {"precision": precision, "precision_reason": reason}
