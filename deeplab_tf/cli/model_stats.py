"""deeplab-model-stats: parameters and multiply-adds of the model a flagfile describes.

    deeplab-model-stats --flagfile=configs/pascal_voc_seg/xception65_os16.flags --crop_size=513,513

Prints one line per figure; ``--json`` writes them to a file too.
"""

from __future__ import annotations

import json

from absl import flags

from deeplab_tf.cli import _model_flags
from deeplab_tf.cli._common import (UserError, atomic_write_text, dataset_num_classes,
                                    parse_size, run_app)

_CROP_SIZE = flags.DEFINE_list("crop_size", "513,513", "Input size 'height,width'.")
_STATS_DATASET = flags.DEFINE_string(
    "dataset", "pascal_voc_seg", "Dataset name (gives the class count unless --num_classes).")
_JSON = flags.DEFINE_string("json", None, "Also write the figures to this JSON file.")


def main(argv):
    if len(argv) > 1:
        raise UserError(f"Unexpected arguments: {' '.join(argv[1:])}")
    from deeplab_tf.model import model_stats

    height, width = parse_size(_CROP_SIZE.value, "crop_size")
    config = _model_flags.model_config_from_flags(
        num_classes=dataset_num_classes(_STATS_DATASET.value))
    stats = model_stats(config, height, width)
    print(f"model_variant: {config.model_variant}")
    print(f"input: {height}x{width}, classes: {config.num_classes}")
    print(f"params: {stats['params']:,}")
    print(f"multiply-adds: {stats['madds'] / 1e9:.2f}B")
    if _JSON.value:
        atomic_write_text(_JSON.value, json.dumps(
            {"config": config.to_dict(), "height": height, "width": width, **stats}, indent=2))


def run():
    run_app(main)


if __name__ == "__main__":
    run()
