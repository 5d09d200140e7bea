"""deeplab-vis: coloured predictions of a checkpoint over a dataset split or a folder of images.

    deeplab-vis --checkpoint_dir=train --vis_logdir=vis --dataset=pascal_voc_seg \\
        --dataset_dir=tfrecord --vis_split=val --max_number_of_iterations=1
    deeplab-vis --checkpoint_dir=train --vis_logdir=vis --vis_image_dir=photos/ \\
        --max_number_of_iterations=1

Flags as the original vis.py. Writes ``vis_logdir/segmentation_results/`` (``%06d_image``,
``%06d_prediction`` in the dataset's palette or ``--colormap_type``, ``%06d_overlay``, and
``%06d_truth`` when the split has labels) and, with ``--also_save_raw_predictions``,
``raw_segmentation_results/<image name>.png`` with raw label ids — for Cityscapes in the
official labelIds (trainId -> labelId), ready for the benchmark server. Inference is
deeplab-eval's (same scales, flip, padding and sliding window flags), so the pictures show
exactly what eval measured. ``--max_number_of_iterations=0`` (the original's default) repeats
for each new checkpoint until interrupted.
"""

from __future__ import annotations

import os
import sys

from deeplab_tf.cli import _eval_common
from deeplab_tf.cli._common import run_app
from deeplab_tf.cli.flags import (converters, data, given_on_command_line,
                                  inference, vis)
from deeplab_tf.errors import UserError
from deeplab_tf.fileio import check_writable


def _palette(info):
    from deeplab_tf.data import palettes

    return {
        None: lambda: info.palette,
        "pascal": palettes.pascal_palette,
        "cityscapes": palettes.cityscapes_palette,
        "ade20k": palettes.ade20k_palette,
    }[vis.COLORMAP_TYPE.value]()


def _image_dir():
    """--vis_image_dir, or the old spelling --image_dir given on the command line."""
    if vis.VIS_IMAGE_DIR.value:
        return vis.VIS_IMAGE_DIR.value
    if converters.IMAGE_DIR.value and given_on_command_line("image_dir"):
        print("note: --image_dir is deeplab-build-folder's flag; deeplab-vis reads it as "
              "--vis_image_dir (the old spelling)", file=sys.stderr)
        return converters.IMAGE_DIR.value
    return None


def main(argv):
    _eval_common.check_no_arguments(argv)
    vis_logdir, split = vis.VIS_LOGDIR.value, vis.VIS_SPLIT.value
    if not vis_logdir:
        raise UserError("--vis_logdir is required")
    eval_config = inference.eval_config(
        max_number_of_evaluations=vis.MAX_NUMBER_OF_ITERATIONS.value,
        eval_crop_size=vis.crop_size())
    check_writable(vis_logdir, f"--vis_logdir={vis_logdir}")
    directory = _eval_common.checkpoint_dir()
    image_dir = _image_dir()
    if image_dir:
        if not os.path.isdir(image_dir):
            raise UserError(f"--vis_image_dir={image_dir} is not a directory")
        info = data.dataset_info(require_dir=False)
    else:
        info = data.dataset_info()
        data_config = data.data_config(eval_split_flag="vis_split", eval_split=split)
        split = data_config.eval_split

    # TensorFlow and the model only once the flags are checked.
    from deeplab_tf.evaluation import visualize

    predictor = _eval_common.build_predictor(info.num_classes, directory, eval_config)
    palette = _palette(info)
    id_map = visualize.cityscapes_train_id_to_label_id() if info.name == "cityscapes" else None
    save_raw = vis.ALSO_SAVE_RAW_PREDICTIONS.value

    for path in _eval_common.checkpoints(eval_config.max_number_of_evaluations,
                                         eval_config.eval_interval_secs):
        predict = predictor.load(path)
        if image_dir:
            samples = visualize.folder_images(image_dir, pixels=predictor.spec.pixels,
                                              max_pixels=data.MAX_IMAGE_PIXELS.value)
        else:
            from deeplab_tf.data import pipeline

            samples = pipeline.eval_dataset(
                data_config, split, mean_pixel=predictor.pad_value,
                ignore_label=info.ignore_label,
                output_stride=predictor.model_config.output_stride,
                pixels=predictor.spec.pixels, require_label=False)
        count = visualize.visualize_samples(
            predict, samples, vis_logdir, palette, ignore_label=info.ignore_label,
            save_raw=save_raw, train_id_to_label_id=id_map)
        if count == 0:
            raise UserError(f"The {split} split of {info.name} yielded no images")
        print(f"Visualized {count} images with {path} in "
              f"{os.path.join(vis_logdir, visualize.SEMANTIC_PREDICTION_DIR)}"
              + (f" (raw predictions{' as Cityscapes labelIds' if id_map else ''} in "
                 f"{os.path.join(vis_logdir, visualize.RAW_SEMANTIC_PREDICTION_DIR)})"
                 if save_raw else ""), flush=True)


def run():
    run_app(main, "deeplab-vis")


if __name__ == "__main__":
    run()
