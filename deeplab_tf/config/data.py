"""``DataConfig``: which dataset is read and how it is augmented, named like the original's
flags."""

from __future__ import annotations

import dataclasses
from typing import Optional, Tuple

from deeplab_tf.config.base import (DEFAULT_MAX_IMAGE_PIXELS, ConfigMixin, _as_int_tuple,
                                     check_pixel_limit)
from deeplab_tf.errors import ConfigError


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
        max_image_pixels: int. Largest cost of one record, read from the encoded headers
            before decoding: in training, the image resized at the largest random scale and
            padded to the crop; in evaluation, what the caller's ``pixels`` (the inference's
            padding and passes) says. A costlier record stops the input with an error naming
            the shard, the record and the size. 0: no limit.
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
                raise ConfigError(f"{name} must be a positive integer or None. Received: {name}={value!r}")
            if value is not None:
                set_(name, int(value))
        if self.dataset == "" and not self.dataset_dir:
            raise ConfigError(
                "dataset='' describes the data by dataset_dir/manifest.json, but dataset_dir is "
                f"empty. Received: dataset={self.dataset!r}, dataset_dir={self.dataset_dir!r}")
        if self.dataset.startswith("tfds:") and not self.dataset[len("tfds:"):].strip("/"):
            raise ConfigError(f"dataset must be 'tfds:NAME[/CONFIG]'. Received: dataset={self.dataset!r}")
        if not self.train_split or not self.eval_split:
            raise ConfigError(
                "train_split and eval_split must be non-empty. Received: "
                f"train_split={self.train_split!r}, eval_split={self.eval_split!r}")
        if len(self.train_crop_size) != 2 or min(self.train_crop_size) < 1:
            raise ConfigError(
                "train_crop_size must be two positive integers (height, width). Received: "
                f"train_crop_size={list(self.train_crop_size)}")
        if (self.min_resize_value is not None and self.max_resize_value is not None
                and self.min_resize_value > self.max_resize_value):
            raise ConfigError(
                "min_resize_value must be <= max_resize_value. Received: "
                f"min_resize_value={self.min_resize_value}, max_resize_value={self.max_resize_value}")
        if self.resize_factor is not None and self.min_resize_value is None and self.max_resize_value is None:
            raise ConfigError(
                "resize_factor needs min_resize_value or max_resize_value. Received: "
                f"resize_factor={self.resize_factor}")
        if not 0 < self.min_scale_factor <= self.max_scale_factor:
            raise ConfigError(
                "Scale factors must satisfy 0 < min_scale_factor <= max_scale_factor. Received: "
                f"min_scale_factor={self.min_scale_factor}, max_scale_factor={self.max_scale_factor}")
        if self.scale_factor_step_size < 0:
            raise ConfigError(
                "scale_factor_step_size must be >= 0. Received: "
                f"scale_factor_step_size={self.scale_factor_step_size}")
        if int(self.num_readers) < 1:
            raise ConfigError(f"num_readers must be >= 1. Received: num_readers={self.num_readers}")
        if self.seed is not None and not isinstance(self.seed, int):
            raise ConfigError(f"seed must be an integer or None. Received: seed={self.seed!r}")
        check_pixel_limit(self.max_image_pixels)
