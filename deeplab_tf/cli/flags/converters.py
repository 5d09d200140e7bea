"""Flags of the ``deeplab-build-*`` dataset converters (deeplab-build-folder also reads
--num_classes, and every converter --max_image_pixels)."""

from __future__ import annotations

import os

from absl import flags

OUTPUT_DIR = flags.DEFINE_string(
    "output_dir", None, "Folder for the TFRecord shards and manifest.json (created if needed).")
NUM_SHARDS = flags.DEFINE_integer(
    "num_shards", None, "Shards per split; default: the original's count for the dataset.")
NUM_WORKERS = flags.DEFINE_integer(
    "num_workers", min(os.cpu_count() or 1, 8),
    "Worker processes converting in parallel (each writes whole shards); 1: in-process.")
SKIP_INVALID = flags.DEFINE_boolean(
    "skip_invalid", False,
    "Leave out examples whose image or label is invalid (listed in manifest.json) instead of "
    "stopping with an error.")
PROGRESS = flags.DEFINE_boolean("progress", True, "Show a progress bar on stderr.")

# deeplab-build-voc2012
VOC_ROOT = flags.DEFINE_string(
    "voc_root", None, "Folder holding VOCdevkit/ (or VOC2012/, or the VOC2012 folder itself).")
SBD_ROOT = flags.DEFINE_string(
    "sbd_root", None,
    "Optional SBD folder (holding benchmark_RELEASE/dataset, or that folder itself); adds the "
    "train_aug split.")
# deeplab-build-cityscapes
CITYSCAPES_ROOT = flags.DEFINE_string(
    "cityscapes_root", None, "Folder holding leftImg8bit/ and gtFine/ (and gtCoarse/).")
SPLITS = flags.DEFINE_list(
    "splits", None,
    "Cityscapes splits to write (default: train_fine,val_fine); coarse ones need gtCoarse/ "
    "and leftImg8bit/train_extra/.")
# deeplab-build-ade20k
ADE20K_ROOT = flags.DEFINE_string(
    "ade20k_root", None, "Folder holding ADEChallengeData2016/ (or that folder itself).")
# deeplab-build-folder
IMAGE_DIR = flags.DEFINE_string("image_dir", None, "deeplab-build-folder: folder of images.")
LABEL_DIR = flags.DEFINE_string("label_dir", None, "Folder of masks (same stems as the images).")
IGNORE_LABEL = flags.DEFINE_integer(
    "ignore_label", 255, "Label value ignored in training and evaluation.")
CLASS_NAMES = flags.DEFINE_list(
    "class_names", None, "Comma-separated class names; default class_0, class_1, ...")
PALETTE_FILE = flags.DEFINE_string(
    "palette_file", None,
    "Masks are colours: file mapping colours to classes ('R G B' per class in order; "
    "'R G B VALUE' for an explicit label value).")
SPLIT_LISTS = flags.DEFINE_list(
    "split_lists", None,
    "Split list files as NAME=PATH pairs, e.g. train=lists/train.txt,val=lists/val.txt (one "
    "stem per line). Default: split by --val_fraction.")
VAL_FRACTION = flags.DEFINE_float(
    "val_fraction", 0.0, "Without --split_lists: fraction of the images put in 'val'.")
SPLIT_SEED = flags.DEFINE_integer("split_seed", 0, "Seed of the --val_fraction draw.")
DATASET_NAME = flags.DEFINE_string(
    "dataset_name", None, "Name recorded in the manifest; default: the output folder's name.")
