"""The original's documented commands run as written, with only ``python X.py`` replaced.

``research/deeplab/local_test.sh`` of the original trains 10 steps from the model-zoo tarball
``deeplabv3_pascal_train_aug_2018_01_04.tar.gz``, evaluates, visualises and exports a
``frozen_inference_graph.pb``; the g3doc pages (pascal.md, cityscapes.md, ade20k.md) show the
train / eval / vis commands per dataset. Here everything those commands expect is generated
(a miniature PASCAL VOC converted to TFRecord, a zoo tarball in the original's variable naming
whose data shard is renamed to ``model.ckpt`` as local_test.sh does), the commands run through
bash with the script name replaced by the console script, and the export is read by the demo
notebook's client code (GraphDef + ``Session.run('SemanticPredictions:0', ...)``).

The default run uses the commands at a 65x65 crop and 2 training steps (the only change: the
numbers in the crop flags and NUM_ITERATIONS); the verbatim 513x513 runs are in the slow set.
"""

import os
import subprocess
import sys
import tarfile

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from helpers import random_original_values, write_tf1_checkpoint
from miniature import make_voc

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.dirname(sys.executable)

# After the data download, local_test.sh runs these lines (script names replaced; the wget of
# the tarball replaced by the generated one already in INIT_FOLDER).
LOCAL_TEST_SH = r'''
set -e
cd "${INIT_FOLDER}"
tar -xf "${TF_INIT_CKPT}"
if [ ! -e "${INIT_FOLDER}/deeplabv3_pascal_train_aug/model.ckpt" ]; then
  if [ -e "${INIT_FOLDER}/deeplabv3_pascal_train_aug/model.ckpt.data-00000-of-00001" ]; then
    mv "${INIT_FOLDER}/deeplabv3_pascal_train_aug/model.ckpt.data-00000-of-00001" "${INIT_FOLDER}/deeplabv3_pascal_train_aug/model.ckpt"
  fi
fi
cd "${CURRENT_DIR}"

deeplab-train \
  --logtostderr \
  --train_split="trainval" \
  --model_variant="xception_65" \
  --atrous_rates=6 \
  --atrous_rates=12 \
  --atrous_rates=18 \
  --output_stride=16 \
  --decoder_output_stride=4 \
  --train_crop_size="513,513" \
  --train_batch_size=4 \
  --training_number_of_steps="${NUM_ITERATIONS}" \
  --fine_tune_batch_norm=true \
  --tf_initial_checkpoint="${INIT_FOLDER}/deeplabv3_pascal_train_aug/model.ckpt" \
  --train_logdir="${TRAIN_LOGDIR}" \
  --dataset_dir="${PASCAL_DATASET}"

deeplab-eval \
  --logtostderr \
  --eval_split="val" \
  --model_variant="xception_65" \
  --atrous_rates=6 \
  --atrous_rates=12 \
  --atrous_rates=18 \
  --output_stride=16 \
  --decoder_output_stride=4 \
  --eval_crop_size="513,513" \
  --checkpoint_dir="${TRAIN_LOGDIR}" \
  --eval_logdir="${EVAL_LOGDIR}" \
  --dataset_dir="${PASCAL_DATASET}" \
  --max_number_of_evaluations=1

deeplab-vis \
  --logtostderr \
  --vis_split="val" \
  --model_variant="xception_65" \
  --atrous_rates=6 \
  --atrous_rates=12 \
  --atrous_rates=18 \
  --output_stride=16 \
  --decoder_output_stride=4 \
  --vis_crop_size="513,513" \
  --checkpoint_dir="${TRAIN_LOGDIR}" \
  --vis_logdir="${VIS_LOGDIR}" \
  --dataset_dir="${PASCAL_DATASET}" \
  --max_number_of_iterations=1

CKPT_PATH="${TRAIN_LOGDIR}/model.ckpt-${NUM_ITERATIONS}"
EXPORT_PATH="${EXPORT_DIR}/frozen_inference_graph.pb"

deeplab-export \
  --logtostderr \
  --checkpoint_path="${CKPT_PATH}" \
  --export_path="${EXPORT_PATH}" \
  --model_variant="xception_65" \
  --atrous_rates=6 \
  --atrous_rates=12 \
  --atrous_rates=18 \
  --output_stride=16 \
  --decoder_output_stride=4 \
  --num_classes=21 \
  --crop_size=513 \
  --crop_size=513 \
  --inference_scales=1.0
'''


# local_test.sh's model: the zoo tarball's checkpoint and the export's flags.
ZOO_MODEL = dict(model_variant="xception_65", output_stride=16, atrous_rates=(6, 12, 18),
                 decoder_output_stride=(4,), num_classes=21)


def _zoo_model():
    from deeplab_tf import ModelConfig, build_model

    return build_model(ModelConfig(**ZOO_MODEL))


def _zoo_tarball(folder, model=None):
    """deeplabv3_pascal_train_aug_2018_01_04.tar.gz as the model zoo ships it (random weights
    for ``model``'s variables; gzip level 0: the random floats would not compress anyway)."""
    values = random_original_values(model or _zoo_model(), seed=0)
    staging = os.path.join(folder, "staging", "deeplabv3_pascal_train_aug")
    os.makedirs(staging)
    write_tf1_checkpoint(os.path.join(staging, "model.ckpt"), values)
    with open(os.path.join(staging, "frozen_inference_graph.pb"), "wb") as f:
        f.write(tf.compat.v1.GraphDef().SerializeToString())
    path = os.path.join(folder, "deeplabv3_pascal_train_aug_2018_01_04.tar.gz")
    with tarfile.open(path, "w:gz", compresslevel=0) as tar:
        tar.add(staging, arcname="deeplabv3_pascal_train_aug")
    return path


def _environment(root, num_iterations):
    dataset = os.path.join(root, "tfrecord")
    voc = make_voc(os.path.join(root, "raw"), num_train=3, num_val=2, size=(40, 50), seed=3)
    subprocess.run([os.path.join(BIN, "deeplab-build-voc2012"), f"--voc_root={voc['root']}",
                    f"--output_dir={dataset}"], check=True, capture_output=True, text=True)
    init = os.path.join(root, "init_models")
    os.makedirs(init)
    tarball = _zoo_tarball(init)
    exp = os.path.join(root, "exp", "train_on_trainval_set")
    env = dict(os.environ, PATH=BIN + os.pathsep + os.environ["PATH"], CURRENT_DIR=root,
               INIT_FOLDER=init, TF_INIT_CKPT=os.path.basename(tarball), PASCAL_DATASET=dataset,
               NUM_ITERATIONS=str(num_iterations))
    for name in ("train", "eval", "vis", "export"):
        env[f"{name.upper()}_LOGDIR" if name != "export" else "EXPORT_DIR"] = os.path.join(exp, name)
        os.makedirs(os.path.join(exp, name))
    return env, voc


def _notebook_client(graph_path, image):
    """deeplab_demo.ipynb's DeepLabModel: GraphDef, import with name='', Session.run."""
    graph = tf.Graph()
    with open(graph_path, "rb") as f:
        graph_def = tf.compat.v1.GraphDef.FromString(f.read())
    with graph.as_default():
        tf.compat.v1.import_graph_def(graph_def, name="")
    with tf.compat.v1.Session(graph=graph) as session:
        return session.run("SemanticPredictions:0", feed_dict={"ImageTensor:0": [np.asarray(image)]})


def _check_interface(graph_path, image):
    """The original export's names and dtypes, read from the GraphDef and a run."""
    with open(graph_path, "rb") as f:
        graph_def = tf.compat.v1.GraphDef.FromString(f.read())
    nodes = {node.name: node for node in graph_def.node}
    assert nodes["ImageTensor"].op == "Placeholder"
    assert nodes["ImageTensor"].attr["dtype"].type == tf.uint8.as_datatype_enum
    graph = tf.Graph()
    with graph.as_default():
        tf.compat.v1.import_graph_def(graph_def, name="")
    assert graph.get_tensor_by_name("SemanticPredictions:0").dtype == tf.int32
    assert graph.get_tensor_by_name("SemanticProbabilities:0").dtype == tf.float32
    with tf.compat.v1.Session(graph=graph) as session:
        labels, probabilities = session.run(
            ["SemanticPredictions:0", "SemanticProbabilities:0"],
            feed_dict={"ImageTensor:0": [np.asarray(image)]})
    assert labels.dtype == np.int32 and labels.shape == (1,) + np.asarray(image).shape[:2]
    assert probabilities.dtype == np.float32


def _project_labels(checkpoint, image, crop, model=None):
    """The project's own inference of the exported computation, in this process (in
    ``model``, a model of ZOO_MODEL, if given: every variable is loaded from ``checkpoint``)."""
    from deeplab_tf import ModelConfig
    from deeplab_tf.checkpoints.strict import load_for_inference
    from deeplab_tf.config import ExportConfig
    from deeplab_tf.inference import InferenceSpec, predict, prepare_model

    config = ModelConfig(**ZOO_MODEL)
    model = model or _zoo_model()
    load_for_inference(model, checkpoint)
    spec = InferenceSpec.from_export_config(
        config, ExportConfig(format="frozen_graph", crop_size=(crop, crop), inference_scales=(1.0,)))
    images = np.asarray(image, np.uint8)[None]
    return np.asarray(predict(prepare_model(model, spec, config), images, spec)["labels"])


def _bash(script, env):
    result = subprocess.run(["bash", "-c", script], env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout + result.stderr


def _run_local_test(tmp_path, crop, num_iterations):
    env, voc = _environment(str(tmp_path), num_iterations)
    output = _bash(LOCAL_TEST_SH.replace("513", str(crop)), env)
    train_logdir = env["TRAIN_LOGDIR"]
    prefix = os.path.join(train_logdir, f"model.ckpt-{num_iterations}")
    assert os.path.exists(prefix + ".index")
    assert tf.train.get_checkpoint_state(train_logdir).model_checkpoint_path.endswith(
        f"model.ckpt-{num_iterations}")
    assert "mIoU" in output
    assert os.listdir(env["EVAL_LOGDIR"]), "eval wrote nothing"
    pngs = [name for _, _, files in os.walk(env["VIS_LOGDIR"]) for name in files
            if name.endswith(".png")]
    assert pngs, "vis wrote no images"
    graph_path = os.path.join(env["EXPORT_DIR"], "frozen_inference_graph.pb")
    image = np.asarray(Image.open(voc["image_paths"][voc["splits"]["val"][0]]).convert("RGB"))
    _check_interface(graph_path, image)
    labels = _notebook_client(graph_path, image)
    np.testing.assert_array_equal(labels, _project_labels(prefix, image, crop))


# The default run: local_test.sh's tarball lines and its export command, pointed at the zoo
# checkpoint itself (the model-zoo workflow: export a downloaded checkpoint), at a 65 px crop.
ZOO_EXPORT_SH = LOCAL_TEST_SH.split("deeplab-train")[0] + "\n" + LOCAL_TEST_SH[
    LOCAL_TEST_SH.index("EXPORT_PATH="):].replace(
    "${CKPT_PATH}", "${INIT_FOLDER}/deeplabv3_pascal_train_aug/model.ckpt")


def test_zoo_tarball_export_and_notebook_client(tmp_path):
    init = os.path.join(str(tmp_path), "init_models")
    os.makedirs(init)
    model = _zoo_model()  # names the tarball's variables, then predicts from its checkpoint
    tarball = _zoo_tarball(init, model)
    export_dir = os.path.join(str(tmp_path), "export")
    env = dict(os.environ, PATH=BIN + os.pathsep + os.environ["PATH"], CURRENT_DIR=str(tmp_path),
               INIT_FOLDER=init, TF_INIT_CKPT=os.path.basename(tarball), EXPORT_DIR=export_dir)
    os.makedirs(export_dir)
    _bash(ZOO_EXPORT_SH.replace("513", "65"), env)
    graph_path = os.path.join(export_dir, "frozen_inference_graph.pb")
    image = np.random.default_rng(5).integers(0, 256, (47, 58, 3), dtype=np.uint8)
    _check_interface(graph_path, image)
    labels = _notebook_client(graph_path, image)
    checkpoint = os.path.join(init, "deeplabv3_pascal_train_aug", "model.ckpt")
    np.testing.assert_array_equal(labels, _project_labels(checkpoint, image, 65, model))


@pytest.mark.slow
def test_local_test_sh_at_a_tiny_crop(tmp_path):
    _run_local_test(tmp_path, crop=65, num_iterations=2)


@pytest.mark.slow
def test_local_test_sh_verbatim(tmp_path):
    _run_local_test(tmp_path, crop=513, num_iterations=10)
