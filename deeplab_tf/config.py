"""Frozen configuration dataclasses: the single place where options are validated.

Config flows one way: absl flags (``deeplab_tf.cli``) -> these dataclasses -> constructors.
Field names follow the original DeepLab's flags so that a flagfile of the original maps
one to one. Every dataclass validates itself in ``__post_init__`` and raises ``ValueError``
with a one-line message that echoes the offending value.
"""

from __future__ import annotations

import dataclasses
from typing import Optional, Tuple

from deeplab_tf.config_base import (DEFAULT_MAX_IMAGE_PIXELS, ConfigMixin,  # noqa: F401
                                    _as_int_tuple, _as_size)

# The model variants the library builds, and facts about each: the variable scope used by
# the original checkpoints and the low-level feature taps (by output stride) the decoder can
# use. One source of truth, imported by the backbones, the heads and the converter.
MODEL_VARIANTS = (
    "xception_41",
    "xception_65",
    "xception_71",
    "resnet_v1_50",
    "resnet_v1_50_beta",
    "resnet_v1_101",
    "resnet_v1_101_beta",
    "mobilenet_v2",
)
OUTPUT_STRIDES = (8, 16, 32)


@dataclasses.dataclass(frozen=True)
class ModelConfig(ConfigMixin):
    """Architecture of a DeepLabv3 / DeepLabv3+ model.

    Args:
        model_variant: str. Backbone, one of ``MODEL_VARIANTS``.
        num_classes: int. Number of output classes (logits channels).
        output_stride: int. 8, 16 or 32: ratio of input to encoder feature resolution.
        atrous_rates: tuple of int. Rates of the 3x3 ASPP branches; empty for none
            (the original's MobileNetV2 recipe).
        decoder_output_stride: tuple of int. Strides at which the DeepLabv3+ decoder refines
            features (the original's list flag, usually ``(4,)``); empty for DeepLabv3.
        multi_grid: tuple of int. Unit rates of the last block (e.g. ``(1, 2, 4)``); empty
            for the network's default.
        depth_multiplier: float. Channel multiplier for MobileNetV2.
        divisible_by: int or None. MobileNetV2 channel rounding; None: the original's default
            (8 for depth_multiplier 1.0, else 1).
        aspp_with_separable_conv: bool. Separable 3x3 ASPP branches.
        decoder_use_separable_conv: bool. Separable 3x3 decoder convs.
        add_image_level_feature: bool. Image pooling ASPP branch.
        image_pooling_crop_size: (h, w) or None. None: global average pooling (any input
            size); else the original's average pooling with a kernel of this crop's feature
            size, strided by ``image_pooling_stride``.
        image_pooling_stride: (h, w). Stride of that pooling.
        aspp_convs_filters: int. Channels of the ASPP branches and projection (256).
        decoder_filters: int. Channels of the decoder convs (256).
        weight_decay: float. slim's L2 weight decay (``wd * sum(w**2) / 2``).
        sync_batch_norm: bool. Batch statistics synchronised across replicas in training.
        fine_tune_batch_norm: bool. If false, batch norm runs in inference mode (moving
            statistics) and its parameters are frozen, as the original's flag.
    """

    model_variant: str = "mobilenet_v2"
    num_classes: int = 21
    output_stride: int = 16
    atrous_rates: Tuple[int, ...] = ()
    decoder_output_stride: Tuple[int, ...] = ()
    multi_grid: Tuple[int, ...] = ()
    depth_multiplier: float = 1.0
    divisible_by: Optional[int] = None
    aspp_with_separable_conv: bool = True
    decoder_use_separable_conv: bool = True
    add_image_level_feature: bool = True
    image_pooling_crop_size: Optional[Tuple[int, int]] = None
    image_pooling_stride: Tuple[int, int] = (1, 1)
    aspp_convs_filters: int = 256
    decoder_filters: int = 256
    weight_decay: float = 4e-5
    sync_batch_norm: bool = False
    fine_tune_batch_norm: bool = True

    def __post_init__(self):
        set_ = lambda k, v: object.__setattr__(self, k, v)  # noqa: E731 (frozen dataclass)
        set_("atrous_rates", _as_int_tuple(self.atrous_rates, "atrous_rates"))
        set_("decoder_output_stride",
             _as_int_tuple(self.decoder_output_stride, "decoder_output_stride"))
        set_("multi_grid", _as_int_tuple(self.multi_grid, "multi_grid"))
        set_("image_pooling_stride",
             _as_int_tuple(self.image_pooling_stride, "image_pooling_stride"))
        if self.image_pooling_crop_size is not None:
            set_("image_pooling_crop_size",
                 _as_int_tuple(self.image_pooling_crop_size, "image_pooling_crop_size") or None)

        if self.model_variant not in MODEL_VARIANTS:
            raise ValueError(
                f"model_variant must be one of {', '.join(MODEL_VARIANTS)}. "
                f"Received: model_variant={self.model_variant!r}")
        if self.output_stride not in OUTPUT_STRIDES:
            raise ValueError(
                f"output_stride must be 8, 16 or 32. Received: output_stride={self.output_stride}")
        if int(self.num_classes) < 1:
            raise ValueError(f"num_classes must be >= 1. Received: num_classes={self.num_classes}")
        if any(r < 1 for r in self.atrous_rates):
            raise ValueError(f"atrous_rates must be positive. Received: atrous_rates={list(self.atrous_rates)}")
        previous = self.output_stride
        for stride in self.decoder_output_stride:
            if stride not in (4, 8, 16) or stride >= previous:
                raise ValueError(
                    "decoder_output_stride must be decreasing values from {4, 8, 16}, each below "
                    f"output_stride={self.output_stride}. Received: "
                    f"decoder_output_stride={list(self.decoder_output_stride)}")
            previous = stride
        if self.multi_grid and len(self.multi_grid) != 3:
            raise ValueError(f"multi_grid must have 3 values. Received: multi_grid={list(self.multi_grid)}")
        if self.multi_grid and any(r < 1 for r in self.multi_grid):
            raise ValueError(f"multi_grid must be positive. Received: multi_grid={list(self.multi_grid)}")
        if not self.depth_multiplier > 0:
            raise ValueError(f"depth_multiplier must be > 0. Received: depth_multiplier={self.depth_multiplier}")
        if self.depth_multiplier != 1.0 and not self.model_variant.startswith("mobilenet"):
            raise ValueError(
                "depth_multiplier applies to mobilenet_v2 only. Received: "
                f"depth_multiplier={self.depth_multiplier} with model_variant={self.model_variant!r}")
        if self.image_pooling_crop_size is not None and len(self.image_pooling_crop_size) != 2:
            raise ValueError(
                "image_pooling_crop_size must be two integers (height, width). Received: "
                f"image_pooling_crop_size={self.image_pooling_crop_size}")
        if len(self.image_pooling_stride) != 2:
            raise ValueError(
                f"image_pooling_stride must be two integers. Received: image_pooling_stride={self.image_pooling_stride}")
        if self.weight_decay < 0:
            raise ValueError(f"weight_decay must be >= 0. Received: weight_decay={self.weight_decay}")

    @property
    def uses_decoder(self) -> bool:
        return bool(self.decoder_output_stride)


@dataclasses.dataclass(frozen=True)
class DataConfig(ConfigMixin):
    """Which dataset to read and how to augment it, named like the original's flags.

    Args:
        dataset: str. A registry name (``pascal_voc_seg``, ``cityscapes``, ``ade20k``), a
            custom dataset's name, ``"tfds:NAME[/CONFIG]"`` for a prepared TFDS dataset, or
            ``""`` to describe the data by the ``manifest.json`` in ``dataset_dir``.
        dataset_dir: str. Folder of the TFRecord shards (for TFDS: the TFDS data_dir; empty
            for TFDS's default).
        train_split: str. Split read by ``data.pipeline.train_dataset``.
        eval_split: str. Split evaluated by default.
        train_crop_size: (h, w). Training crop; images are padded up to it when smaller.
        min_resize_value: int or None. Desired size of the smaller side (resize to range).
        max_resize_value: int or None. Largest allowed size of the larger side.
        resize_factor: int or None. Resized sides become a multiple of it plus one.
        min_scale_factor: float. Smallest random scale in training.
        max_scale_factor: float. Largest random scale in training.
        scale_factor_step_size: float. Scales are drawn from ``min..max`` in these steps;
            0 draws uniformly from ``[min, max)``.
        num_readers: int. Shard files read in parallel.
        seed: int or None. Seeds file order, shuffling and augmentation: the same seed gives
            the same batches (element order is then kept, as with ``deterministic``).
        deterministic: bool. Keep element order in the parallel reading and decoding stages
            even without a seed (slightly slower).
        skip_corrupt_records: bool. Skip (and count) corrupt or truncated TFRecord records
            instead of stopping with an error naming the shard and record; records over
            ``max_image_pixels`` are skipped likewise (one stderr line each).
        max_image_pixels: int. Largest image (height x width, read from the encoded header
            before decoding) the input pipeline accepts; a larger record stops the input
            with an error naming the shard, the record and the size. 0: no limit.
    """

    dataset: str = "pascal_voc_seg"
    dataset_dir: str = ""
    train_split: str = "train"
    eval_split: str = "val"
    train_crop_size: Tuple[int, int] = (513, 513)
    min_resize_value: Optional[int] = None
    max_resize_value: Optional[int] = None
    resize_factor: Optional[int] = None
    min_scale_factor: float = 0.5
    max_scale_factor: float = 2.0
    scale_factor_step_size: float = 0.25
    num_readers: int = 4
    seed: Optional[int] = None
    deterministic: bool = False
    skip_corrupt_records: bool = False
    max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS

    def __post_init__(self):
        set_ = lambda k, v: object.__setattr__(self, k, v)  # noqa: E731 (frozen dataclass)
        set_("train_crop_size", _as_int_tuple(self.train_crop_size, "train_crop_size"))
        for name in ("min_resize_value", "max_resize_value", "resize_factor"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, (int, float)) or int(value) < 1):
                raise ValueError(f"{name} must be a positive integer or None. Received: {name}={value!r}")
            if value is not None:
                set_(name, int(value))
        if self.dataset == "" and not self.dataset_dir:
            raise ValueError(
                "dataset='' describes the data by dataset_dir/manifest.json, but dataset_dir is "
                f"empty. Received: dataset={self.dataset!r}, dataset_dir={self.dataset_dir!r}")
        if self.dataset.startswith("tfds:") and not self.dataset[len("tfds:"):].strip("/"):
            raise ValueError(f"dataset must be 'tfds:NAME[/CONFIG]'. Received: dataset={self.dataset!r}")
        if not self.train_split or not self.eval_split:
            raise ValueError(
                "train_split and eval_split must be non-empty. Received: "
                f"train_split={self.train_split!r}, eval_split={self.eval_split!r}")
        if len(self.train_crop_size) != 2 or min(self.train_crop_size) < 1:
            raise ValueError(
                "train_crop_size must be two positive integers (height, width). Received: "
                f"train_crop_size={list(self.train_crop_size)}")
        if (self.min_resize_value is not None and self.max_resize_value is not None
                and self.min_resize_value > self.max_resize_value):
            raise ValueError(
                "min_resize_value must be <= max_resize_value. Received: "
                f"min_resize_value={self.min_resize_value}, max_resize_value={self.max_resize_value}")
        if self.resize_factor is not None and self.min_resize_value is None and self.max_resize_value is None:
            raise ValueError(
                "resize_factor needs min_resize_value or max_resize_value. Received: "
                f"resize_factor={self.resize_factor}")
        if not 0 < self.min_scale_factor <= self.max_scale_factor:
            raise ValueError(
                "Scale factors must satisfy 0 < min_scale_factor <= max_scale_factor. Received: "
                f"min_scale_factor={self.min_scale_factor}, max_scale_factor={self.max_scale_factor}")
        if self.scale_factor_step_size < 0:
            raise ValueError(
                "scale_factor_step_size must be >= 0. Received: "
                f"scale_factor_step_size={self.scale_factor_step_size}")
        if int(self.num_readers) < 1:
            raise ValueError(f"num_readers must be >= 1. Received: num_readers={self.num_readers}")
        if self.seed is not None and not isinstance(self.seed, int):
            raise ValueError(f"seed must be an integer or None. Received: seed={self.seed!r}")
        if isinstance(self.max_image_pixels, bool) or not isinstance(self.max_image_pixels, int) \
                or self.max_image_pixels < 0:
            raise ValueError("max_image_pixels must be an integer >= 0 (0: no limit). "
                             f"Received: max_image_pixels={self.max_image_pixels!r}")


# The other configs live in their own modules; every config is importable from here.
from deeplab_tf.config_inference import (EXPORT_FORMATS, INFERENCE_BACKENDS,  # noqa: E402,F401
                                         TFLITE_MODES, TFLITE_OUTPUTS, EvalConfig, ExportConfig)
from deeplab_tf.config_train import (LEARNING_POLICIES, MIXED_PRECISION, OPTIMIZERS,  # noqa: E402,F401
                                     STRATEGIES, TrainConfig)
