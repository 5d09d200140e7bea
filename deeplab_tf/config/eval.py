"""``EvalConfig``: how deeplab-eval and deeplab-vis run inference and what eval measures."""

from __future__ import annotations

import dataclasses
from typing import Optional, Tuple

from deeplab_tf.config.base import ConfigMixin, _as_int_tuple, _as_size
from deeplab_tf.errors import ConfigError

INFERENCE_BACKENDS = ("tf", "openvino")
# ``auto``: bfloat16 where the hardware computes it natively, else float32 (resolved once, by
# ``deeplab_tf.runtime.hardware.resolve_inference_precision``).
INFERENCE_PRECISIONS = ("auto", "float32", "bfloat16")


@dataclasses.dataclass(frozen=True)
class EvalConfig(ConfigMixin):
    """How deeplab-eval / deeplab-vis run inference and what eval measures.

    Args:
        eval_scales: tuple of float. Input scales averaged at test time (the original's
            flag; e.g. ``(0.5, 0.75, 1.0, 1.25, 1.5, 1.75)`` for multi-scale).
        add_flipped_images: bool. Also average left-right flipped inputs.
        eval_crop_size: (h, w) or None. Default 513x513, the original's. As in the original,
            images smaller than this are
            padded (bottom/right, mean pixel) to it before inference, which reproduces the
            original's numbers exactly; larger images are NOT cropped or rejected — they are
            evaluated whole. None: pad only to the next ``k * output_stride + 1``.
        trimap_widths: tuple of int. Also report mIoU within these band widths (pixels) around
            label boundaries (DeepLabv3+ section 4.4); empty for none.
        sliding_window_size: (h, w) or None. Predict with overlapping windows of this size
            (for images too large to run whole); None: whole images.
        sliding_window_overlap: float in [0, 1). Overlap of neighbouring windows.
        max_number_of_evaluations: int. Continuous evaluation stops after this many
            checkpoints; 0 or less: evaluate every new checkpoint until interrupted (the
            original's default).
        eval_interval_secs: int. Seconds between polls for a new checkpoint.
        min_resize_value: int or None. Resize to range before inference (as the data
            pipeline's flag): desired size of the smaller side.
        max_resize_value: int or None. Resize to range: largest allowed larger side.
        resize_factor: int or None. Resize to range: sides become a multiple of it plus one.
        fold_batch_norm: bool. Run inference with batch norm folded into the convolutions.
        inference_backend: str. ``"tf"`` or ``"openvino"``: the runtime that evaluates.
        inference_precision: str. ``"auto"`` (bfloat16 where the CPU or GPU computes it
            natively, else float32), ``"float32"`` (the model as trained, to float rounding)
            or ``"bfloat16"`` (faster with native bfloat16; labels equal float32's on over
            99.5 % of the pixels of trained models). With the OpenVINO backend, its
            inference precision hint.
    """

    eval_scales: Tuple[float, ...] = (1.0,)
    add_flipped_images: bool = False
    eval_crop_size: Optional[Tuple[int, int]] = (513, 513)
    trimap_widths: Tuple[int, ...] = ()
    sliding_window_size: Optional[Tuple[int, int]] = None
    sliding_window_overlap: float = 1.0 / 3.0
    max_number_of_evaluations: int = 0
    eval_interval_secs: int = 300
    min_resize_value: Optional[int] = None
    max_resize_value: Optional[int] = None
    resize_factor: Optional[int] = None
    fold_batch_norm: bool = True
    inference_backend: str = "tf"
    inference_precision: str = "auto"

    def __post_init__(self):
        set_ = lambda k, v: object.__setattr__(self, k, v)  # noqa: E731 (frozen dataclass)
        scales = (self.eval_scales,) if isinstance(self.eval_scales, (int, float)) else self.eval_scales
        try:
            scales = tuple(float(s) for s in scales)
        except (TypeError, ValueError):
            raise ConfigError(f"eval_scales must be numbers. Received: eval_scales={self.eval_scales!r}")
        if not scales or any(not s > 0 for s in scales):
            raise ConfigError(f"eval_scales must be positive numbers. Received: eval_scales={list(scales)}")
        set_("eval_scales", scales)
        set_("eval_crop_size", _as_size(self.eval_crop_size, "eval_crop_size"))
        set_("sliding_window_size", _as_size(self.sliding_window_size, "sliding_window_size"))
        widths = _as_int_tuple(self.trimap_widths, "trimap_widths")
        if any(w < 0 for w in widths):
            raise ConfigError(f"trimap_widths must be >= 0. Received: trimap_widths={list(widths)}")
        set_("trimap_widths", tuple(sorted(set(widths))))
        if not 0.0 <= self.sliding_window_overlap < 1.0:
            raise ConfigError(
                "sliding_window_overlap must be in [0, 1). Received: "
                f"sliding_window_overlap={self.sliding_window_overlap}")
        for name, choices in (("inference_backend", INFERENCE_BACKENDS),
                              ("inference_precision", INFERENCE_PRECISIONS)):
            if getattr(self, name) not in choices:
                raise ConfigError(f"{name} must be one of {', '.join(choices)}. "
                                  f"Received: {name}={getattr(self, name)!r}")
        if int(self.eval_interval_secs) < 0:
            raise ConfigError(
                f"eval_interval_secs must be >= 0. Received: eval_interval_secs={self.eval_interval_secs}")

    @property
    def multi_scale(self) -> bool:
        return self.eval_scales != (1.0,) or self.add_flipped_images
