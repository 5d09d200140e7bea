"""Presets: the original DeepLab model zoo (``g3doc/model_zoo.md``) by checkpoint name.

Each ``Preset`` gives the architecture (a ``ModelConfig`` at its published evaluation output
stride), the dataset's class names and palette, the evaluation setting (scales, flip) and the
published mIoU and Multiply-Adds, with the tarball's file name and URL.
``from_preset(name, checkpoint=PATH)`` builds the model and loads a zoo tarball (or its
extracted folder) that the user fetched: nothing is downloaded. Every entry of the original's
model zoo is a preset: its 18 segmentation models and its 6 ImageNet-pretrained backbones
(``imagenet_backbone``: the backbone loaded into the original's training network for it,
the heads to be trained).

The zoo's MobileNetV3 "Multiply-Adds" (15.95B, 4.63B) count about two operations per
multiply-add (a FLOP count): this library's count of the same networks is 7.58B / 1.96B
(docs/models.md). The EdgeTPU entries are evaluated at output stride 32 or 16 (70.6% /
74.1%): the presets take 16, the output stride the original trains them at.

The two 8-bit models of the original's ``g3doc/quantize.md`` (``*_8bit``) are
quantization-aware (``ModelConfig.quantization="per_tensor"``): their checkpoints hold the
ranges beside each layer, which load by name and are used.

Example:

>>> from deeplab_tf import presets
>>> presets.list()                                  # prints the table
>>> model = DeepLab.from_preset("mobilenetv2_coco_voc_trainaug",
...                             checkpoint="deeplabv3_mnv2_pascal_train_aug_2018_01_29.tar.gz")
"""

from __future__ import annotations

import builtins
import dataclasses
import os
from typing import Optional, Tuple

from deeplab_tf.config import ModelConfig
from deeplab_tf.config.dense_prediction_cell import CITYSCAPES_CELL
from deeplab_tf.errors import ConfigError

URL_PREFIX = "http://download.tensorflow.org/models/"
_XCEPTION_RATES = {16: (6, 12, 18), 8: (12, 24, 36)}
_MULTI_SCALE_VOC = (0.5, 0.75, 1.0, 1.25, 1.5, 1.75)
_MULTI_SCALE_CITY = (0.75, 1.0, 1.25)
_MULTI_SCALE_CITY_DPC = (0.75, 1.0, 1.25, 1.5, 1.75, 2.0)  # the zoo's [0.75:0.25:2]


@dataclasses.dataclass(frozen=True)
class Preset:
    """One model-zoo checkpoint.

    Attributes:
        name: str. The zoo's checkpoint name.
        dataset: str. Registry name of the dataset (class names, palette, ignore label).
        tarball: str. The zoo's file name.
        model_config: ModelConfig at ``eval_output_stride``.
        eval_output_stride: int. Output stride of the published result.
        eval_scales: tuple of float. Scales of the published result.
        add_flipped_images: bool. Left-right flip in the published result.
        published_miou: float or None. Published mIoU (percent); None for an ImageNet
            checkpoint.
        eval_split: str. Split the mIoU was measured on ("val" or "test").
        published_madds: float or None. The zoo's "Multiply-Adds" of that setting, in
            billions (None where the zoo gives none).
        imagenet_backbone: bool. One of the zoo's ImageNet-pretrained checkpoints: only the
            backbone's variables are in it, loaded into ``model_config``'s network (the
            original's training setting for that backbone, ``dataset``'s classes); the heads
            keep their initialisation, to be trained (its ``--tf_initial_checkpoint`` use).
    """

    name: str
    dataset: str
    tarball: str
    model_config: ModelConfig
    eval_output_stride: int
    eval_scales: Tuple[float, ...]
    add_flipped_images: bool
    published_miou: Optional[float]
    eval_split: str = "val"
    published_madds: Optional[float] = None
    imagenet_backbone: bool = False

    @property
    def url(self) -> str:
        return URL_PREFIX + self.tarball

    @property
    def dataset_info(self):
        from deeplab_tf.data.registry import get_dataset_info

        return get_dataset_info(self.dataset)

    @property
    def class_names(self) -> Tuple[str, ...]:
        return self.dataset_info.class_names

    @property
    def palette(self):
        return self.dataset_info.palette


def _xception(num_classes, output_stride):
    return ModelConfig(model_variant="xception_65", num_classes=num_classes,
                       output_stride=output_stride, atrous_rates=_XCEPTION_RATES[output_stride],
                       decoder_output_stride=(4,))


def _mobilenet(num_classes, output_stride, depth_multiplier=1.0, decoder=(), quantization=None):
    return ModelConfig(model_variant="mobilenet_v2", num_classes=num_classes,
                       output_stride=output_stride, depth_multiplier=depth_multiplier,
                       decoder_output_stride=decoder, quantization=quantization)


# The zoo's additional flags for the MobileNetV3 models (model_zoo.md).
_MOBILENET_V3_HEAD = dict(
    output_stride=32, num_classes=19, image_pooling_crop_size=(769, 769),
    image_pooling_stride=(4, 5), add_image_level_feature=True, aspp_convs_filters=128,
    aspp_with_concat_projection=False, aspp_with_squeeze_and_excitation=True,
    decoder_use_sum_merge=True, decoder_filters=19, decoder_output_is_logits=True,
    image_se_uses_qsigmoid=True, decoder_output_stride=(8,))


def _mobilenet_v3(variant):
    return ModelConfig(model_variant=variant, **_MOBILENET_V3_HEAD)


def _edgetpu(depth_multiplier=1.0, aspp_convs_filters=256):
    return ModelConfig(model_variant="mobilenet_edgetpu", num_classes=19, output_stride=16,
                       depth_multiplier=depth_multiplier, aspp_convs_filters=aspp_convs_filters)
def _xception71_dpc(output_stride):
    return ModelConfig(model_variant="xception_71", num_classes=19, output_stride=output_stride,
                       dense_prediction_cell=CITYSCAPES_CELL, decoder_output_stride=(4,))


def _imagenet(variant):
    """The original's PASCAL VOC training setting for an ImageNet backbone (OS16, ASPP 6/12/18,
    decoder at stride 4; multi-grid (1, 2, 4) for the ResNets, as its recipes)."""
    multi_grid = (1, 2, 4) if variant.startswith("resnet") else None
    return ModelConfig(model_variant=variant, num_classes=21, output_stride=16,
                       atrous_rates=(6, 12, 18), decoder_output_stride=(4,),
                       multi_grid=multi_grid)


# The zoo's "Checkpoints pretrained on ImageNet": (name, tarball, model_variant).
_IMAGENET = (
    ("xception_41_imagenet", "xception_41_2018_05_09.tar.gz", "xception_41"),
    ("xception_65_imagenet", "deeplabv3_xception_2018_01_04.tar.gz", "xception_65"),
    ("xception_65_imagenet_coco", "xception_65_coco_pretrained_2018_10_02.tar.gz",
     "xception_65"),
    ("xception_71_imagenet", "xception_71_2018_05_09.tar.gz", "xception_71"),
    ("resnet_v1_50_beta_imagenet", "resnet_v1_50_2018_05_04.tar.gz", "resnet_v1_50_beta"),
    ("resnet_v1_101_beta_imagenet", "resnet_v1_101_2018_05_04.tar.gz", "resnet_v1_101_beta"),
)


def _presets():
    entries = [
        Preset("mobilenetv2_dm05_coco_voc_trainaug", "pascal_voc_seg",
               "deeplabv3_mnv2_dm05_pascal_trainaug_2018_10_01.tar.gz",
               _mobilenet(21, 16, 0.5), 16, (1.0,), False, 70.19, published_madds=0.88),
        # The 8-bit models of g3doc/quantize.md: the float ones fine-tuned with
        # --quantize_delay_step=0 (contrib.quantize: per-tensor weight ranges).
        Preset("mobilenetv2_dm05_coco_voc_trainaug_8bit", "pascal_voc_seg",
               "deeplabv3_mnv2_dm05_pascal_train_aug_8bit_2019_04_26.tar.gz",
               _mobilenet(21, 16, 0.5, quantization="per_tensor"), 16, (1.0,), False, 69.65,
               published_madds=0.88),
        Preset("mobilenetv2_dm05_coco_voc_trainval", "pascal_voc_seg",
               "deeplabv3_mnv2_dm05_pascal_trainval_2018_10_01.tar.gz",
               _mobilenet(21, 8, 0.5), 8, (1.0,), False, 71.83, "test", 2.84),
        Preset("mobilenetv2_coco_voc_trainaug", "pascal_voc_seg",
               "deeplabv3_mnv2_pascal_train_aug_2018_01_29.tar.gz",
               _mobilenet(21, 16), 16, (1.0,), False, 75.32, published_madds=2.75),
        Preset("mobilenetv2_coco_voc_trainaug_8bit", "pascal_voc_seg",
               "deeplabv3_mnv2_pascal_train_aug_8bit_2019_04_26.tar.gz",
               _mobilenet(21, 16, quantization="per_tensor"), 16, (1.0,), False, 74.26,
               published_madds=2.75),
        Preset("mobilenetv2_coco_voc_trainval", "pascal_voc_seg",
               "deeplabv3_mnv2_pascal_trainval_2018_01_29.tar.gz",
               _mobilenet(21, 8), 8, _MULTI_SCALE_VOC, True, 80.25, "test", 152.59),
        Preset("xception65_coco_voc_trainaug", "pascal_voc_seg",
               "deeplabv3_pascal_train_aug_2018_01_04.tar.gz",
               _xception(21, 16), 16, (1.0,), False, 82.20, published_madds=54.17),
        Preset("xception65_coco_voc_trainval", "pascal_voc_seg",
               "deeplabv3_pascal_trainval_2018_01_04.tar.gz",
               _xception(21, 8), 8, _MULTI_SCALE_VOC, True, 87.80, "test", 3055.35),
        Preset("mobilenetv2_coco_cityscapes_trainfine", "cityscapes",
               "deeplabv3_mnv2_cityscapes_train_2018_02_05.tar.gz",
               _mobilenet(19, 16), 16, (1.0,), False, 70.71, published_madds=21.27),
        Preset("xception65_cityscapes_trainfine", "cityscapes",
               "deeplabv3_cityscapes_train_2018_02_06.tar.gz",
               _xception(19, 16), 16, (1.0,), False, 78.79, published_madds=418.64),
        Preset("xception71_dpc_cityscapes_trainfine", "cityscapes",
               "deeplab_cityscapes_xception71_trainfine_2018_09_08.tar.gz",
               _xception71_dpc(16), 16, (1.0,), False, 80.31, published_madds=502.07),
        Preset("xception71_dpc_cityscapes_trainval", "cityscapes",
               "deeplab_cityscapes_xception71_trainvalfine_2018_09_08.tar.gz",
               _xception71_dpc(8), 8, _MULTI_SCALE_CITY_DPC, True, 82.66, "test"),
        Preset("mobilenetv3_large_cityscapes_trainfine", "cityscapes",
               "deeplab_mnv3_large_cityscapes_trainfine_2019_11_15.tar.gz",
               _mobilenet_v3("mobilenet_v3_large_seg"), 32, (1.0,), False, 72.41,
               published_madds=15.95),
        Preset("mobilenetv3_small_cityscapes_trainfine", "cityscapes",
               "deeplab_mnv3_small_cityscapes_trainfine_2019_11_15.tar.gz",
               _mobilenet_v3("mobilenet_v3_small_seg"), 32, (1.0,), False, 68.99,
               published_madds=4.63),
        Preset("edgetpu_deeplab", "cityscapes", "edgetpu-deeplab_2020_03_09.tar.gz",
               _edgetpu(), 16, (1.0,), False, 74.1, published_madds=7.1),
        Preset("edgetpu_deeplab_slim", "cityscapes", "edgetpu-deeplab-slim_2020_03_09.tar.gz",
               _edgetpu(0.75, 128), 16, (1.0,), False, 73.2, published_madds=4.3),
        Preset("mobilenetv2_ade20k_train", "ade20k",
               "deeplabv3_mnv2_ade20k_train_2018_12_03.tar.gz",
               _mobilenet(151, 16, decoder=(4,)), 16, (1.0,), False, 32.04),
        Preset("xception65_ade20k_train", "ade20k",
               "deeplabv3_xception_ade20k_train_2018_05_29.tar.gz",
               _xception(151, 8), 8, _MULTI_SCALE_VOC, True, 45.65),
    ] + [Preset(name, "pascal_voc_seg", tarball, _imagenet(variant), 16, (1.0,), False, None,
                eval_split="-", imagenet_backbone=True) for name, tarball, variant in _IMAGENET]
    return {preset.name: preset for preset in entries}


PRESETS = _presets()

# Zoo entries this library does not build, with the reason.
def get(name: str) -> Preset:
    """The preset called ``name``; a clear error for an unknown name."""
    if name in PRESETS:
        return PRESETS[name]
    raise ConfigError(f"Unknown preset {name!r}. Known presets: {', '.join(PRESETS)}")


def table() -> str:
    """The presets as a text table."""
    lines = [f"{'name':40s} {'dataset':15s} {'OS':>3s} {'scales':22s} {'flip':5s} "
             f"{'mIoU':>6s} {'MAdds':>9s}  tarball"]
    for p in PRESETS.values():
        scales = ",".join(f"{s:g}" for s in p.eval_scales)
        madds = "-" if p.published_madds is None else f"{p.published_madds:g}B"
        miou = "-" if p.published_miou is None else f"{p.published_miou:.2f}"
        dataset = "imagenet" if p.imagenet_backbone else p.dataset
        split = "backbone only" if p.imagenet_backbone else p.eval_split
        lines.append(f"{p.name:40s} {dataset:15s} {p.eval_output_stride:3d} {scales:22s} "
                     f"{'yes' if p.add_flipped_images else 'no':5s} "
                     f"{miou:>6s} {madds:>9s}  {p.tarball} ({split})")
    return "\n".join(lines)


def list() -> None:  # noqa: A001 (keras-hub's name for a preset listing)
    """Prints ``table()``."""
    print(table())


def from_preset(model_class, name: str, checkpoint: Optional[str] = None, **overrides):
    """Builds the preset's ``DeepLab`` and loads its zoo checkpoint (``DeepLab.from_preset``).

    Args:
        model_class: the class to build (``deeplab_tf.DeepLab``; passed in so that this
            module does not import deeplab_tf.model, which imports it).
        name: str. A key of ``PRESETS``.
        checkpoint: str. Path of the zoo tarball, its extracted folder or a checkpoint
            prefix, as ``deeplab_tf.checkpoints.paths.resolve_checkpoint_path`` takes it (a
            tarball is extracted once beside itself). Required: nothing is downloaded; a
            missing file's error gives the URL to fetch.
        **overrides: ModelConfig fields to change (e.g. ``output_stride=8`` with matching
            ``atrous_rates``).

    Returns:
        DeepLab with the checkpoint's weights (an ImageNet preset: the backbone's; the heads
        as initialised).
    """
    from deeplab_tf.checkpoints.loading import load_checkpoint
    from deeplab_tf.checkpoints.paths import (CheckpointError,
                                              resolve_checkpoint_path)

    preset = get(name)
    needs = (f"Preset {name!r} needs its checkpoint: download {preset.url} and pass "
             f"checkpoint=<path of {preset.tarball} or its extracted folder>")
    if not checkpoint:
        raise FileNotFoundError(f"{needs}. Received: checkpoint={checkpoint!r}")
    try:
        prefix = resolve_checkpoint_path(checkpoint)
    except CheckpointError as error:
        if os.path.exists(checkpoint):  # there, but not a checkpoint: the resolver says why
            raise CheckpointError(f"{error} (preset {name!r}: {preset.tarball} from "
                                  f"{preset.url})") from None
        raise FileNotFoundError(f"{needs}. Received: checkpoint={checkpoint!r}") from None
    config = dataclasses.replace(preset.model_config, **overrides)
    model = model_class(config)
    load_checkpoint(model, prefix)
    return model


__all__ = ["Preset", "PRESETS", "get", "table", "list", "from_preset"]
del builtins
