"""Input pipeline: contracts of train_dataset/eval_dataset, interoperability with the
original's shards both ways, determinism, per-pipeline file sharding, and the TFDS source."""

import io
import os

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from deeplab_tf.config import DataConfig
from deeplab_tf.data import pipeline, registry
from deeplab_tf.data.converters import folder
from tests import miniature


@pytest.fixture(scope="module")
def custom(tmp_path_factory):
    """6 PNG images whose colour encodes the class, converted into 4 shards."""
    root = tmp_path_factory.mktemp("pipeline")
    info = miniature.make_folder(root / "raw", num_images=6, num_classes=3)
    output_dir = str(root / "shards")
    folder.convert(info["image_dir"], info["label_dir"], output_dir, num_classes=3,
                   palette_file=info["palette_file"], dataset_name="colours", num_shards=4,
                   show_progress=False)
    return info, output_dir


def _batches(dataset, count):
    return [tuple(t.numpy() for t in batch) for batch in dataset.take(count)]


def test_train_dataset_contract_and_alignment(custom):
    info, output_dir = custom
    config = DataConfig(dataset="", dataset_dir=output_dir, train_crop_size=(45, 37), seed=5)
    dataset = pipeline.train_dataset(config, batch_size=3, mean_pixel=(10.0, 20.0, 30.0))
    assert dataset.element_spec[0].shape.as_list() == [3, 45, 37, 3]
    assert dataset.element_spec[1].shape.as_list() == [3, 45, 37, 1]
    for images, labels in _batches(dataset, 4):
        assert images.dtype == np.float32 and labels.dtype == np.int32
        assert images.min() >= 0.0 and images.max() <= 255.0
        for image, label in zip(images, labels[..., 0]):
            miniature.assert_aligned(image, label, info["colors"], 255, (10.0, 20.0, 30.0),
                                     source_values=[0, 1, 2])


def test_same_seed_same_batches(custom):
    _, output_dir = custom

    def first_batches(seed):
        config = DataConfig(dataset="", dataset_dir=output_dir, train_crop_size=(21, 23), seed=seed)
        return _batches(pipeline.train_dataset(config, batch_size=2, mean_pixel=127.5), 5)

    a, b, c = first_batches(7), first_batches(7), first_batches(8)
    for (images_a, labels_a), (images_b, labels_b) in zip(a, b):
        np.testing.assert_array_equal(images_a, images_b)
        np.testing.assert_array_equal(labels_a, labels_b)
    assert any(not np.array_equal(x[1], y[1]) for x, y in zip(a, c))


def _identify(label, labels_by_stem):
    for stem, source in labels_by_stem.items():
        if np.array_equal(label, source) or np.array_equal(label, source[:, ::-1]):
            return stem
    raise AssertionError("label matches no source image")


def test_input_context_shards_files_and_uses_per_replica_batch(custom):
    info, output_dir = custom
    # Scale 1, crop = image size: every element is a (possibly flipped) source image.
    config = DataConfig(dataset="", dataset_dir=output_dir, train_crop_size=(40, 50),
                        min_scale_factor=1.0, max_scale_factor=1.0, seed=0)
    seen = []
    for pipeline_id in range(2):
        context = tf.distribute.InputContext(
            num_input_pipelines=2, input_pipeline_id=pipeline_id, num_replicas_in_sync=2)
        dataset = pipeline.train_dataset(config, batch_size=4, mean_pixel=0.0,
                                         input_context=context)
        stems = set()
        for images, labels in _batches(dataset, 6):
            assert images.shape == (2, 40, 50, 3)  # Per-replica batch: 4 / 2.
            stems |= {_identify(label, info["labels"]) for label in labels[..., 0]}
        seen.append(stems)
    # Shards 0, 2 (images 0, 1, 4) and shards 1, 3 (images 2, 3, 5).
    assert seen == [{"img_000", "img_001", "img_004"}, {"img_002", "img_003", "img_005"}]


def test_eval_dataset_contract(custom):
    info, output_dir = custom
    config = DataConfig(dataset="", dataset_dir=output_dir)
    examples = list(pipeline.eval_dataset(config, "train", mean_pixel=127.5, output_stride=16))
    assert [ex["filename"].numpy()[0].decode() for ex in examples] == info["stems"]
    for ex in examples:
        assert ex["image"].dtype == tf.float32 and ex["image"].shape == (1, 49, 65, 3)
        assert ex["label"].dtype == tf.int32 and ex["label"].shape == (1, 49, 65, 1)
        assert ex["height"].dtype == tf.int32 and ex["height"].numpy().tolist() == [40]
        assert ex["width"].numpy().tolist() == [50]
        stem = ex["filename"].numpy()[0].decode()
        np.testing.assert_array_equal(ex["image"].numpy()[0, :40, :50], info["images"][stem])
        np.testing.assert_array_equal(ex["label"].numpy()[0, :40, :50, 0], info["labels"][stem])
        assert np.all(ex["image"].numpy()[0, 40:] == 127.5)
        assert np.all(ex["label"].numpy()[0, :, 50:] == 255)
    with pytest.raises(ValueError, match=r"nothing matches .*nope-\*-of-\*\.tfrecord"):
        pipeline.eval_dataset(config, "nope", mean_pixel=127.5)


def _png(array):
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def _jpeg(array):
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def test_shards_of_an_independent_writer_are_read(tmp_path):
    """Shards as the original's build_voc2012_data.py writes them: only the schema's keys,
    JPEG bytes (with image/format 'png', the original's default flag), an index PNG label."""
    rng = np.random.default_rng(0)
    expected = {}
    path = str(tmp_path / "val-00000-of-00001.tfrecord")
    with tf.io.TFRecordWriter(path) as writer:
        for i, (height, width) in enumerate([(40, 50), (37, 29)]):
            image = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
            label = rng.choice(np.array([0, 5, 20, 255], np.uint8), (height, width))
            encoded = _jpeg(image)
            feature = {
                "image/encoded": tf.train.Feature(bytes_list=tf.train.BytesList(value=[encoded])),
                "image/filename": tf.train.Feature(bytes_list=tf.train.BytesList(value=[b"%d" % i])),
                "image/format": tf.train.Feature(bytes_list=tf.train.BytesList(value=[b"png"])),
                "image/height": tf.train.Feature(int64_list=tf.train.Int64List(value=[height])),
                "image/width": tf.train.Feature(int64_list=tf.train.Int64List(value=[width])),
                "image/channels": tf.train.Feature(int64_list=tf.train.Int64List(value=[3])),
                "image/segmentation/class/encoded": tf.train.Feature(
                    bytes_list=tf.train.BytesList(value=[_png(label)])),
                "image/segmentation/class/format": tf.train.Feature(
                    bytes_list=tf.train.BytesList(value=[b"png"])),
            }
            writer.write(tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString())
            expected[str(i)] = (tf.io.decode_jpeg(encoded, channels=3).numpy(), label)

    config = DataConfig(dataset="pascal_voc_seg", dataset_dir=str(tmp_path), train_split="val",
                        train_crop_size=(33, 33), seed=1)
    for ex in pipeline.eval_dataset(config, "val", mean_pixel=127.5, output_stride=8):
        image, label = expected[ex["filename"].numpy()[0].decode()]
        height, width = label.shape
        assert (int(ex["height"][0]), int(ex["width"][0])) == (height, width)
        np.testing.assert_array_equal(ex["image"].numpy()[0, :height, :width], image)
        np.testing.assert_array_equal(ex["label"].numpy()[0, :height, :width, 0], label)
    images, labels = next(iter(pipeline.train_dataset(config, batch_size=2, mean_pixel=127.5)))
    assert images.shape == (2, 33, 33, 3)
    assert set(np.unique(labels.numpy())) <= {0, 5, 20, 255}


def test_our_shards_parse_as_the_original_reader_parses(custom):
    """The original data_generator's feature spec and decoding, applied to our shards."""
    info, output_dir = custom
    spec = {
        "image/encoded": tf.io.FixedLenFeature((), tf.string, default_value=""),
        "image/filename": tf.io.FixedLenFeature((), tf.string, default_value=""),
        "image/format": tf.io.FixedLenFeature((), tf.string, default_value="jpeg"),
        "image/height": tf.io.FixedLenFeature((), tf.int64, default_value=0),
        "image/width": tf.io.FixedLenFeature((), tf.int64, default_value=0),
        "image/channels": tf.io.FixedLenFeature((), tf.int64, default_value=0),
        "image/segmentation/class/encoded": tf.io.FixedLenFeature((), tf.string, default_value=""),
        "image/segmentation/class/format": tf.io.FixedLenFeature((), tf.string, default_value="png"),
    }

    def decode(content, channels):
        return tf.cond(tf.io.is_jpeg(content), lambda: tf.io.decode_jpeg(content, channels),
                       lambda: tf.io.decode_png(content, channels))

    files = sorted(tf.io.gfile.glob(os.path.join(output_dir, "train-*")))
    assert [os.path.basename(f) for f in files] == [f"train-0000{i}-of-00004.tfrecord" for i in range(4)]
    count = 0
    for record in tf.data.TFRecordDataset(files):
        fields = tf.io.parse_single_example(record, spec)
        stem = fields["image/filename"].numpy().decode()
        assert fields["image/channels"] == 3 and fields["image/segmentation/class/format"] == b"png"
        assert (fields["image/height"], fields["image/width"]) == (40, 50)
        np.testing.assert_array_equal(decode(fields["image/encoded"], 3).numpy(), info["images"][stem])
        label = decode(fields["image/segmentation/class/encoded"], 1).numpy()
        np.testing.assert_array_equal(label[..., 0], info["labels"][stem])
        count += 1
    assert count == 6


# ----------------------------------------------------------------------------- TFDS
# (name, num_classes, image feature, label feature, name feature, stored label values, and
# their class ids)
_TFDS_CASES = [
    ("cityscapes/semantic_segmentation", 19, "image_left", "segmentation_label", "image_id",
     [0, 7, 8, 26, 33], [255, 0, 1, 13, 18]),   # label ids -> train ids
    ("oxford_iiit_pet", 2, "image", "segmentation_mask", "file_name",
     [1, 2, 3], [1, 0, 255]),                    # trimap: pet, background, border (ignored)
]


def _mock_tfds(examples, keys):
    import tensorflow_datasets as tfds

    def as_dataset(self, split, decoders=None, read_config=None, shuffle_files=False, **kwargs):
        del self, read_config, shuffle_files, kwargs
        assert str(split) in ("train", "validation", "test"), split
        # The source asks for the encoded bytes (tfds.decode.SkipDecoding) of both images.
        assert set(decoders) == set(keys[:2])

        def generate():
            for image, label, name in examples:
                yield dict(zip(keys, (_png(image), _png(label), name)))

        spec = tf.TensorSpec((), tf.string)
        return tf.data.Dataset.from_generator(generate, output_signature={k: spec for k in keys})

    return tfds.testing.mock_data(as_dataset_fn=as_dataset)


@pytest.mark.parametrize("name, num_classes, image_key, label_key, name_key, stored, classes",
                         _TFDS_CASES)
def test_tfds_source(name, num_classes, image_key, label_key, name_key, stored, classes):
    rng = np.random.default_rng(1)
    examples = [(rng.integers(0, 256, (40, 50, 3), dtype=np.uint8),
                 miniature.block_label(rng, (40, 50), stored), f"example_{i}") for i in range(3)]
    table = np.full(256, 255, np.uint8)
    table[stored] = classes
    with _mock_tfds(examples, (image_key, label_key, name_key)):
        info = registry.get_dataset_info("tfds:" + name)
        assert (info.name, info.num_classes, info.ignore_label) == ("tfds:" + name, num_classes, 255)
        assert len(info.class_names) == num_classes
        config = DataConfig(dataset="tfds:" + name, train_split="train", eval_split="val",
                            train_crop_size=(33, 33), seed=0)
        got = list(pipeline.eval_dataset(config, "val", mean_pixel=127.5, output_stride=16))
        assert [ex["filename"].numpy()[0].decode() for ex in got] == [e[2] for e in examples]
        for ex, (image, label, _) in zip(got, examples):
            assert ex["image"].shape == (1, 49, 65, 3)
            np.testing.assert_array_equal(ex["image"].numpy()[0, :40, :50], image)
            np.testing.assert_array_equal(ex["label"].numpy()[0, :40, :50, 0], table[label])
        images, labels = next(iter(pipeline.train_dataset(config, batch_size=2, mean_pixel=127.5)))
        assert images.shape == (2, 33, 33, 3) and labels.shape == (2, 33, 33, 1)
        assert set(np.unique(labels.numpy())) <= set(classes) | {255}
    with pytest.raises(ValueError, match="'mnist' is not supported"):
        registry.get_dataset_info("tfds:mnist")
