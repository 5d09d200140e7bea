"""Dataset registry, palettes, manifest, shard naming and DataConfig validation."""

import os

import numpy as np
import pytest

from deeplab_tf.config import DataConfig
from deeplab_tf.data import manifest as manifest_lib
from deeplab_tf.data import palettes, registry, schema


def test_public_datasets_match_the_original():
    voc = registry.get_dataset_info("pascal_voc_seg")
    assert (voc.num_classes, voc.ignore_label) == (21, 255)
    assert voc.splits == {"train": 1464, "train_aug": 10582, "trainval": 2913, "val": 1449}
    assert voc.class_names[0] == "background" and voc.class_names[15] == "person"

    city = registry.get_dataset_info("cityscapes")
    assert (city.num_classes, city.ignore_label) == (19, 255)
    assert {k: city.splits[k] for k in ("train_fine", "val_fine", "test_fine")} == {
        "train_fine": 2975, "val_fine": 500, "test_fine": 1525}
    assert city.class_names[0] == "road" and city.class_names[-1] == "bicycle"

    ade = registry.get_dataset_info("ade20k")
    assert (ade.num_classes, ade.ignore_label) == (151, 0)
    assert ade.splits == {"train": 20210, "val": 2000}
    assert ade.class_names[1] == "wall" and ade.class_names[150] == "flag"

    for info in (voc, city, ade):
        assert len(info.class_names) == info.num_classes
        assert info.palette.dtype == np.uint8 and info.palette.shape[1] == 3
        assert len(info.palette) >= info.num_classes


def test_original_palettes():
    pascal = palettes.pascal_palette()
    assert pascal.shape == (256, 3)
    expected = {0: (0, 0, 0), 1: (128, 0, 0), 2: (0, 128, 0), 3: (128, 128, 0), 4: (0, 0, 128),
                15: (192, 128, 128), 20: (0, 64, 128), 255: (224, 224, 192)}
    for value, color in expected.items():
        assert tuple(pascal[value]) == color
    city = palettes.cityscapes_palette()
    assert tuple(city[0]) == (128, 64, 128) and tuple(city[18]) == (119, 11, 32)
    assert tuple(city[255]) == (0, 0, 0)
    ade = palettes.ade20k_palette()
    assert ade.shape == (151, 3)
    assert tuple(ade[0]) == (0, 0, 0) and tuple(ade[1]) == (120, 120, 120)
    assert tuple(ade[150]) == (92, 0, 255)


def test_colorize():
    label = np.array([[0, 1], [15, 255]])
    rgb = palettes.colorize(label, palettes.pascal_palette())
    assert rgb.dtype == np.uint8 and rgb.shape == (2, 2, 3)
    assert rgb[1, 0].tolist() == [192, 128, 128] and rgb[1, 1].tolist() == [224, 224, 192]
    assert palettes.colorize(label[..., None], palettes.pascal_palette()).shape == (2, 2, 3)
    with pytest.raises(ValueError, match=r"outside the palette's \[0, 151\): \[255\]"):
        palettes.colorize(label, palettes.ade20k_palette())


def _manifest(name="my_data", num_classes=3, ignore_label=255, **extra):
    return {"dataset": name, "num_classes": num_classes, "ignore_label": ignore_label,
            "class_names": [f"c{i}" for i in range(num_classes)],
            "splits": {"train": {"num_examples": 5, "num_shards": 1,
                                 "class_pixel_counts": [1] * num_classes,
                                 "ignore_pixel_count": 0, "skipped": []}}, **extra}


def test_custom_dataset_from_manifest(tmp_path):
    manifest_lib.write_manifest(str(tmp_path), _manifest(palette=[[1, 2, 3], [4, 5, 6], [7, 8, 9]]))
    assert os.listdir(tmp_path) == ["manifest.json"]  # No temporary file left.
    for name in ("", "my_data"):
        info = registry.get_dataset_info(name, str(tmp_path))
        assert (info.name, info.num_classes, info.ignore_label) == ("my_data", 3, 255)
        assert info.class_names == ("c0", "c1", "c2") and info.splits == {"train": 5}
        assert info.palette[1].tolist() == [4, 5, 6] and len(info.palette) == 256
    with pytest.raises(ValueError, match="describes dataset 'my_data', not 'other'"):
        registry.get_dataset_info("other", str(tmp_path))


def test_registry_errors_name_the_problem(tmp_path):
    with pytest.raises(ValueError, match="manifest.json in dataset_dir"):
        registry.get_dataset_info("", str(tmp_path))
    with pytest.raises(ValueError, match="Unknown dataset 'nope'"):
        registry.get_dataset_info("nope", str(tmp_path))
    # A converted registry dataset: split sizes are those converted; a mismatch raises.
    manifest_lib.write_manifest(str(tmp_path), _manifest("pascal_voc_seg", 21))
    assert registry.get_dataset_info("pascal_voc_seg", str(tmp_path)).splits == {"train": 5}
    with pytest.raises(ValueError, match="describes dataset 'pascal_voc_seg', not 'cityscapes'"):
        registry.get_dataset_info("cityscapes", str(tmp_path))
    manifest_lib.write_manifest(str(tmp_path), _manifest("pascal_voc_seg", 20))
    with pytest.raises(ValueError, match="num_classes=20 but dataset 'pascal_voc_seg' has num_classes=21"):
        registry.get_dataset_info("pascal_voc_seg", str(tmp_path))
    (tmp_path / "manifest.json").write_text("{not json")
    with pytest.raises(ValueError, match="Unreadable dataset manifest .*manifest.json"):
        registry.get_dataset_info("", str(tmp_path))


def test_shard_names_and_patterns(tmp_path):
    assert schema.shard_name("train", 3, 10) == "train-00003-of-00010.tfrecord"
    assert schema.parse_shard_name("/x/train_aug-00001-of-00004.tfrecord") == ("train_aug", 1, 4)
    assert schema.parse_shard_name("train-00001-of-00004.tfrecord.tmp-12") is None
    with pytest.raises(ValueError, match=r"nothing matches .*train-\*-of-\*\.tfrecord"):
        schema.shard_pattern(str(tmp_path), "train")
    for name in ("train-00000-of-00002.tfrecord", "train_aug-00000-of-00001.tfrecord"):
        (tmp_path / name).write_bytes(b"")
    with pytest.raises(ValueError, match=r"incomplete: shards \[1\] of 2 are missing"):
        schema.list_shards(str(tmp_path), "train")
    (tmp_path / "train-00001-of-00002.tfrecord").write_bytes(b"")
    assert [os.path.basename(f) for f in schema.list_shards(str(tmp_path), "train")] == [
        "train-00000-of-00002.tfrecord", "train-00001-of-00002.tfrecord"]
    assert schema.available_splits(str(tmp_path)) == ["train", "train_aug"]
    (tmp_path / "train-00000-of-00003.tfrecord").write_bytes(b"")
    with pytest.raises(ValueError, match=r"mix shard counts \[2, 3\]"):
        schema.list_shards(str(tmp_path), "train")


@pytest.mark.parametrize("overrides, message", [
    (dict(train_crop_size=(0, 513)), r"train_crop_size=\[0, 513\]"),
    (dict(train_crop_size=(513,)), r"train_crop_size=\[513\]"),
    (dict(min_scale_factor=2.0, max_scale_factor=0.5), "min_scale_factor=2.0, max_scale_factor=0.5"),
    (dict(scale_factor_step_size=-0.25), "scale_factor_step_size=-0.25"),
    (dict(min_resize_value=0), "min_resize_value=0"),
    (dict(min_resize_value=600, max_resize_value=500), "min_resize_value=600, max_resize_value=500"),
    (dict(resize_factor=16), "resize_factor=16"),
    (dict(num_readers=0), "num_readers=0"),
    (dict(dataset="", dataset_dir=""), "dataset_dir=''"),
    (dict(dataset="tfds:"), "dataset='tfds:'"),
    (dict(seed="1"), "seed='1'"),
])
def test_data_config_validation(overrides, message):
    with pytest.raises(ValueError, match=message):
        DataConfig(**overrides)


def test_data_config_defaults_and_round_trip():
    config = DataConfig(dataset_dir="/data", train_crop_size=[321, 513], seed=3)
    assert config.train_crop_size == (321, 513)
    assert (config.min_scale_factor, config.max_scale_factor, config.scale_factor_step_size) == (
        0.5, 2.0, 0.25)
    assert DataConfig.from_dict(config.to_dict()) == config


def test_cityscapes_facts_have_one_home():
    from deeplab_tf.data import cityscapes_labels, tfds_source

    info = registry.DATASETS["cityscapes"]
    assert info.class_names == cityscapes_labels.CLASS_NAMES
    assert info.class_names[:3] == ("road", "sidewalk", "building") and info.class_names[-1] == "bicycle"
    assert info.num_classes == 19 and info.ignore_label == 255
    adapter = tfds_source.ADAPTERS["cityscapes"]
    assert adapter.info.class_names == info.class_names and adapter.info.num_classes == 19
    assert adapter.label_table == cityscapes_labels.label_id_to_train_id_table()
    np.testing.assert_array_equal(adapter.info.palette, info.palette)
    assert info.palette[13].tolist() == [0, 0, 142]  # car
    table = cityscapes_labels.label_id_to_train_id_table()
    assert table[7] == 0 and table[33] == 18 and table[0] == 255 and table[200] == 255
    assert cityscapes_labels.train_id_to_label_id()[13] == 26
