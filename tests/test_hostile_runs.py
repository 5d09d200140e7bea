"""Run folders, checkpoints and binaries under a careless or hostile user: a ``checkpoint``
state file naming a missing prefix (never a restart at step 0), planted or damaged caches and
checkpoints, binary flagfiles, output folders that cannot be written, file names that are not
UTF-8, a full disk; each is one ``error:`` line (no traceback), and a failed start leaves the
run folder as it was."""

import errno
import hashlib
import os
import shutil
import tarfile
import tempfile

import keras
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image
from tensorflow.python.checkpoint import functional_saver

import helpers
from cli_in_process import run_in_process
from deeplab_tf.checkpoints import loading, paths
from deeplab_tf.checkpoints.training import (CheckpointWriteError, ResumeError,
                                             TrainCheckpoint)
from deeplab_tf.cli._common import user_error_line
from deeplab_tf.errors import UserError
from train_data import write_shapes_dataset

MODEL_FLAGS = ["--model_variant=mobilenet_v2", "--depth_multiplier=0.25",
               "--decoder_output_stride=4", "--output_stride=16", "--num_classes=3"]


def _one_error_line(result, expected):
    """The run failed with exactly one ``error:`` line, ``expected`` (a prefix), no traceback."""
    assert result.returncode == 1, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and errors[0].startswith("error: " + expected), result.stderr[-2000:]
    return errors[0]


# ------------------------------------------------------- class 4: never a silent restart


def _checkpointer(directory):
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    optimizer = keras.optimizers.SGD(0.1)
    optimizer.build(model.trainable_variables)
    step = tf.Variable(0, dtype=tf.int64)
    return TrainCheckpoint(str(directory), model=model, optimizer=optimizer, step=step), model, step


def _remove(prefix, what="*"):
    for name in os.listdir(os.path.dirname(prefix)):
        if name.startswith(os.path.basename(prefix) + ".") and (what == "*" or what in name):
            os.remove(os.path.join(os.path.dirname(prefix), name))


def test_state_file_naming_a_missing_checkpoint_resumes_from_the_newest_present(tmp_path, capfd):
    run = tmp_path / "run"
    writer, model, step = _checkpointer(run)
    kernels = {}
    for value in (1, 2, 3):
        step.assign(value)
        model.layers[0].kernel.assign(np.full((3, 2), value, np.float32))
        kernels[value] = writer.save(value)
    _remove(kernels[3])  # a copy that lost its newest files; the state file still names them
    assert tf.train.latest_checkpoint(str(run)) is None  # what TensorFlow alone concludes

    reader, model, step = _checkpointer(run)
    capfd.readouterr()
    assert reader.restore_latest() == kernels[2]
    assert int(step.numpy()) == 2 and (model.layers[0].kernel.numpy() == 2).all()
    note = capfd.readouterr().err.strip().splitlines()
    assert note == [f"note: {run / 'checkpoint'} names {kernels[3]}, which is missing or "
                    f"incomplete; using the newest complete checkpoint present, {kernels[2]}"]
    assert tf.train.latest_checkpoint(str(run)) == kernels[2]  # the state file now agrees
    assert loading.latest_checkpoint(str(run)) == kernels[2]  # what eval and vis use

    _remove(kernels[2], ".data-")  # incomplete: its index without its data
    (run / "checkpoint").write_bytes(b"\xff\xfe\x00garbage")  # and a damaged state file
    reader, model, step = _checkpointer(run)
    assert reader.restore_latest() == kernels[1] and int(step.numpy()) == 1

    _remove(kernels[1])
    with pytest.raises(ResumeError, match=r"holds no complete checkpoint: not starting again "
                                          r"at step 0 over it"):
        _checkpointer(run)[0].restore_latest()


def test_damaged_newest_checkpoint_stops_resume_with_one_line(tmp_path):
    writer, _, step = _checkpointer(tmp_path)
    step.assign(5)
    prefix = writer.save(5)
    data = prefix + ".data-00000-of-00001"
    with open(data, "r+b") as f:
        f.truncate(os.path.getsize(data) // 2)
    with pytest.raises(ResumeError) as error:
        _checkpointer(tmp_path)[0].restore_latest()
    message = str(error.value)
    assert message.startswith(f"Cannot resume from {prefix}: its files are damaged or "
                              "truncated") and "\n" not in message


def test_full_disk_while_checkpointing_is_one_line_naming_the_checkpoint(tmp_path, monkeypatch):
    """TensorFlow reports a full disk as ResourceExhaustedError naming its temporary file."""
    def full(self, file_prefix, *args, **kwargs):
        raise tf.errors.ResourceExhaustedError(
            None, None, f"{file_prefix}_temp/part-00000.data-00000-of-00001.tempstate1; No "
                        "space left on device")

    writer, _, _ = _checkpointer(tmp_path)
    monkeypatch.setattr(functional_saver.MultiDeviceSaver, "save", full)
    with pytest.raises(CheckpointWriteError) as error:
        writer.save(1)
    assert user_error_line(error.value) == (
        f"Writing checkpoint {tmp_path / 'model.ckpt-1'} failed (No space left on device); "
        "the newest complete checkpoint is still none")


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    return write_shapes_dataset(tmp_path_factory.mktemp("hostile_runs") / "data", {"train": 4},
                                size=(40, 40))


def _train(capfd, *args):
    from deeplab_tf.cli import train

    return run_in_process(train.run, [
        "deeplab-train", "--dataset=", *MODEL_FLAGS[:-1], "--train_crop_size=33,33",
        "--train_batch_size=2", "--training_number_of_steps=1", *args], capfd)


def test_train_never_restarts_over_a_lost_run_and_leaves_its_folder_as_it_was(
        tmp_path, shapes, capfd):
    """The state file names a checkpoint none of whose files are left: one line, exit 1, and
    the run folder holds exactly what it held (no step-0 checkpoint, no rewritten state)."""
    run = tmp_path / "run"
    run.mkdir()
    state = b'model_checkpoint_path: "model.ckpt-900"\n'
    (run / "checkpoint").write_bytes(state)
    (run / "notes.txt").write_text("the user's")
    result = _train(capfd, f"--dataset_dir={shapes}", f"--train_logdir={run}")
    _one_error_line(result, f"{run / 'checkpoint'} names {run / 'model.ckpt-900'}, which is "
                            "missing or incomplete, and ")
    assert sorted(os.listdir(run)) == ["checkpoint", "notes.txt"]
    assert (run / "checkpoint").read_bytes() == state


# ------------------------------------------------------- class 5: no shared cache first


def _tarball(root, value):
    """A model-zoo-like tarball holding ``zoo/model.ckpt`` with one variable ``w`` = value."""
    source = root / "src" / "zoo"
    source.mkdir(parents=True)
    helpers.write_tf1_checkpoint(str(source / "model.ckpt"), {"w": np.full(2, value, np.float32)})
    tarball = root / "zoo_2018.tar.gz"
    with tarfile.open(tarball, "w:gz") as archive:
        archive.add(source, arcname="zoo")
    shutil.rmtree(root / "src")
    return str(tarball)


def _w(prefix):
    return tf.train.load_checkpoint(prefix).get_tensor("w")[0]


def test_a_planted_shared_cache_is_never_loaded_before_the_users_tarball(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "user").mkdir()
    tarball = _tarball(tmp_path / "user", 1.0)
    # Another user plants a checkpoint where a shared cache keyed by the tarball's path was.
    key = hashlib.sha1(os.path.abspath(tarball).encode()).hexdigest()[:16]
    planted = tmp_path / "tmp" / "deeplab_tf_checkpoints" / f"tar-{key}" / "zoo_2018" / "zoo"
    planted.mkdir(parents=True)
    helpers.write_tf1_checkpoint(str(planted / "model.ckpt"), {"w": np.full(2, 9.0, np.float32)})
    prefix = paths.resolve_checkpoint_path(tarball)
    assert prefix == str(tmp_path / "user" / "zoo_2018" / "zoo" / "model.ckpt")
    assert _w(prefix) == 1.0


def test_private_cache_only_when_beside_is_not_writable_and_checked(tmp_path, monkeypatch):
    (tmp_path / "ro").mkdir()
    tarball = _tarball(tmp_path / "ro", 1.0)
    beside = str(tmp_path / "ro" / "zoo_2018")
    real = paths._extract

    def read_only_beside(source, target, stamp=""):
        if target == beside:
            raise PermissionError(errno.EACCES, "Permission denied", target)
        return real(source, target, stamp)

    monkeypatch.setattr(paths, "_extract", read_only_beside)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    root = tmp_path / "cache" / "deeplab_tf" / "checkpoints"
    prefix = paths.resolve_checkpoint_path(tarball)
    assert prefix.startswith(str(root) + os.sep) and _w(prefix) == 1.0
    assert oct(os.stat(root).st_mode & 0o777) == oct(0o700)
    # A cached folder whose content is not this tarball's (tampered, or stale) is redone.
    folder = os.path.dirname(os.path.dirname(prefix))
    helpers.write_tf1_checkpoint(prefix, {"w": np.full(2, 7.0, np.float32)})
    with open(os.path.join(folder, ".sha256"), "w") as f:
        f.write("0" * 64)
    assert paths.resolve_checkpoint_path(tarball) == prefix and _w(prefix) == 1.0
    # A cache others can write is refused, not used.
    os.chmod(root, 0o777)
    with pytest.raises(paths.CheckpointError, match=f"^Checkpoint cache {root} is not private "
                                                    "to this user .*mode 0o777"):
        paths.resolve_checkpoint_path(tarball)


def test_extraction_folder_taken_by_a_file_names_that_file(tmp_path):
    tarball = _tarball(tmp_path, 1.0)
    (tmp_path / "zoo_2018").write_text("not a folder")
    with pytest.raises(paths.CheckpointError) as error:
        paths.resolve_checkpoint_path(tarball)
    assert str(error.value) == (f"{tmp_path / 'zoo_2018'} exists and is not a folder: "
                                f"{tarball} is extracted there; move that file away")
    assert sorted(os.listdir(tmp_path)) == ["zoo_2018", "zoo_2018.tar.gz"]


# ------------------------------------------------------- class 6: one line per user error


def test_binary_flagfile_is_one_line_naming_it(tmp_path, capfd):
    from deeplab_tf.cli import eval as eval_binary

    binary = tmp_path / "model.ckpt.index"
    binary.write_bytes(b"\x89\xffPNG\x00\x01")
    outer = tmp_path / "outer.flags"
    outer.write_text(f"--eval_logdir={tmp_path}\n--flagfile={binary}\n")
    for flagfile in (binary, outer):
        result = run_in_process(eval_binary.run, ["deeplab-eval", f"--flagfile={flagfile}"],
                                capfd)
        _one_error_line(result, f"--flagfile={binary}: not a text file (byte 0x89 at offset 0 "
                                "is not UTF-8): expected one --flag=value per line")


@pytest.mark.parametrize("binary, flag", [("train", "train_logdir"), ("eval", "eval_logdir"),
                                          ("vis", "vis_logdir"),
                                          ("convert_checkpoint", "output")])
def test_output_folder_through_a_file_is_refused_before_any_work(
        binary, flag, tmp_path, shapes, capfd):
    import importlib

    blocker = tmp_path / "file"
    blocker.write_text("x")
    target = blocker / "sub" if binary != "train" else blocker
    args = {"train": ["--dataset=", f"--dataset_dir={shapes}", *MODEL_FLAGS[:-1]],
            "convert_checkpoint": [f"--tf1_checkpoint={tmp_path / 'missing'}"]}.get(binary, [])
    entry = importlib.import_module(f"deeplab_tf.cli.{binary}").run
    result = run_in_process(entry, [f"deeplab-{binary}", f"--{flag}={target}", *args], capfd)
    _one_error_line(result, f"--{flag}={target} is not writable: {blocker} is a file, not a "
                            "directory")
    assert sorted(os.listdir(tmp_path)) == ["file"]


def test_non_utf8_file_name_in_build_folder_is_one_line_naming_it(tmp_path, capfd):
    from deeplab_tf.cli import build_folder

    images, masks = tmp_path / b"images".decode(), tmp_path / "masks"
    images.mkdir()
    masks.mkdir()
    name = os.fsdecode(b"caf\xe9")  # Latin-1 bytes: not UTF-8
    Image.new("RGB", (8, 8)).save(os.path.join(images, name + ".png"))
    Image.new("L", (8, 8)).save(os.path.join(masks, name + ".png"))
    result = run_in_process(build_folder.run, [
        "deeplab-build-folder", f"--image_dir={images}", f"--label_dir={masks}",
        "--num_classes=2", f"--output_dir={tmp_path / 'out'}", "--num_workers=1",
        "--noprogress"], capfd)
    _one_error_line(result, f"{images}/caf\\xe9.png: file name is not valid UTF-8")


@pytest.fixture(scope="module")
def damaged_checkpoints(tmp_path_factory):
    """Two copies of a tiny model's checkpoint: one with a garbage index, one whose data
    file is cut in half."""
    from deeplab_tf.model import build_model

    root = tmp_path_factory.mktemp("damaged")
    prefix = loading.save_model_checkpoint(build_model(helpers.tiny_config()), str(root / "good"))
    copies = {}
    for kind in ("index", "data"):
        shutil.copytree(root / "good", root / kind)
        copy = str(root / kind / os.path.basename(prefix))
        target = copy + (".index" if kind == "index" else ".data-00000-of-00001")
        size = os.path.getsize(target)
        with open(target, "r+b") as f:
            if kind == "index":
                f.write(np.random.default_rng(0).integers(0, 256, size, np.uint8).tobytes())
            else:
                f.truncate(size // 2)
        copies[kind] = copy
    return copies


@pytest.mark.parametrize("kind", ["index", "data"])
def test_damaged_checkpoint_is_one_line_when_exporting(kind, damaged_checkpoints, tmp_path, capfd):
    from deeplab_tf.cli import export

    path = damaged_checkpoints[kind]
    result = run_in_process(export.run, ["deeplab-export", f"--checkpoint={path}",
                                         f"--export_dir={tmp_path / 'out'}", *MODEL_FLAGS],
                            capfd)
    _one_error_line(result, f"Cannot read checkpoint {path}: ")
    assert not (tmp_path / "out").exists()


def test_damaged_initial_checkpoint_is_one_line_when_training(damaged_checkpoints):
    """--tf_initial_checkpoint's loader (load_checkpoint) on the same damaged files."""
    from deeplab_tf.model import build_model

    model = build_model(helpers.tiny_config())
    for kind, path in damaged_checkpoints.items():
        with pytest.raises(paths.CheckpointError) as error:
            loading.load_checkpoint(model, path)
        assert str(error.value).startswith(f"Cannot read checkpoint {path}: "), kind
        assert "\n" not in str(error.value)


def test_full_disk_while_writing_is_one_line_naming_the_destination():
    from deeplab_tf.cli._common import writing

    full = tf.errors.ResourceExhaustedError(
        None, None, "/out/1_tmp/variables/variables_temp/part-00000.tempstate9; No space left "
                    "on device [Op:SaveV2]")
    with pytest.raises(UserError) as error:
        with writing("the saved_model export", "/out/1"):
            raise full
    assert str(error.value) == ("Writing the saved_model export to /out/1 failed (No space left "
                                "on device); nothing was published there")
    # Out of memory is also a ResourceExhaustedError, but not the user's: it passes on.
    oom = tf.errors.ResourceExhaustedError(None, None, "OOM when allocating tensor")
    with pytest.raises(tf.errors.ResourceExhaustedError):
        with writing("the saved_model export", "/out/1"):
            raise oom
    assert user_error_line(oom) is None
    with pytest.raises(KeyError):  # a bug keeps its type (and traceback)
        with writing("x", "/out"):
            raise KeyError("bug")


def test_binary_split_list_palette_and_manifest_are_one_line(tmp_path, capfd):
    from deeplab_tf.cli import build_folder, eval as eval_binary

    for folder in ("images", "masks"):
        (tmp_path / folder).mkdir()
    Image.new("RGB", (8, 8)).save(tmp_path / "images" / "a.png")
    Image.new("L", (8, 8)).save(tmp_path / "masks" / "a.png")
    binary = tmp_path / "list.txt"
    binary.write_bytes(b"a\n\xff\xfe\n")
    common = ["deeplab-build-folder", f"--image_dir={tmp_path / 'images'}",
              f"--label_dir={tmp_path / 'masks'}", "--num_classes=2", "--noprogress",
              f"--output_dir={tmp_path / 'out'}"]
    for flag, expected in (("--split_lists=train=", "one image name per line"),
                           ("--palette_file=", "one colour per line: R G B [value]")):
        result = run_in_process(build_folder.run, [*common, flag + str(binary)], capfd)
        _one_error_line(result, f"{binary}: not a text file (byte 0xff at offset 2 is not "
                                f"UTF-8): expected {expected}")
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "manifest.json").write_bytes(b"\xff{}")
    result = run_in_process(eval_binary.run, [
        "deeplab-eval", f"--eval_logdir={tmp_path / 'eval'}", "--dataset=",
        f"--dataset_dir={tmp_path / 'data'}", f"--checkpoint_dir={tmp_path}"], capfd)
    _one_error_line(result, f"Unreadable dataset manifest {tmp_path / 'data' / 'manifest.json'}")


@pytest.mark.slow  # the console script itself (a TensorFlow import); the in-process tests above
def test_deeplab_train_console_script_says_one_line(tmp_path):
    import subprocess
    import sys

    binary = tmp_path / "run.flags"
    binary.write_bytes(b"\x89\xff\x00")
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")
    result = subprocess.run([sys.executable, "-m", "deeplab_tf.cli.train", f"--flagfile={binary}"],
                            capture_output=True, text=True, env=env, timeout=300,
                            cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    _one_error_line(result, f"--flagfile={binary}: not a text file (byte 0x89 at offset 0 is "
                            "not UTF-8)")
