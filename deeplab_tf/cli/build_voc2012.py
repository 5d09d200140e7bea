"""deeplab-build-voc2012: PASCAL VOC 2012 (+ SBD) to TFRecord shards and manifest.json.

Splits train, val, trainval (from ImageSets/Segmentation) and, with --sbd_root, train_aug
(10,582 images). Palette PNG labels are read as class indices; 255 boundaries are kept.

Example:
  deeplab-build-voc2012 --voc_root=/data/VOCdevkit --sbd_root=/data/benchmark_RELEASE \
      --output_dir=/data/pascal_voc_seg/tfrecord
"""

from __future__ import annotations

from deeplab_tf.cli import _convert_common as converter_flags
from deeplab_tf.cli.flags import converters
from deeplab_tf.cli._common import run_app

_VOC_ROOT = converters.VOC_ROOT
_SBD_ROOT = converters.SBD_ROOT


def main(argv):
    converter_flags.check_args(argv)
    converter_flags.require(_VOC_ROOT)
    from deeplab_tf.data.converters import voc2012

    manifest = voc2012.convert(
        _VOC_ROOT.value, converter_flags.OUTPUT_DIR.value, sbd_root=_SBD_ROOT.value,
        **converter_flags.common_options(voc2012.DEFAULT_NUM_SHARDS))
    converter_flags.report(manifest, converter_flags.OUTPUT_DIR.value)
    return 0


def run():
    run_app(main, "deeplab-build-voc2012")


if __name__ == "__main__":
    run()
