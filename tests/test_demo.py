"""The demo's data steps: scenes written as an images + colour-masks folder, converted by
``deeplab-build-folder`` with the demo's flags into the custom dataset ``demo_shapes``; the
labels read back from the shards are the scenes' labels, regenerated here from the seed."""

import json
import os
import subprocess
import sys

import numpy as np
import tensorflow as tf

from deeplab_tf.demo import run as demo
from deeplab_tf.demo import scenes as demo_data
from deeplab_tf.data import schema

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_demo_scenes_convert_to_a_custom_dataset_with_the_demo_classes(tmp_path):
    size, num_train, num_val = (40, 48), 5, 3
    scenes = demo_data.write_folder_layout(str(tmp_path / "raw"), num_train, num_val, size,
                                           seed=3)
    assert scenes == demo_data.folder_layout(str(tmp_path / "raw"))
    records = str(tmp_path / "records")
    result = subprocess.run(
        [sys.executable, "-m", "deeplab_tf.cli.build_folder",
         *demo.convert_args(scenes, records), "--num_shards=1"],
        capture_output=True, text=True, timeout=300, cwd=ROOT,
        env=dict(os.environ, PYTHONPATH=ROOT))
    assert result.returncode == 0, result.stderr[-2000:]
    with open(os.path.join(records, "manifest.json")) as f:
        manifest = json.load(f)
    assert manifest["dataset"] == "demo_shapes" and manifest["num_classes"] == 5
    assert manifest["class_names"] == ["background", "disc", "square", "triangle", "bar"]
    assert manifest["ignore_label"] == 255
    assert {k: v["num_examples"] for k, v in manifest["splits"].items()} == {
        "train": num_train, "val": num_val}

    # The same seed's scenes, drawn again: demo_00000.. are train, then val.
    rng = np.random.default_rng(3)
    expected = [demo_data.make_scene(rng, size)[1] for _ in range(num_train + num_val)]
    assert {0, 255} <= set(np.unique(np.concatenate(expected)))
    assert len(set(np.unique(np.concatenate(expected))) - {0, 255}) >= 2
    found = {}
    for split in ("train", "val"):
        for shard in schema.list_shards(records, split):
            for record in tf.data.TFRecordDataset(shard):
                example = schema.parse_example(record)
                name = example["image/filename"].numpy().decode()
                label = tf.io.decode_png(example["image/segmentation/class/encoded"]).numpy()
                found[name] = (split, label[..., 0])
    assert sorted(found) == [f"demo_{i:05d}" for i in range(num_train + num_val)]
    for index, label in enumerate(expected):
        split, stored = found[f"demo_{index:05d}"]
        assert split == ("train" if index < num_train else "val")
        np.testing.assert_array_equal(stored, label, err_msg=f"demo_{index:05d}")
    # The palette file maps the demo's mask colours; the manifest keeps them for deeplab-vis.
    assert [tuple(c) for c in manifest["palette"][:5]] == list(demo_data.DEMO_PALETTE)
