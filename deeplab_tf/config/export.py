"""``ExportConfig``: what deeplab-export writes (SavedModel, TFLite, frozen graph, OpenVINO,
ONNX)."""

from __future__ import annotations

import dataclasses
from typing import Optional, Tuple

from deeplab_tf.config.base import (DEFAULT_MAX_IMAGE_PIXELS, ConfigMixin, _as_size,
                                     check_pixel_limit)
from deeplab_tf.config.eval import INFERENCE_PRECISIONS
from deeplab_tf.errors import ConfigError

TFLITE_MODES = ("float32", "float16", "dynamic_range", "int8", "edgetpu")
EXPORT_FORMATS = ("saved_model", "tflite", "frozen_graph", "openvino", "onnx")
TFLITE_OUTPUTS = ("argmax", "argmax_uint8", "logits")
TFLITE_OUTPUT_SIZES = ("input", "output_stride")


@dataclasses.dataclass(frozen=True)
class ExportConfig(ConfigMixin):
    """What deeplab-export writes: a SavedModel for TF Serving or a TFLite model.

    Args:
        format: str. ``"saved_model"`` or ``"tflite"``.
        model_name: str. TF Serving's model name: the SavedModel goes to
            ``export_dir/model_name/<version>/``, a TFLite model to
            ``export_dir/<model_name>_<tflite_mode>.tflite``.
        export_version: int or None. SavedModel version; None: one more than the largest
            existing version. An existing version is never overwritten.
        inference_scales: tuple of float. SavedModel: input scales averaged inside the graph
            (as ``--eval_scales``); TFLite models are single-scale.
        add_flipped_images: bool. SavedModel: also average left-right flipped inputs.
        export_probabilities: bool. SavedModel: also output ``semantic_probabilities``.
        eval_crop_size: (h, w) or None. SavedModel: as deeplab-eval's flag, images smaller
            than this are padded (bottom/right, mean pixel) to it before inference; None: only
            to the next ``k * output_stride + 1``. Keep it equal to deeplab-eval's for
            identical predictions.
        fold_batch_norm: bool. SavedModel: fold batch norm into the convolutions
            (``modeling.layers.original_layer.fold_batch_norm``), faster in TensorFlow on
            CPU; predictions then equal deeplab-eval's up to float rounding (near-ties may
            flip), not bit for bit.
            TFLite conversion folds batch norm in every case.
        crop_size: (h, w). TFLite: the fixed input size (the SavedModel takes any size).
        tflite_mode: str. ``"float32"``, ``"float16"`` (float16 weights),
            ``"dynamic_range"`` (int8 weights, float activations), ``"int8"`` (full integer,
            uint8 pixel input; calibrated on ``calibration_dataset_dir``, or with the learned
            ranges of a quantization-aware model) or ``"edgetpu"`` (``"int8"`` with uint8
            class scores out and only operations of the Edge TPU's supported set).
        tflite_output: str. ``"argmax"``: int32 labels [1, h, w] computed in the graph;
            ``"argmax_uint8"``: the same as uint8 (at most 256 classes); ``"logits"``: class
            scores [1, h, w, classes] (float32; uint8 for ``"edgetpu"``, which needs it:
            ArgMax is not an Edge TPU operation).
        tflite_output_size: str. ``"input"``: outputs at the input size (logits upsampled in
            the model); ``"output_stride"``: at the model's output stride, without the final
            upsample (the expensive part on a small accelerator), which ``LiteRTModel`` then
            does on the host (labels as if upsampled in the model).
        calibration_dataset_dir: str. int8: folder of TFRecord shards for calibration.
        calibration_split: str. int8: the split whose images calibrate.
        calibration_steps: int. int8: number of calibration images.
        export_path: str. ``frozen_graph``: the GraphDef file to write (the original's
            ``frozen_inference_graph.pb``).
        save_inference_graph: bool. ``frozen_graph``: also write the unfrozen graph
            (``inference_graph.pbtxt``) beside it, as the original's flag.
        min_resize_value: int or None. Resize to range inside the exported graph.
        max_resize_value: int or None. Resize to range: largest allowed larger side.
        resize_factor: int or None. Resize to range: sides become a multiple of it plus one.
        max_image_pixels: int. Serving signatures reject a request that would allocate more
            pixels than this (padded size times scale/flip passes, summed over the batch;
            InvalidArgument), read from the headers before decoding. 0: no limit.
        inference_precision: str. SavedModel: the precision its graph computes in:
            ``"float32"`` (the default: the machine that will serve is not known here),
            ``"bfloat16"``, or ``"auto"`` (bfloat16 where the exporting machine computes it
            natively, else float32: for exports served on the kind of machine that exports).
            The other formats hold the float32 graph (their runtimes choose their own
            precision): ``"bfloat16"`` is an error there, ``"auto"`` means float32.
    """

    format: str = "saved_model"
    model_name: str = "deeplab"
    export_version: Optional[int] = None
    inference_scales: Tuple[float, ...] = (1.0,)
    add_flipped_images: bool = False
    export_probabilities: bool = False
    eval_crop_size: Optional[Tuple[int, int]] = None
    fold_batch_norm: bool = True
    crop_size: Tuple[int, int] = (513, 513)
    tflite_mode: str = "float32"
    tflite_output: str = "argmax"
    tflite_output_size: str = "input"
    calibration_dataset_dir: str = ""
    calibration_split: str = "train"
    calibration_steps: int = 100
    export_path: str = ""
    save_inference_graph: bool = False
    min_resize_value: Optional[int] = None
    max_resize_value: Optional[int] = None
    resize_factor: Optional[int] = None
    max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS
    inference_precision: str = "float32"

    def __post_init__(self):
        set_ = lambda k, v: object.__setattr__(self, k, v)  # noqa: E731 (frozen dataclass)
        scales = self.inference_scales
        scales = (scales,) if isinstance(scales, (int, float)) else scales
        try:
            scales = tuple(float(s) for s in scales)
        except (TypeError, ValueError):
            raise ConfigError(
                f"inference_scales must be numbers. Received: inference_scales={self.inference_scales!r}")
        if not scales or any(not s > 0 for s in scales):
            raise ConfigError(
                f"inference_scales must be positive numbers. Received: inference_scales={list(scales)}")
        set_("inference_scales", scales)
        set_("crop_size", _as_size(self.crop_size, "crop_size"))
        set_("eval_crop_size", _as_size(self.eval_crop_size, "eval_crop_size"))
        for name, choices in (("format", EXPORT_FORMATS), ("tflite_mode", TFLITE_MODES),
                              ("tflite_output", TFLITE_OUTPUTS),
                              ("tflite_output_size", TFLITE_OUTPUT_SIZES),
                              ("inference_precision", INFERENCE_PRECISIONS)):
            if getattr(self, name) not in choices:
                raise ConfigError(f"{name} must be one of {', '.join(choices)}. "
                                 f"Received: {name}={getattr(self, name)!r}")
        if (not self.model_name or self.model_name.startswith(".")
                or any(c in self.model_name for c in "/\\ ")):
            raise ConfigError("model_name must be a plain folder name (no '/', space or leading "
                             f"'.'). Received: model_name={self.model_name!r}")
        if self.export_version is not None and (
                not isinstance(self.export_version, int) or self.export_version < 1):
            raise ConfigError(
                f"export_version must be a positive integer. Received: export_version={self.export_version!r}")
        check_pixel_limit(self.max_image_pixels)
        if self.inference_precision == "bfloat16" and self.format != "saved_model":
            raise ConfigError(
                "inference_precision=bfloat16 applies to SavedModel exports only (the other "
                f"formats hold the float32 graph). Received: format={self.format!r}")
        if int(self.calibration_steps) < 1:
            raise ConfigError(
                f"calibration_steps must be >= 1. Received: calibration_steps={self.calibration_steps}")
        if self.tflite_mode == "edgetpu" and self.tflite_output != "logits":
            raise ConfigError(
                "tflite_mode='edgetpu' outputs uint8 class scores (ArgMax is not an Edge TPU "
                "operation; LiteRTModel takes the argmax on the host): set "
                f"tflite_output='logits'. Received: tflite_output={self.tflite_output!r}")
        if self.format == "tflite":
            if self.crop_size is None:
                raise ConfigError("crop_size is required for TFLite (its input size is fixed)")
            if self.multi_scale or self.export_probabilities:
                raise ConfigError(
                    "inference_scales, add_flipped_images and export_probabilities apply to "
                    "SavedModel exports only (a TFLite model is single-scale; use "
                    "tflite_output='logits' for scores). Received: "
                    f"inference_scales={list(self.inference_scales)}, "
                    f"add_flipped_images={self.add_flipped_images}, "
                    f"export_probabilities={self.export_probabilities}")

    @property
    def multi_scale(self) -> bool:
        return self.inference_scales != (1.0,) or self.add_flipped_images
