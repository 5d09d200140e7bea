"""deeplab-train end to end: run files, flagfile repeat and resume, SIGTERM, SIGKILL, bad input."""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import pytest

from cli_in_process import run_in_process
from deeplab_tf.cli import train as train_binary
from helpers import tiny_config
from train_data import NUM_CLASSES, write_shapes_dataset

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
COMMON = ["--dataset=", "--model_variant=mobilenet_v2", "--depth_multiplier=0.25",
          "--decoder_output_stride=4", "--train_crop_size=33,33", "--train_batch_size=2",
          "--log_steps=1", "--base_learning_rate=0.01"]
STEP_LINE = re.compile(r"step (\d+)/\d+ ")


def _command(*args):
    return [sys.executable, "-m", "deeplab_tf.cli.train", *args]


def _env():
    return dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=REPO, CUDA_VISIBLE_DEVICES="")


def _train(*args, timeout=180):
    return subprocess.run(_command(*args), capture_output=True, text=True, cwd=REPO,
                          env=_env(), timeout=timeout)


def _latest_step(logdir):
    import tensorflow as tf

    path = tf.train.latest_checkpoint(logdir)
    return None if path is None else int(path.rsplit("-", 1)[1])


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("train_cli")
    good = write_shapes_dataset(root / "data", {"train": 8, "empty": 0}, size=(40, 40))
    bad = write_shapes_dataset(root / "bad", {"train": 4}, size=(40, 40), bad_label=7)
    return {"root": root, "good": good, "bad": bad}


def _start(*args):
    return subprocess.Popen(_command(*args), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, cwd=REPO, env=_env())


def _wait_for_step(process, step, timeout=400):
    """Reads the process output until it logs ``step``; returns the lines read."""
    lines, deadline = [], time.time() + timeout
    for line in process.stdout:
        lines.append(line)
        match = STEP_LINE.search(line)
        if match and int(match.group(1)) >= step:
            return lines
        if time.time() > deadline:
            break
    process.kill()
    raise AssertionError("no step %d logged:\n%s" % (step, "".join(lines[-30:])))


@pytest.fixture(scope="module")
def run(data):
    """A 3-step run from run files, then its flagfile repeated on the same train_logdir (it
    resumes) up to 1000 steps, stopped by SIGTERM after step 5: one process serves the resume
    and the SIGTERM tests. What the first run wrote is read before the second starts."""
    logdir = str(data["root"] / "run")
    first = _train(*COMMON, f"--dataset_dir={data['good']}", f"--train_logdir={logdir}",
                   "--training_number_of_steps=3", "--save_interval_steps=2")
    assert first.returncode == 0, first.stderr[-3000:]
    with open(os.path.join(logdir, "config.json")) as f:
        config = json.load(f)
    flags_txt = open(os.path.join(logdir, "flags.txt")).read().splitlines()
    files = os.listdir(logdir)
    # No periodic save in the second run: its only checkpoint is the one SIGTERM makes.
    process = _start(f"--flagfile={os.path.join(logdir, 'flags.txt')}",
                     "--training_number_of_steps=1000", "--save_interval_steps=1000")
    try:
        output = "".join(_wait_for_step(process, 5))
        process.send_signal(signal.SIGTERM)
        output += process.communicate(timeout=60)[0]
    finally:
        process.kill()
    return {"logdir": logdir, "first": first, "config": config, "flags_txt": flags_txt,
            "files": files, "second": process, "output": output}


def test_run_files_flagfile_repeat_and_resume(run):
    logdir, first = run["logdir"], run["first"]
    assert "Training reached step 3/3" in first.stdout
    assert re.search(r"step 3/3 +loss [\d.]+ .* lr [\d.e-]+ +[\d.]+ images/s +ETA \d+:\d\d:\d\d",
                     first.stderr), first.stderr[-2000:]
    files = run["files"]
    assert {"flags.txt", "config.json", "checkpoint", "model.ckpt-2.index",
            "model.ckpt-3.index"} <= set(files)
    assert any(f.startswith("events.out.tfevents") for f in files)
    config = run["config"]
    assert set(config) == {"model", "data", "train"}
    assert config["model"]["num_classes"] == NUM_CLASSES
    assert config["data"]["train_crop_size"] == [33, 33]
    assert config["train"]["training_number_of_steps"] == 3
    flags_txt = run["flags_txt"]
    assert f"--train_logdir={logdir}" in flags_txt and "--depth_multiplier=0.25" in flags_txt

    # The flagfile repeats the run; the same train_logdir resumes it (model, optimizer, step).
    output = run["output"]
    assert f"Resumed from {os.path.join(logdir, 'model.ckpt-3')} (step 3)" in output, output[-3000:]
    assert "Training steps 4..1000" in output
    assert [int(m.group(1)) for m in STEP_LINE.finditer(output)][:2] == [4, 5], output[-3000:]


def test_sigterm_saves_a_checkpoint_and_exits(run):
    output = run["output"]
    assert run["second"].returncode == 0, output[-3000:]
    stopped = re.search(r"stopped by SIGTERM at step (\d+)/1000", output)
    assert stopped, output[-3000:]
    assert _latest_step(run["logdir"]) == int(stopped.group(1)) >= 5


def test_sigkill_then_restart_loses_at_most_the_save_interval(data):
    logdir = str(data["root"] / "sigkill")
    args = [*COMMON, f"--dataset_dir={data['good']}", f"--train_logdir={logdir}",
            "--save_interval_steps=2"]
    process = _start(*args, "--training_number_of_steps=1000")
    try:
        lines = _wait_for_step(process, 5)
        process.send_signal(signal.SIGKILL)
        lines += process.communicate(timeout=60)[0].splitlines()
    finally:
        process.kill()
    reached = max(int(m.group(1)) for m in map(STEP_LINE.search, lines) if m)
    saved = _latest_step(logdir)
    assert saved is not None and reached - saved <= 2, (reached, saved)

    result = _train(*args, f"--training_number_of_steps={saved + 2}")
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"(step {saved})" in result.stderr and f"Training steps {saved + 1}.." in result.stderr
    assert _latest_step(logdir) == saved + 2


@pytest.fixture(scope="module")
def three_class_checkpoint(data):
    from deeplab_tf.checkpoints.loading import save_model_checkpoint
    from deeplab_tf.model import build_model

    directory = str(data["root"] / "ckpt3")
    save_model_checkpoint(build_model(tiny_config(num_classes=3)), directory)
    return directory


# Errors found before the first step run the binary's entry point in this process (seconds);
# absl's flag error and the errors of the training steps run the binary itself.
FOUND_BEFORE_TRAINING = ("missing_split", "class_mismatch", "label_weights", "other_model")


@pytest.mark.parametrize("case, expected", [
    ("unknown_flag", "Unknown command line flag 'train_stepz'"),
    ("missing_split", "nothing matches"),
    ("empty_split", r"Step 1: split 'empty' .* yielded no examples"),
    ("bad_labels", r"Step \d+: \d+ label values are neither a class in \[0, 5\) nor the ignore "
                   r"label \(255\); the largest is 7"),
    ("class_mismatch",
     r"logits/semantic/weights .* \[1, 1, 256, 5\] .*--initialize_last_layer=false"),
    ("label_weights", r"label_weights needs one weight per class \(5\)"),
    ("other_model", "holds checkpoints of another model"),
])
def test_bad_input_is_a_one_line_error(data, three_class_checkpoint, case, expected, capfd):
    logdir = str(data["root"] / f"bad_{case}")
    args = [*COMMON, f"--dataset_dir={data['good']}", f"--train_logdir={logdir}",
            "--training_number_of_steps=2"]
    extra = {
        "unknown_flag": ["--train_stepz=3"],
        "missing_split": ["--train_split=nosuch"],
        "empty_split": ["--train_split=empty"],
        "bad_labels": [f"--dataset_dir={data['bad']}"],
        "class_mismatch": [f"--tf_initial_checkpoint={three_class_checkpoint}"],
        "label_weights": ["--label_weights=1", "--label_weights=2"],
        "other_model": [],
    }[case]
    if case == "other_model":  # a run of a 3-class model in train_logdir
        shutil.copytree(three_class_checkpoint, logdir)
        with open(os.path.join(logdir, "config.json"), "w") as f:
            json.dump({"model": tiny_config(num_classes=3).to_dict(), "data": {}, "train": {}}, f)
    if case in FOUND_BEFORE_TRAINING:
        result = run_in_process(train_binary.run, ["deeplab-train", *args, *extra], capfd)
    else:
        result = _train(*args, *extra)
    assert result.returncode == 1, result.stderr[-3000:]
    assert re.search(expected, result.stderr), result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    if case == "missing_split":
        assert os.path.join(data["good"], "nosuch-*-of-*.tfrecord") in result.stderr
    if case == "empty_split":
        assert os.path.join(data["good"], "empty-*-of-*.tfrecord") in result.stderr
    if case != "unknown_flag":
        errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
        assert len(errors) == 1, result.stderr[-2000:]
