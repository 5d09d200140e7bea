"""deeplab-build-folder: any images folder + masks folder to TFRecord shards and manifest.json.

Images and masks are matched by file stem. Masks hold class indices (greyscale or palette
PNGs), or colours given --palette_file (one 'R G B' line per class; 'R G B VALUE' for an
explicit value such as the ignore label). Splits come from --split_lists or a seeded
--val_fraction. The manifest describes the dataset, so training needs only --dataset_dir.

Example:
  deeplab-build-folder --image_dir=photos --label_dir=masks --num_classes=3 \
      --palette_file=colors.txt --val_fraction=0.1 --output_dir=my_data
  deeplab-train --dataset_dir=my_data ...
"""

from __future__ import annotations

from absl import flags

from deeplab_tf.cli import _converter_flags as converter_flags
from deeplab_tf.cli._common import UserError, run_app

# allow_override: deeplab-vis defines --image_dir and the model flags --num_classes (same
# types); see _converter_flags.
_IMAGE_DIR = flags.DEFINE_string("image_dir", None, "Folder of images.", allow_override=True)
_LABEL_DIR = flags.DEFINE_string("label_dir", None, "Folder of masks (same stems as the images).")
_NUM_CLASSES = flags.DEFINE_integer(
    "num_classes", None, "Number of classes: mask values in [0, num_classes) or the ignore label.",
    allow_override=True)
_IGNORE_LABEL = flags.DEFINE_integer(
    "ignore_label", 255, "Label value ignored in training and evaluation.", allow_override=True)
_CLASS_NAMES = flags.DEFINE_list(
    "class_names", None, "Comma-separated class names; default class_0, class_1, ...")
_PALETTE_FILE = flags.DEFINE_string(
    "palette_file", None,
    "Masks are colours: file mapping colours to classes ('R G B' per class in order; "
    "'R G B VALUE' for an explicit label value).")
_SPLIT_LISTS = flags.DEFINE_list(
    "split_lists", None,
    "Split list files as NAME=PATH pairs, e.g. train=lists/train.txt,val=lists/val.txt (one "
    "stem per line). Default: split by --val_fraction.")
_VAL_FRACTION = flags.DEFINE_float(
    "val_fraction", 0.0, "Without --split_lists: fraction of the images put in 'val'.")
_SPLIT_SEED = flags.DEFINE_integer("split_seed", 0, "Seed of the --val_fraction draw.")
_DATASET_NAME = flags.DEFINE_string(
    "dataset_name", None, "Name recorded in the manifest; default: the output folder's name.")


def _split_lists():
    if not _SPLIT_LISTS.value:
        return None
    lists = {}
    for item in _SPLIT_LISTS.value:
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            raise UserError(f"--split_lists entries must be NAME=PATH. Received: {item!r}")
        lists[name] = path
    return lists


def main(argv):
    converter_flags.check_args(argv)
    converter_flags.require(_IMAGE_DIR, _LABEL_DIR, _NUM_CLASSES)
    from deeplab_tf.data.converters import folder

    manifest = folder.convert(
        _IMAGE_DIR.value, _LABEL_DIR.value, converter_flags.OUTPUT_DIR.value,
        num_classes=_NUM_CLASSES.value, ignore_label=_IGNORE_LABEL.value,
        class_names=_CLASS_NAMES.value, palette_file=_PALETTE_FILE.value,
        split_lists=_split_lists(), val_fraction=_VAL_FRACTION.value, seed=_SPLIT_SEED.value,
        dataset_name=_DATASET_NAME.value,
        **converter_flags.common_options(folder.DEFAULT_NUM_SHARDS))
    converter_flags.report(manifest, converter_flags.OUTPUT_DIR.value)
    return 0


def run():
    run_app(main)


if __name__ == "__main__":
    run()
