"""deeplab-build-cityscapes: Cityscapes to TFRecord shards and manifest.json.

Reads leftImg8bit/ and gtFine/ (gtCoarse/ for the coarse splits) *_labelIds.png and maps label
ids to the 19 train ids itself (no *_labelTrainIds.png needed).

Example:
  deeplab-build-cityscapes --cityscapes_root=/data/cityscapes \
      --output_dir=/data/cityscapes/tfrecord --splits=train_fine,val_fine
"""

from __future__ import annotations

from deeplab_tf.cli import _convert_common as converter_flags
from deeplab_tf.cli.flags import converters
from deeplab_tf.cli._common import run_app
from deeplab_tf.data.converters import cityscapes

_CITYSCAPES_ROOT = converters.CITYSCAPES_ROOT
_SPLITS = converters.SPLITS


def main(argv):
    converter_flags.check_args(argv)
    converter_flags.require(_CITYSCAPES_ROOT)
    manifest = cityscapes.convert(
        _CITYSCAPES_ROOT.value, converter_flags.OUTPUT_DIR.value,
        splits=_SPLITS.value or list(cityscapes.DEFAULT_SPLITS),
        **converter_flags.common_options(cityscapes.DEFAULT_NUM_SHARDS))
    converter_flags.report(manifest, converter_flags.OUTPUT_DIR.value)
    return 0


def run():
    run_app(main, "deeplab-build-cityscapes")


if __name__ == "__main__":
    run()
