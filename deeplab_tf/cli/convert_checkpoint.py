"""deeplab-convert-checkpoint: an original TF1 DeepLab checkpoint -> this project's format.

    deeplab-convert-checkpoint --flagfile=configs/pascal_voc_seg/xception65_os16.flags \\
        --tf1_checkpoint=deeplabv3_pascal_train_aug/model.ckpt --output=converted/

Builds the model that the model flags describe, loads the checkpoint by original variable
names (every shape checked), and writes ``OUTPUT/ckpt-0`` plus ``OUTPUT/config.json``: a
directory that ``--tf_initial_checkpoint``, ``--checkpoint_dir`` and ``deeplab-export`` accept.
The class count defaults to the checkpoint's logits. The output directory appears only when
complete.
"""

from __future__ import annotations

import os
import shutil
import tempfile

from absl import logging

from deeplab_tf.cli._common import run_app, writing
from deeplab_tf.cli.flags import convert, model, train
from deeplab_tf.errors import UserError
from deeplab_tf.fileio import check_writable

_TF1_CHECKPOINT = convert.TF1_CHECKPOINT
_OUTPUT = convert.OUTPUT
_INITIALIZE_LAST_LAYER = train.INITIALIZE_LAST_LAYER
_LAST_LAYERS_CONTAIN_LOGITS_ONLY = train.LAST_LAYERS_CONTAIN_LOGITS_ONLY


def _checkpoint_num_classes(path):
    from deeplab_tf.checkpoints.loading import logits_classes, variable_shapes

    return logits_classes(variable_shapes(path))


def convert(tf1_checkpoint, output, model_config, initialize_last_layer=True,
            last_layers_contain_logits_only=False):
    """Converts and writes ``output/``; returns the LoadReport."""
    from deeplab_tf.checkpoints import run_dir
    from deeplab_tf.checkpoints.loading import (load_original_checkpoint,
                                                save_model_checkpoint)
    from deeplab_tf.model import build_model

    if os.path.exists(output) and (not os.path.isdir(output) or os.listdir(output)):
        raise UserError(f"--output={output} already exists and is not an empty directory")
    model = build_model(model_config)
    report = load_original_checkpoint(model, tf1_checkpoint, initialize_last_layer,
                                      last_layers_contain_logits_only)
    parent = os.path.dirname(os.path.abspath(output))
    os.makedirs(parent, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=os.path.basename(os.path.abspath(output)) + ".tmp-",
                               dir=parent)
    try:
        with writing("the converted checkpoint", output):
            save_model_checkpoint(model, staging, step=0)
            run_dir.write_converted(staging, model_config, os.path.abspath(report.path))
        if os.path.isdir(output):
            os.rmdir(output)  # empty, checked above
        os.replace(staging, output)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return report


def main(argv):
    if len(argv) > 1:
        raise UserError(f"Unexpected arguments: {' '.join(argv[1:])}")
    if not _TF1_CHECKPOINT.value:
        raise UserError("--tf1_checkpoint is required")
    if not _OUTPUT.value:
        raise UserError("--output is required")
    check_writable(_OUTPUT.value, f"--output={_OUTPUT.value}")
    from deeplab_tf.checkpoints.paths import resolve_checkpoint_path

    tf1_checkpoint = resolve_checkpoint_path(_TF1_CHECKPOINT.value)
    num_classes = _checkpoint_num_classes(tf1_checkpoint)
    from deeplab_tf.checkpoints.quantization import config_for_checkpoint

    # The zoo's 8-bit checkpoints hold quantization ranges: the converted model keeps them.
    config = config_for_checkpoint(model.model_config(num_classes=num_classes), tf1_checkpoint)
    report = convert(tf1_checkpoint, _OUTPUT.value, config,
                     _INITIALIZE_LAST_LAYER.value, _LAST_LAYERS_CONTAIN_LOGITS_ONLY.value)
    logging.info("%s", report.summary())
    print(report.summary())
    print(f"Wrote {os.path.join(_OUTPUT.value, 'ckpt-0')} and config.json")


def run():
    run_app(main, "deeplab-convert-checkpoint")


if __name__ == "__main__":
    run()
