"""deeplab-vis's own flags (the original vis.py's, plus a folder-of-images mode).

``--vis_image_dir`` visualizes a folder of images instead of a dataset split. The old
spelling ``--image_dir`` (deeplab-build-folder's flag) is still read by deeplab-vis when it
is given on the command line, with a notice.
"""

from __future__ import annotations

from absl import flags

from deeplab_tf.cli.flags import inference
from deeplab_tf.cli.flags.values import default, parse_size, size_default
from deeplab_tf.config import EvalConfig

VIS_LOGDIR = flags.DEFINE_string("vis_logdir", None, "Where to write the images.")
VIS_SPLIT = flags.DEFINE_string("vis_split", "val", "Which split of the dataset to visualize.")
VIS_IMAGE_DIR = flags.DEFINE_string(
    "vis_image_dir", None,
    "Visualize the images of this folder instead of a dataset split (--dataset then only "
    "gives the class count and palette; --dataset_dir is optional).")
COLORMAP_TYPE = flags.DEFINE_enum(
    "colormap_type", None, ["pascal", "cityscapes", "ade20k"],
    "Colormap of the predictions; default: the dataset's palette.")
ALSO_SAVE_RAW_PREDICTIONS = flags.DEFINE_boolean(
    "also_save_raw_predictions", False,
    "Also save raw label-id predictions (Cityscapes: labelIds for the benchmark server).")
VIS_CROP_SIZE = flags.DEFINE_multi_string(
    "vis_crop_size", size_default(EvalConfig, "eval_crop_size"),
    "The original vis.py's --eval_crop_size: smaller images are padded to it. When not given, "
    "--eval_crop_size (a recipe's) is used.")
MAX_NUMBER_OF_ITERATIONS = flags.DEFINE_integer(
    "max_number_of_iterations", default(EvalConfig, "max_number_of_evaluations"),
    "Checkpoints to visualize; 0 or less: each new one until interrupted (the original's).")


def crop_size():
    """--vis_crop_size when given, else --eval_crop_size."""
    if VIS_CROP_SIZE.present:
        return parse_size(VIS_CROP_SIZE.value, "vis_crop_size")
    return parse_size(inference.EVAL_CROP_SIZE.value, "eval_crop_size")
