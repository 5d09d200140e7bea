"""deeplab-model-stats: parameters and multiply-adds of the model a flagfile describes.

    deeplab-model-stats --flagfile=configs/pascal_voc_seg/xception65_os16.flags --crop_size=513,513

Prints one line per figure; ``--json`` writes them to a file too.
"""

from __future__ import annotations

import json

from deeplab_tf.cli._common import run_app
from deeplab_tf.cli.flags import bench, data, export, model, parse_size
from deeplab_tf.errors import UserError
from deeplab_tf.fileio import atomic_write_text


def main(argv):
    if len(argv) > 1:
        raise UserError(f"Unexpected arguments: {' '.join(argv[1:])}")
    from deeplab_tf.model import model_stats

    height, width = parse_size(export.CROP_SIZE.value, "crop_size")
    config = model.model_config(num_classes=data.dataset_num_classes())
    stats = model_stats(config, height, width)
    print(f"model_variant: {config.model_variant}")
    print(f"input: {height}x{width}, classes: {config.num_classes}")
    print(f"params: {stats['params']:,}")
    print(f"multiply-adds: {stats['madds'] / 1e9:.2f}B")
    if bench.JSON.value:
        atomic_write_text(bench.JSON.value, json.dumps(
            {"config": config.to_dict(), "height": height, "width": width, **stats}, indent=2))


def run():
    run_app(main, "deeplab-model-stats")


if __name__ == "__main__":
    run()
