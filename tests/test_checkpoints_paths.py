"""resolve_checkpoint_path (zoo tarballs, extracted folders, local_test.sh's old layout,
train_logdirs) and load_for_inference (the one loading rule), on TF1-style checkpoints written
in the original's variable naming."""

import io
import os
import shutil
import tarfile

import numpy as np
import pytest
import tensorflow as tf

import helpers
from deeplab_tf.checkpoints.strict import load_for_inference
from deeplab_tf.checkpoints.paths import CheckpointError, resolve_checkpoint_path
from deeplab_tf.checkpoints.loading import load_checkpoint
from deeplab_tf.modeling.layers.original_layer import original_variable_map
from deeplab_tf.model import build_model

ZOO = "deeplabv3_pascal_train_aug"
EXTRAS = {"global_step": np.array(30000, np.int64),
          "MobilenetV2/Conv/weights/Momentum": np.ones((3, 3, 3, 8), np.float32),
          "logits/semantic/biases/ExponentialMovingAverage": np.zeros(3, np.float32)}


def _config(**overrides):
    return helpers.tiny_config(**overrides)


@pytest.fixture(scope="module")
def zoo(tmp_path_factory):
    """A miniature model-zoo tarball: <name>/model.ckpt.{index,data-00000-of-00001} and
    frozen_inference_graph.pb, as download.tensorflow.org's, plus the variable values."""
    root = tmp_path_factory.mktemp("zoo")
    values = helpers.random_original_values(build_model(_config()), seed=4)
    folder = root / "src" / ZOO
    folder.mkdir(parents=True)
    helpers.write_tf1_checkpoint(str(folder / "model.ckpt"), {**values, **EXTRAS})
    (folder / "checkpoint").unlink()  # the zoo's tarballs hold no state file
    (folder / "frozen_inference_graph.pb").write_bytes(b"not used here")
    tarball = root / f"{ZOO}_2018_01_04.tar.gz"
    with tarfile.open(tarball, "w:gz") as archive:
        archive.add(folder, arcname=ZOO)
    shutil.rmtree(root / "src")
    return tarball, values


def _assert_loaded(model, values):
    mapped = original_variable_map(model)
    for name, value in values.items():
        np.testing.assert_array_equal(mapped[name].numpy(), value)


def test_zoo_tarball_is_extracted_once_and_loads(zoo):
    tarball, values = zoo
    prefix = resolve_checkpoint_path(str(tarball))
    assert prefix == os.path.join(str(tarball)[:-len(".tar.gz")], ZOO, "model.ckpt")
    stamp = os.stat(prefix + ".index").st_mtime_ns
    assert resolve_checkpoint_path(str(tarball)) == prefix  # not extracted again
    assert os.stat(prefix + ".index").st_mtime_ns == stamp
    assert not [n for n in os.listdir(tarball.parent) if n.startswith(".extract-")]
    model = build_model(_config())
    report = load_for_inference(model, str(tarball))
    _assert_loaded(model, values)
    assert sorted(report.ignored) == sorted(EXTRAS)
    assert "Ignored 3 non-model" in report.summary()
    # The extracted folder and the folder inside it are accepted too; training init as well.
    assert resolve_checkpoint_path(os.path.dirname(os.path.dirname(prefix))) == prefix
    assert resolve_checkpoint_path(os.path.dirname(prefix)) == prefix
    other = build_model(_config())
    load_checkpoint(other, str(tarball))
    _assert_loaded(other, values)


def test_local_test_sh_layout_with_renamed_data_file(zoo, tmp_path):
    """local_test.sh: tar -xf, then mv model.ckpt.data-00000-of-00001 model.ckpt."""
    tarball, values = zoo
    with tarfile.open(tarball) as archive:
        archive.extractall(tmp_path, filter="data")
    folder = tmp_path / ZOO
    os.rename(folder / "model.ckpt.data-00000-of-00001", folder / "model.ckpt")
    prefix = resolve_checkpoint_path(str(folder / "model.ckpt"))
    model = build_model(_config())
    load_for_inference(model, str(folder / "model.ckpt"))
    _assert_loaded(model, values)
    assert sorted(os.listdir(folder)) == ["frozen_inference_graph.pb", "model.ckpt",
                                          "model.ckpt.index"]  # the user's folder untouched
    assert prefix != str(folder / "model.ckpt")  # read through a view elsewhere


def test_unsafe_tarball_is_refused_and_nothing_written(tmp_path):
    tarball = tmp_path / "evil.tar.gz"
    with tarfile.open(tarball, "w:gz") as archive:
        data = b"x"
        info = tarfile.TarInfo("../escaped.txt")
        info.size = len(data)
        archive.addfile(info, io.BytesIO(data))
    with pytest.raises(CheckpointError, match=r"unsafe member name '\.\./escaped\.txt'"):
        resolve_checkpoint_path(str(tarball))
    assert sorted(os.listdir(tmp_path)) == ["evil.tar.gz"]
    assert not (tmp_path.parent / "escaped.txt").exists()
    broken = tmp_path / "broken.tar.gz"
    broken.write_bytes(b"\x1f\x8b not really gzip")
    with pytest.raises(CheckpointError, match="Cannot extract"):
        resolve_checkpoint_path(str(broken))


def test_train_logdir_with_original_checkpoint_names(tmp_path):
    model = build_model(_config())
    manager = tf.train.CheckpointManager(tf.train.Checkpoint(model=model), str(tmp_path),
                                         max_to_keep=None, checkpoint_name="model.ckpt")
    manager.save(checkpoint_number=5)
    manager.save(checkpoint_number=10)
    assert resolve_checkpoint_path(str(tmp_path)) == str(tmp_path / "model.ckpt-10")
    assert resolve_checkpoint_path(str(tmp_path / "model.ckpt-5")) == str(tmp_path / "model.ckpt-5")
    with pytest.raises(CheckpointError, match=r"model\.ckpt-7\.index"):
        resolve_checkpoint_path(str(tmp_path / "model.ckpt-7"))
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(CheckpointError, match="No checkpoint found in directory"):
        resolve_checkpoint_path(str(empty))


def _tf1(tmp_path, config, name="model.ckpt", seed=0):
    values = helpers.random_original_values(build_model(config), seed=seed)
    return helpers.write_tf1_checkpoint(str(tmp_path / name), values)


def test_decoder_checkpoint_without_decoder_flag_names_the_flag(tmp_path):
    prefix = _tf1(tmp_path, _config(decoder_output_stride=(4,)))
    model = build_model(_config(decoder_output_stride=()))
    with pytest.raises(CheckpointError, match="add --decoder_output_stride=4") as info:
        load_for_inference(model, prefix)
    assert "decoder/" in str(info.value)
    # The other way round: the model expects a decoder the checkpoint lacks.
    prefix = _tf1(tmp_path, _config(decoder_output_stride=()), name="v3.ckpt")
    with pytest.raises(CheckpointError, match="drop --decoder_output_stride"):
        load_for_inference(build_model(_config(decoder_output_stride=(4,))), prefix)


def test_image_pooling_and_aspp_mismatches_name_the_flags(tmp_path):
    prefix = _tf1(tmp_path, _config(add_image_level_feature=True))
    with pytest.raises(CheckpointError, match="--add_image_level_feature=true"):
        load_for_inference(build_model(_config(add_image_level_feature=False)), prefix)
    prefix = _tf1(tmp_path, _config(atrous_rates=(6, 12, 18), model_variant="xception_41",
                                    depth_multiplier=1.0), name="aspp.ckpt")
    model = build_model(_config(atrous_rates=(), model_variant="xception_41",
                                depth_multiplier=1.0))
    with pytest.raises(CheckpointError, match="--atrous_rates"):
        load_for_inference(model, prefix)
