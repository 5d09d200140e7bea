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

from deeplab_tf.cli import _convert_common as converter_flags
from deeplab_tf.cli._common import run_app
from deeplab_tf.cli.flags import converters, model
from deeplab_tf.errors import UserError

_IMAGE_DIR = converters.IMAGE_DIR
_LABEL_DIR = converters.LABEL_DIR
_IGNORE_LABEL = converters.IGNORE_LABEL
_CLASS_NAMES = converters.CLASS_NAMES
_PALETTE_FILE = converters.PALETTE_FILE
_SPLIT_LISTS = converters.SPLIT_LISTS
_VAL_FRACTION = converters.VAL_FRACTION
_SPLIT_SEED = converters.SPLIT_SEED
_DATASET_NAME = converters.DATASET_NAME
_NUM_CLASSES = model.NUM_CLASSES


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
    run_app(main, "deeplab-build-folder")


if __name__ == "__main__":
    run()
