"""Frozen configuration dataclasses: the single place where options are validated.

Config flows one way: absl flags (``deeplab_tf.cli``) -> these dataclasses -> constructors.
Field names follow the original DeepLab's flags so that a flagfile of the original maps
one to one. Every dataclass validates itself in ``__post_init__`` and raises ``ValueError``
with a one-line message that echoes the offending value.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Optional, Tuple

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
TFLITE_MODES = ("float32", "float16", "dynamic_range", "int8")


def _as_int_tuple(value, name):
    if value is None:
        return ()
    if isinstance(value, (int,)):
        return (int(value),)
    try:
        return tuple(int(v) for v in value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a list of integers. Received: {name}={value!r}")


def _to_jsonable(obj):
    out = {}
    for field in dataclasses.fields(obj):
        value = getattr(obj, field.name)
        out[field.name] = list(value) if isinstance(value, tuple) else value
    return out


@dataclasses.dataclass(frozen=True)
class ModelConfig:
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

    model_variant: str = "xception_65"
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

    def to_dict(self) -> dict:
        return _to_jsonable(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, values: dict) -> "ModelConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"Unknown ModelConfig fields: {unknown}")
        return cls(**values)


@dataclasses.dataclass(frozen=True)
class DataConfig:
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
            instead of stopping with an error naming the shard and record.
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

    def to_dict(self) -> dict:
        return _to_jsonable(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, values: dict) -> "DataConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"Unknown DataConfig fields: {unknown}")
        return cls(**values)


LEARNING_POLICIES = ("poly", "step", "cosine")
OPTIMIZERS = ("momentum", "adam")
STRATEGIES = ("auto", "one_device", "mirrored", "multi_worker", "tpu")
MIXED_PRECISION = ("float32", "bfloat16", "float16", "auto")


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """How ``deeplab-train`` optimises a model; defaults are the original train.py's.

    Model options that training toggles (``weight_decay``, ``fine_tune_batch_norm``,
    ``sync_batch_norm``) live in ``ModelConfig``; the data and its augmentation in
    ``DataConfig``.

    Args:
        train_batch_size: int. Global batch size, split evenly over the replicas.
        training_number_of_steps: int. Number of optimiser steps.
        learning_policy: str. ``"poly"``, ``"step"`` or ``"cosine"`` decay of the base rate.
        base_learning_rate: float. Base learning rate of momentum SGD.
        learning_rate_decay_step: int. ``"step"`` policy: decay every this many steps.
        learning_rate_decay_factor: float. ``"step"`` policy: decay factor.
        learning_power: float. ``"poly"`` policy: power.
        slow_start_step: int. Use ``slow_start_learning_rate`` for the first steps; the
            decay schedule starts after them.
        slow_start_learning_rate: float. Learning rate of the slow start.
        optimizer: str. ``"momentum"`` (SGD with momentum) or ``"adam"``.
        momentum: float. Momentum of SGD.
        adam_learning_rate: float. Base learning rate when ``optimizer="adam"`` (the learning
            policy and slow start apply to it; the original kept it constant).
        adam_epsilon: float. Adam's epsilon.
        upsample_logits: bool. Compute the loss at label resolution (logits upsampled);
            if false, labels are downsampled (nearest) to the logits.
        label_weights: tuple of float. One loss weight per class; empty for all 1.
        top_k_percent_pixels: float. In (0, 1]: loss over the hardest pixels only.
        hard_example_mining_step: int. Steps over which the mined fraction anneals from 1
            to ``top_k_percent_pixels`` (0: from the start).
        last_layer_gradient_multiplier: float. Gradient multiplier of the last layers.
        last_layers_contain_logits_only: bool. Last layers = logits only (else also ASPP,
            image pooling, concat projection and decoder).
        tf_initial_checkpoint: str or None. Checkpoint to start from (an original TF1 or
            this project's); ignored when ``train_logdir`` already holds a checkpoint.
        initialize_last_layer: bool. Load the last layers from ``tf_initial_checkpoint``.
        save_interval_steps: int. Save a checkpoint every this many steps.
        save_interval_secs: int. Also save when this many seconds passed since the last
            save (the original's flag, default 1200); 0: by steps only. The final step is
            always saved.
        max_to_keep: int. Checkpoints kept in ``train_logdir``.
        log_steps: int. Log a progress line and summaries every this many steps.
        save_summaries_images: bool. Write input / ground truth / prediction image summaries.
        strategy: str. ``"auto"``, ``"one_device"``, ``"mirrored"``, ``"multi_worker"``
            (TF_CONFIG) or ``"tpu"``.
        tpu: str or None. TPU name / address for the cluster resolver.
        mixed_precision: str. ``"float32"``, ``"bfloat16"`` or ``"float16"`` (with loss
            scaling); the loss is computed in float32 in every case.
        jit_compile: bool. XLA-compile the forward and backward pass.
        seed: int or None. Seed of the weight initialisation (and dropout).
        batch_norm_decay: float or None. Decay of the batch-norm moving averages in training;
            None keeps the network's own (0.9997 in the heads and Xception, 0.997 in
            MobileNetV2, as the original). Runs of a few hundred steps need a faster one
            (e.g. 0.99), else inference uses statistics still close to their initial values.
    """

    train_batch_size: int = 8
    training_number_of_steps: int = 30000
    learning_policy: str = "poly"
    base_learning_rate: float = 1e-4
    learning_rate_decay_step: int = 2000
    learning_rate_decay_factor: float = 0.1
    learning_power: float = 0.9
    slow_start_step: int = 0
    slow_start_learning_rate: float = 1e-4
    optimizer: str = "momentum"
    momentum: float = 0.9
    adam_learning_rate: float = 1e-3
    adam_epsilon: float = 1e-8
    upsample_logits: bool = True
    label_weights: Tuple[float, ...] = ()
    top_k_percent_pixels: float = 1.0
    hard_example_mining_step: int = 0
    last_layer_gradient_multiplier: float = 1.0
    last_layers_contain_logits_only: bool = False
    tf_initial_checkpoint: Optional[str] = None
    initialize_last_layer: bool = True
    save_interval_steps: int = 1000
    save_interval_secs: int = 1200
    max_to_keep: int = 5
    log_steps: int = 10
    save_summaries_images: bool = False
    strategy: str = "auto"
    tpu: Optional[str] = None
    mixed_precision: str = "float32"
    jit_compile: bool = False
    seed: Optional[int] = None
    batch_norm_decay: Optional[float] = None

    def __post_init__(self):
        try:
            weights = tuple(float(w) for w in (self.label_weights or ()))
        except (TypeError, ValueError):
            raise ValueError(
                f"label_weights must be numbers. Received: label_weights={self.label_weights!r}")
        object.__setattr__(self, "label_weights", weights)
        if self.tf_initial_checkpoint == "":
            object.__setattr__(self, "tf_initial_checkpoint", None)

        def positive(name):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1. Received: {name}={getattr(self, name)}")

        for name in ("train_batch_size", "training_number_of_steps", "learning_rate_decay_step",
                     "save_interval_steps", "max_to_keep", "log_steps"):
            positive(name)
        for name, choices in (("learning_policy", LEARNING_POLICIES), ("optimizer", OPTIMIZERS),
                              ("strategy", STRATEGIES), ("mixed_precision", MIXED_PRECISION)):
            if getattr(self, name) not in choices:
                raise ValueError(f"{name} must be one of {', '.join(choices)}. "
                                 f"Received: {name}={getattr(self, name)!r}")
        for name in ("base_learning_rate", "adam_learning_rate", "slow_start_learning_rate",
                     "adam_epsilon", "learning_power", "learning_rate_decay_factor"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0. Received: {name}={getattr(self, name)}")
        if not 0 <= self.momentum < 1:
            raise ValueError(f"momentum must be in [0, 1). Received: momentum={self.momentum}")
        if not 0 <= self.slow_start_step < self.training_number_of_steps:
            raise ValueError(
                "slow_start_step must be in [0, training_number_of_steps). Received: "
                f"slow_start_step={self.slow_start_step}, "
                f"training_number_of_steps={self.training_number_of_steps}")
        if not 0 < self.top_k_percent_pixels <= 1:
            raise ValueError("top_k_percent_pixels must be in (0, 1]. "
                             f"Received: top_k_percent_pixels={self.top_k_percent_pixels}")
        if self.hard_example_mining_step < 0:
            raise ValueError("hard_example_mining_step must be >= 0. "
                             f"Received: hard_example_mining_step={self.hard_example_mining_step}")
        if any(w < 0 for w in self.label_weights):
            raise ValueError(
                f"label_weights must be >= 0. Received: label_weights={list(self.label_weights)}")
        if self.last_layer_gradient_multiplier < 0:
            raise ValueError("last_layer_gradient_multiplier must be >= 0. Received: "
                             f"last_layer_gradient_multiplier={self.last_layer_gradient_multiplier}")
        if self.seed is not None and not isinstance(self.seed, int):
            raise ValueError(f"seed must be an integer or None. Received: seed={self.seed!r}")
        if self.batch_norm_decay is not None and not 0 <= self.batch_norm_decay < 1:
            raise ValueError("batch_norm_decay must be in [0, 1) or None. "
                             f"Received: batch_norm_decay={self.batch_norm_decay}")

    @property
    def learning_rate(self) -> float:
        """The optimiser's base learning rate (``adam_learning_rate`` for Adam)."""
        return self.adam_learning_rate if self.optimizer == "adam" else self.base_learning_rate

    def to_dict(self) -> dict:
        return _to_jsonable(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, values: dict) -> "TrainConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"Unknown TrainConfig fields: {unknown}")
        return cls(**values)


def _as_size(value, name):
    """None, or an (h, w) pair of positive ints (one int means a square)."""
    if value is None:
        return None
    size = _as_int_tuple(value, name)
    if not size:
        return None
    if len(size) == 1:
        size = size * 2
    if len(size) != 2 or min(size) < 1:
        raise ValueError(f"{name} must be two positive integers (height, width). Received: {name}={list(size)}")
    return size


@dataclasses.dataclass(frozen=True)
class EvalConfig:
    """How deeplab-eval / deeplab-vis run inference and what eval measures.

    Args:
        eval_scales: tuple of float. Input scales averaged at test time (the original's
            flag; e.g. ``(0.5, 0.75, 1.0, 1.25, 1.5, 1.75)`` for multi-scale).
        add_flipped_images: bool. Also average left-right flipped inputs.
        eval_crop_size: (h, w) or None. As in the original, images smaller than this are
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
    """

    eval_scales: Tuple[float, ...] = (1.0,)
    add_flipped_images: bool = False
    eval_crop_size: Optional[Tuple[int, int]] = None
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

    def __post_init__(self):
        set_ = lambda k, v: object.__setattr__(self, k, v)  # noqa: E731 (frozen dataclass)
        scales = (self.eval_scales,) if isinstance(self.eval_scales, (int, float)) else self.eval_scales
        try:
            scales = tuple(float(s) for s in scales)
        except (TypeError, ValueError):
            raise ValueError(f"eval_scales must be numbers. Received: eval_scales={self.eval_scales!r}")
        if not scales or any(not s > 0 for s in scales):
            raise ValueError(f"eval_scales must be positive numbers. Received: eval_scales={list(scales)}")
        set_("eval_scales", scales)
        set_("eval_crop_size", _as_size(self.eval_crop_size, "eval_crop_size"))
        set_("sliding_window_size", _as_size(self.sliding_window_size, "sliding_window_size"))
        widths = _as_int_tuple(self.trimap_widths, "trimap_widths")
        if any(w < 0 for w in widths):
            raise ValueError(f"trimap_widths must be >= 0. Received: trimap_widths={list(widths)}")
        set_("trimap_widths", tuple(sorted(set(widths))))
        if not 0.0 <= self.sliding_window_overlap < 1.0:
            raise ValueError(
                "sliding_window_overlap must be in [0, 1). Received: "
                f"sliding_window_overlap={self.sliding_window_overlap}")
        if int(self.eval_interval_secs) < 0:
            raise ValueError(
                f"eval_interval_secs must be >= 0. Received: eval_interval_secs={self.eval_interval_secs}")

    @property
    def multi_scale(self) -> bool:
        return self.eval_scales != (1.0,) or self.add_flipped_images

    def to_dict(self) -> dict:
        return _to_jsonable(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)


EXPORT_FORMATS = ("saved_model", "tflite", "frozen_graph", "openvino", "onnx")
INFERENCE_BACKENDS = ("tf", "openvino")
TFLITE_OUTPUTS = ("argmax", "logits")


@dataclasses.dataclass(frozen=True)
class ExportConfig:
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
            (``model.fold_batch_norm``), ~15 % faster in TensorFlow on CPU; predictions then
            equal deeplab-eval's up to float rounding (near-ties may flip), not bit for bit.
            TFLite conversion folds batch norm in every case.
        crop_size: (h, w). TFLite: the fixed input size (the SavedModel takes any size).
        tflite_mode: str. ``"float32"``, ``"float16"`` (float16 weights),
            ``"dynamic_range"`` (int8 weights, float activations) or ``"int8"`` (full integer,
            uint8 pixel input, calibrated on ``calibration_dataset_dir``).
        tflite_output: str. ``"argmax"``: int32 labels [1, h, w] computed in the graph;
            ``"logits"``: float32 logits [1, h, w, classes] at the input size.
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
        max_image_pixels: int. Serving signatures reject images with more pixels than this
            (InvalidArgument), before decoding them fully.
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
    calibration_dataset_dir: str = ""
    calibration_split: str = "train"
    calibration_steps: int = 100
    export_path: str = ""
    save_inference_graph: bool = False
    min_resize_value: Optional[int] = None
    max_resize_value: Optional[int] = None
    resize_factor: Optional[int] = None
    max_image_pixels: int = 64_000_000

    def __post_init__(self):
        set_ = lambda k, v: object.__setattr__(self, k, v)  # noqa: E731 (frozen dataclass)
        scales = self.inference_scales
        scales = (scales,) if isinstance(scales, (int, float)) else scales
        try:
            scales = tuple(float(s) for s in scales)
        except (TypeError, ValueError):
            raise ValueError(
                f"inference_scales must be numbers. Received: inference_scales={self.inference_scales!r}")
        if not scales or any(not s > 0 for s in scales):
            raise ValueError(
                f"inference_scales must be positive numbers. Received: inference_scales={list(scales)}")
        set_("inference_scales", scales)
        set_("crop_size", _as_size(self.crop_size, "crop_size"))
        set_("eval_crop_size", _as_size(self.eval_crop_size, "eval_crop_size"))
        for name, choices in (("format", EXPORT_FORMATS), ("tflite_mode", TFLITE_MODES),
                              ("tflite_output", TFLITE_OUTPUTS)):
            if getattr(self, name) not in choices:
                raise ValueError(f"{name} must be one of {', '.join(choices)}. "
                                 f"Received: {name}={getattr(self, name)!r}")
        if (not self.model_name or self.model_name.startswith(".")
                or any(c in self.model_name for c in "/\\ ")):
            raise ValueError("model_name must be a plain folder name (no '/', space or leading "
                             f"'.'). Received: model_name={self.model_name!r}")
        if self.export_version is not None and (
                not isinstance(self.export_version, int) or self.export_version < 1):
            raise ValueError(
                f"export_version must be a positive integer. Received: export_version={self.export_version!r}")
        if int(self.calibration_steps) < 1:
            raise ValueError(
                f"calibration_steps must be >= 1. Received: calibration_steps={self.calibration_steps}")
        if self.format == "tflite":
            if self.crop_size is None:
                raise ValueError("crop_size is required for TFLite (its input size is fixed)")
            if self.multi_scale or self.export_probabilities:
                raise ValueError(
                    "inference_scales, add_flipped_images and export_probabilities apply to "
                    "SavedModel exports only (a TFLite model is single-scale; use "
                    "tflite_output='logits' for scores). Received: "
                    f"inference_scales={list(self.inference_scales)}, "
                    f"add_flipped_images={self.add_flipped_images}, "
                    f"export_probabilities={self.export_probabilities}")

    @property
    def multi_scale(self) -> bool:
        return self.inference_scales != (1.0,) or self.add_flipped_images

    def to_dict(self) -> dict:
        return _to_jsonable(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)
