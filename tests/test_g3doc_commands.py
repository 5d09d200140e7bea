"""The g3doc pages' train / eval / vis commands (pascal.md, cityscapes.md, ade20k.md) run as
written, with only ``python deeplab/X.py`` replaced by the console script.

The commands are the pages' text, at their full crop sizes (513x513, 769x769, 1025x2049) with
xception_65, on miniature datasets in the real layouts converted by this project's converters.
The pages' commands have no step or evaluation limit (the original trains 30000 / 90000 /
150000 steps and evaluates every new checkpoint until stopped), so each one is run as a user
runs it and then stopped as a user or a cluster does, with SIGTERM: training once its first step
is under way (the trainer saves a checkpoint after the current step and exits), eval once it
has printed its mIoU, vis once it has written its images. Heavy (xception_65 at full size on
the CPU): the slow set.
"""

import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
import tensorflow as tf

from helpers import random_original_values, write_tf1_checkpoint
from miniature import make_ade20k, make_cityscapes, make_voc

BIN = os.path.dirname(sys.executable)

PASCAL_TRAIN = r'''
deeplab-train \
    --logtostderr \
    --train_split="train" \
    --model_variant="xception_65" \
    --atrous_rates=6 \
    --atrous_rates=12 \
    --atrous_rates=18 \
    --output_stride=16 \
    --decoder_output_stride=4 \
    --train_crop_size=513 \
    --train_crop_size=513 \
    --train_batch_size=1 \
    --tf_initial_checkpoints=${PATH_TO_INITIAL_CHECKPOINT} \
    --train_logdir=${PATH_TO_TRAIN_DIR} \
    --dataset_dir=${PATH_TO_DATASET}
'''

PASCAL_EVAL = r'''
deeplab-eval \
    --logtostderr \
    --eval_split="val" \
    --model_variant="xception_65" \
    --atrous_rates=6 \
    --atrous_rates=12 \
    --atrous_rates=18 \
    --output_stride=16 \
    --decoder_output_stride=4 \
    --eval_crop_size=513 \
    --eval_crop_size=513 \
    --checkpoint_dir=${PATH_TO_CHECKPOINT} \
    --eval_logdir=${PATH_TO_EVAL_DIR} \
    --dataset_dir=${PATH_TO_DATASET}
'''

PASCAL_VIS = r'''
deeplab-vis \
    --logtostderr \
    --vis_split="val" \
    --model_variant="xception_65" \
    --atrous_rates=6 \
    --atrous_rates=12 \
    --atrous_rates=18 \
    --output_stride=16 \
    --decoder_output_stride=4 \
    --vis_crop_size=513 \
    --vis_crop_size=513 \
    --checkpoint_dir=${PATH_TO_CHECKPOINT} \
    --vis_logdir=${PATH_TO_VIS_DIR} \
    --dataset_dir=${PATH_TO_DATASET}
'''

CITYSCAPES_TRAIN = r'''
deeplab-train \
    --logtostderr \
    --training_number_of_steps=90000 \
    --train_split="train" \
    --model_variant="xception_65" \
    --atrous_rates=6 \
    --atrous_rates=12 \
    --atrous_rates=18 \
    --output_stride=16 \
    --decoder_output_stride=4 \
    --train_crop_size=769 \
    --train_crop_size=769 \
    --train_batch_size=1 \
    --dataset="cityscapes" \
    --tf_initial_checkpoint=${PATH_TO_INITIAL_CHECKPOINT} \
    --train_logdir=${PATH_TO_TRAIN_DIR} \
    --dataset_dir=${PATH_TO_DATASET}
'''

CITYSCAPES_EVAL = r'''
deeplab-eval \
    --logtostderr \
    --eval_split="val" \
    --model_variant="xception_65" \
    --atrous_rates=6 \
    --atrous_rates=12 \
    --atrous_rates=18 \
    --output_stride=16 \
    --decoder_output_stride=4 \
    --eval_crop_size=1025 \
    --eval_crop_size=2049 \
    --dataset="cityscapes" \
    --checkpoint_dir=${PATH_TO_CHECKPOINT} \
    --eval_logdir=${PATH_TO_EVAL_DIR} \
    --dataset_dir=${PATH_TO_DATASET}
'''

CITYSCAPES_VIS = r'''
deeplab-vis \
    --logtostderr \
    --vis_split="val" \
    --model_variant="xception_65" \
    --atrous_rates=6 \
    --atrous_rates=12 \
    --atrous_rates=18 \
    --output_stride=16 \
    --decoder_output_stride=4 \
    --vis_crop_size=1025 \
    --vis_crop_size=2049 \
    --dataset="cityscapes" \
    --colormap_type="cityscapes" \
    --checkpoint_dir=${PATH_TO_CHECKPOINT} \
    --vis_logdir=${PATH_TO_VIS_DIR} \
    --dataset_dir=${PATH_TO_DATASET}
'''

ADE20K_TRAIN = r'''
deeplab-train \
    --logtostderr \
    --training_number_of_steps=150000 \
    --train_split="train" \
    --model_variant="xception_65" \
    --atrous_rates=6 \
    --atrous_rates=12 \
    --atrous_rates=18 \
    --output_stride=16 \
    --decoder_output_stride=4 \
    --train_crop_size=513 \
    --train_crop_size=513 \
    --train_batch_size=4 \
    --min_resize_value=513 \
    --max_resize_value=513 \
    --resize_factor=16 \
    --dataset="ade20k" \
    --tf_initial_checkpoint=${PATH_TO_INITIAL_CHECKPOINT} \
    --train_logdir=${PATH_TO_TRAIN_DIR}\
    --dataset_dir=${PATH_TO_DATASET}
'''


def _imagenet_checkpoint(folder):
    """An ImageNet-pretrained-style initial checkpoint: the xception_65 backbone's variables
    only, in the original's naming (the pages start from such a checkpoint)."""
    from deeplab_tf import ModelConfig, build_model

    model = build_model(ModelConfig(model_variant="xception_65", output_stride=16,
                                    atrous_rates=(6, 12, 18), decoder_output_stride=(4,),
                                    num_classes=21))
    values = {name: value for name, value in random_original_values(model, seed=1).items()
              if name.startswith("xception_65/")}
    assert values, "no backbone variables"
    os.makedirs(folder)
    prefix = os.path.join(folder, "model.ckpt")
    write_tf1_checkpoint(prefix, values)
    return prefix


def _convert(script, *args):
    result = subprocess.run([os.path.join(BIN, script), *args], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]


class _Job:
    """A command run through bash; its output collected as it comes."""

    def __init__(self, script, env):
        self.lines = []
        self.process = subprocess.Popen(
            ["bash", "-c", "exec " + script.strip()], env=env, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self):
        for line in self.process.stdout:
            self.lines.append(line)

    @property
    def output(self):
        return "".join(self.lines)

    def run_until(self, done, timeout):
        """Waits for ``done()``, then sends SIGTERM as a user stopping the job would; fails if
        the job exits before that or ``done`` takes longer than ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while not done():
            if self.process.poll() is not None:
                self._reader.join(10)
                pytest.fail(f"exited with {self.process.returncode} before done:\n"
                            + self.output[-3000:])
            if time.monotonic() > deadline:
                self.process.kill()
                pytest.fail("timed out:\n" + self.output[-3000:])
            time.sleep(0.5)
        self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(timeout=600)
        self._reader.join(10)
        return code


def _env(**paths):
    return dict(os.environ, PATH=BIN + os.pathsep + os.environ["PATH"], **paths)


def _train_one_step(script, env):
    """Runs a page's training command until its first step has begun, then stops it: the
    trainer must save ``model.ckpt-<step>`` and exit 0."""
    job = _Job(script, env)
    code = job.run_until(lambda: "Training steps" in job.output, timeout=1800)
    assert code == 0, job.output[-3000:]
    logdir = env["PATH_TO_TRAIN_DIR"]
    state = tf.train.get_checkpoint_state(logdir)
    assert state is not None, job.output[-3000:]
    assert os.path.basename(state.model_checkpoint_path).startswith("model.ckpt-")
    assert os.path.exists(state.model_checkpoint_path + ".index")
    return state.model_checkpoint_path


def _evaluate(script, env, num_classes):
    job = _Job(script, env)
    job.run_until(lambda: "mIoU:" in job.output, timeout=1800)
    miou = float(job.output.split("mIoU:")[1].split()[0])
    assert 0.0 <= miou <= 1.0
    assert os.listdir(env["PATH_TO_EVAL_DIR"]), "eval wrote nothing"
    return miou, job.output


def _visualise(script, env, count):
    vis_dir = env["PATH_TO_VIS_DIR"]

    def pngs():
        return [os.path.join(d, n) for d, _, names in os.walk(vis_dir) for n in names
                if n.endswith(".png") and not n.startswith(".")]

    job = _Job(script, env)
    job.run_until(lambda: len(pngs()) >= count, timeout=1800)
    return pngs()


def _trained_from(checkpoint, initial, num_classes):
    """The run started from the initial checkpoint: its backbone moved from ``initial``'s
    values by at most one step's update (not re-initialised), and its logits have
    ``num_classes`` channels."""
    from deeplab_tf import ModelConfig, build_model
    from deeplab_tf.checkpoints.strict import load_for_inference
    from deeplab_tf.modeling.layers.original_layer import original_variable_map

    model = build_model(ModelConfig(model_variant="xception_65", output_stride=16,
                                    atrous_rates=(6, 12, 18), decoder_output_stride=(4,),
                                    num_classes=num_classes))
    load_for_inference(model, checkpoint)
    variables = original_variable_map(model)
    assert variables["logits/semantic/weights"].shape[-1] == num_classes
    name = "xception_65/entry_flow/conv1_1/weights"
    start = tf.train.load_checkpoint(initial).get_tensor(name)
    now = variables[name].numpy()
    assert np.max(np.abs(now - start)) < 0.05 * np.max(np.abs(start)) + 1e-3


@pytest.mark.slow
def test_pascal_md_train_eval_vis(tmp_path):
    root = str(tmp_path)
    voc = make_voc(os.path.join(root, "raw"), num_train=2, num_val=1, size=(40, 50), seed=4)
    dataset = os.path.join(root, "tfrecord")
    _convert("deeplab-build-voc2012", f"--voc_root={voc['root']}", f"--output_dir={dataset}")
    initial = _imagenet_checkpoint(os.path.join(root, "init"))
    exp = os.path.join(root, "exp", "train_on_train_set")
    env = _env(PATH_TO_INITIAL_CHECKPOINT=initial, PATH_TO_TRAIN_DIR=os.path.join(exp, "train"),
               PATH_TO_CHECKPOINT=os.path.join(exp, "train"),
               PATH_TO_EVAL_DIR=os.path.join(exp, "eval"),
               PATH_TO_VIS_DIR=os.path.join(exp, "vis"), PATH_TO_DATASET=dataset)
    _trained_from(_train_one_step(PASCAL_TRAIN, env), initial, 21)
    _evaluate(PASCAL_EVAL, env, 21)
    assert _visualise(PASCAL_VIS, env, count=1)


@pytest.mark.slow
def test_cityscapes_md_train_eval_vis(tmp_path):
    root = str(tmp_path)
    city = make_cityscapes(os.path.join(root, "cityscapes"), num_train=1, num_val=1,
                           size=(40, 50), seed=2)
    dataset = os.path.join(root, "cityscapes", "tfrecord")
    _convert("deeplab-build-cityscapes", f"--cityscapes_root={city['root']}",
             f"--output_dir={dataset}")
    initial = _imagenet_checkpoint(os.path.join(root, "init"))
    exp = os.path.join(root, "cityscapes", "exp", "train_on_train_set")
    env = _env(PATH_TO_INITIAL_CHECKPOINT=initial, PATH_TO_TRAIN_DIR=os.path.join(exp, "train"),
               PATH_TO_CHECKPOINT=os.path.join(exp, "train"),
               PATH_TO_EVAL_DIR=os.path.join(exp, "eval"),
               PATH_TO_VIS_DIR=os.path.join(exp, "vis"), PATH_TO_DATASET=dataset)
    _trained_from(_train_one_step(CITYSCAPES_TRAIN, env), initial, 19)
    _evaluate(CITYSCAPES_EVAL, env, 19)
    assert _visualise(CITYSCAPES_VIS, env, count=1)


@pytest.mark.slow
def test_ade20k_md_train(tmp_path):
    root = str(tmp_path)
    ade = make_ade20k(os.path.join(root, "ADE20K"), num_train=2, num_val=1, size=(40, 50), seed=3)
    dataset = os.path.join(root, "ADE20K", "tfrecord")
    _convert("deeplab-build-ade20k", f"--ade20k_root={ade['root']}", f"--output_dir={dataset}")
    initial = _imagenet_checkpoint(os.path.join(root, "init"))
    env = _env(PATH_TO_INITIAL_CHECKPOINT=initial,
               PATH_TO_TRAIN_DIR=os.path.join(root, "ADE20K", "exp", "train_on_train_set", "train"),
               PATH_TO_DATASET=dataset)
    _trained_from(_train_one_step(ADE20K_TRAIN, env), initial, 151)
