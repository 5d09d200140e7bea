"""deeplab-vis: coloured predictions of a checkpoint over a dataset split or a folder of images.

    deeplab-vis --checkpoint_dir=train --vis_logdir=vis --dataset=pascal_voc_seg \\
        --dataset_dir=tfrecord --vis_split=val --max_number_of_iterations=1
    deeplab-vis --checkpoint_dir=train --vis_logdir=vis --image_dir=photos/ \\
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

from absl import flags

from deeplab_tf.cli import _eval_common
from deeplab_tf.cli._common import UserError, run_app

_VIS_LOGDIR = flags.DEFINE_string("vis_logdir", None, "Where to write the images.")
_VIS_SPLIT = flags.DEFINE_string("vis_split", "val", "Which split of the dataset to visualize.")
_IMAGE_DIR = flags.DEFINE_string(
    "image_dir", None,
    "Visualize the images of this folder instead of a dataset split (--dataset then only "
    "gives the class count and palette; --dataset_dir is optional).")
_COLORMAP_TYPE = flags.DEFINE_enum(
    "colormap_type", None, ["pascal", "cityscapes", "ade20k"],
    "Colormap of the predictions; default: the dataset's palette.")
_ALSO_SAVE_RAW_PREDICTIONS = flags.DEFINE_boolean(
    "also_save_raw_predictions", False,
    "Also save raw label-id predictions (Cityscapes: labelIds for the benchmark server).")
_VIS_CROP_SIZE = flags.DEFINE_list(
    "vis_crop_size", None,
    "The original vis.py's name for --eval_crop_size (used instead when given).")
_MAX_NUMBER_OF_ITERATIONS = flags.DEFINE_integer(
    "max_number_of_iterations", 0,
    "Checkpoints to visualize; 0 or less: each new one until interrupted (the original's).")


def _palette(info):
    from deeplab_tf.data import palettes

    return {
        None: lambda: info.palette,
        "pascal": palettes.pascal_palette,
        "cityscapes": palettes.cityscapes_palette,
        "ade20k": palettes.ade20k_palette,
    }[_COLORMAP_TYPE.value]()


def main(argv):
    _eval_common.check_no_arguments(argv)
    if not _VIS_LOGDIR.value:
        raise UserError("--vis_logdir is required")
    fields = {"max_number_of_evaluations": _MAX_NUMBER_OF_ITERATIONS.value}
    if _VIS_CROP_SIZE.value:
        fields["eval_crop_size"] = _eval_common.size_flag("vis_crop_size", _VIS_CROP_SIZE.value)
    eval_config = _eval_common.eval_config_from_flags(**fields)
    directory = _eval_common.checkpoint_dir()
    image_dir = _IMAGE_DIR.value
    if image_dir:
        if not os.path.isdir(image_dir):
            raise UserError(f"--image_dir={image_dir} is not a directory")
        info = _eval_common.dataset_info(require_dir=False)
    else:
        data_config = _eval_common.data_config(_VIS_SPLIT.value)
        info = _eval_common.dataset_info()

    # TensorFlow and the model only once the flags are checked.
    from deeplab_tf.evaluation import visualize

    model, model_config, predict, pad_value = _eval_common.build_predictor(
        info.num_classes, directory, eval_config)
    palette = _palette(info)
    id_map = visualize.cityscapes_train_id_to_label_id() if info.name == "cityscapes" else None
    vis_logdir = _VIS_LOGDIR.value

    for path in _eval_common.checkpoints(eval_config.max_number_of_evaluations,
                                         eval_config.eval_interval_secs):
        _eval_common.restore(model, path)
        if image_dir:
            samples = visualize.folder_images(image_dir)
        else:
            from deeplab_tf.data import pipeline

            samples = pipeline.eval_dataset(
                data_config, _VIS_SPLIT.value, mean_pixel=pad_value,
                ignore_label=info.ignore_label, output_stride=model_config.output_stride)
        count = visualize.visualize_samples(
            predict, samples, vis_logdir, palette, ignore_label=info.ignore_label,
            save_raw=_ALSO_SAVE_RAW_PREDICTIONS.value, train_id_to_label_id=id_map)
        if count == 0:
            raise UserError(f"The {_VIS_SPLIT.value} split of {info.name} yielded no images")
        print(f"Visualized {count} images with {path} in "
              f"{os.path.join(vis_logdir, visualize.SEMANTIC_PREDICTION_DIR)}"
              + (f" (raw predictions{' as Cityscapes labelIds' if id_map else ''} in "
                 f"{os.path.join(vis_logdir, visualize.RAW_SEMANTIC_PREDICTION_DIR)})"
                 if _ALSO_SAVE_RAW_PREDICTIONS.value else ""), flush=True)


def run():
    run_app(main)


if __name__ == "__main__":
    run()
