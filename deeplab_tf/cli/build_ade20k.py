"""deeplab-build-ade20k: ADE20K (ADEChallengeData2016) to TFRecord shards and manifest.json.

151 classes, 0 ignored, splits train and val, as the original.

Example:
  deeplab-build-ade20k --ade20k_root=/data/ade20k --output_dir=/data/ade20k/tfrecord
"""

from __future__ import annotations

from deeplab_tf.cli import _convert_common as converter_flags
from deeplab_tf.cli.flags import converters
from deeplab_tf.cli._common import run_app

_ADE20K_ROOT = converters.ADE20K_ROOT


def main(argv):
    converter_flags.check_args(argv)
    converter_flags.require(_ADE20K_ROOT)
    from deeplab_tf.data.converters import ade20k

    manifest = ade20k.convert(
        _ADE20K_ROOT.value, converter_flags.OUTPUT_DIR.value,
        **converter_flags.common_options(ade20k.DEFAULT_NUM_SHARDS))
    converter_flags.report(manifest, converter_flags.OUTPUT_DIR.value)
    return 0


def run():
    run_app(main, "deeplab-build-ade20k")


if __name__ == "__main__":
    run()
