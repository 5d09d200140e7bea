"""The frozen ``frozen_inference_graph.pb``: the original demo notebook's client, unchanged,
gets the labels that ``inference.predict`` (deeplab-eval's path) computes."""

import os
import tarfile

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from deeplab_tf.config import ExportConfig
from deeplab_tf import inference
from deeplab_tf.inference import InferenceSpec
from deeplab_tf.export.frozen_graph import FrozenGraphError, export_frozen_graph
from export_helpers import scenes
from helpers import tiny_config
from test_inference import calibrated_model


class DeepLabModel:
    """The client of the original's deeplab_demo.ipynb (its DeepLabModel class, same calls:
    GraphDef from the tarball member whose name has 'frozen_inference_graph', imported with
    name='', Session.run of SemanticPredictions:0 fed ImageTensor:0 = [image])."""

    INPUT_TENSOR_NAME = "ImageTensor:0"
    OUTPUT_TENSOR_NAME = "SemanticPredictions:0"
    FROZEN_GRAPH_NAME = "frozen_inference_graph"

    def __init__(self, tarball_path):
        self.graph = tf.Graph()
        graph_def = None
        with tarfile.open(tarball_path) as tar_file:
            for tar_info in tar_file.getmembers():
                if self.FROZEN_GRAPH_NAME in os.path.basename(tar_info.name):
                    graph_def = tf.compat.v1.GraphDef.FromString(
                        tar_file.extractfile(tar_info).read())
                    break
        assert graph_def is not None
        with self.graph.as_default():
            tf.compat.v1.import_graph_def(graph_def, name="")
        self.sess = tf.compat.v1.Session(graph=self.graph)

    def run(self, image):
        batch_seg_map = self.sess.run(self.OUTPUT_TENSOR_NAME,
                                      feed_dict={self.INPUT_TENSOR_NAME: [np.asarray(image)]})
        return batch_seg_map[0]


def _tarball(export_path, tmp_path):
    tarball = tmp_path / "exported_model.tar.gz"
    with tarfile.open(tarball, "w:gz") as archive:
        archive.add(export_path, arcname="exported/frozen_inference_graph.pb")
    return tarball


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    config = tiny_config(num_classes=3)
    model = calibrated_model(config, seed=3)
    root = tmp_path_factory.mktemp("frozen")
    spec = InferenceSpec.from_export_config(config, ExportConfig(format="frozen_graph",
                                                                 crop_size=(65, 65)))
    path = export_frozen_graph(model, config, spec, str(root / "export" /
                                                         "frozen_inference_graph.pb"),
                               num_classes=3, save_inference_graph=True)
    return {"config": config, "model": model, "spec": spec, "path": path, "root": root}


def _expected(exported, image, spec=None):
    spec = spec or exported["spec"]
    fast = inference.prepare_model(exported["model"], spec, exported["config"])
    return inference.predict(fast, image[None], spec)


def test_notebook_client_gets_predicts_labels(exported, tmp_path):
    client = DeepLabModel(_tarball(exported["path"], tmp_path))
    images, _ = scenes(np.random.default_rng(0), 1, 50, 61)
    inputs = [images[0].astype(np.uint8),  # smaller than crop_size: padded with the mean pixel
              np.random.default_rng(1).integers(0, 256, (70, 81, 3), dtype=np.uint8),  # larger
              np.asarray(Image.fromarray(images[0].astype(np.uint8)).resize((40, 33)))]
    for image in inputs:
        labels = client.run(image)
        assert labels.dtype == np.int32 and labels.shape == image.shape[:2]
        np.testing.assert_array_equal(labels, _expected(exported, image)["labels"].numpy()[0])
    assert len(np.unique(labels)) > 1
    probabilities = client.sess.run("SemanticProbabilities:0",
                                    feed_dict={"ImageTensor:0": [inputs[0]]})
    assert probabilities.shape == (1, 50, 61, 3)
    np.testing.assert_allclose(probabilities.sum(-1), 1.0, atol=1e-5)
    inputs_op = client.graph.get_tensor_by_name("ImageTensor:0")
    assert inputs_op.dtype == tf.uint8 and inputs_op.shape.as_list() == [1, None, None, 3]
    assert not [op for op in client.graph.get_operations() if op.type.startswith("Var")]


def test_save_inference_graph_and_atomic_files(exported):
    folder = os.path.dirname(exported["path"])
    assert sorted(os.listdir(folder)) == ["frozen_inference_graph.pb", "inference_graph.pbtxt"]
    with open(os.path.join(folder, "inference_graph.pbtxt")) as f:
        assert 'name: "ImageTensor"' in f.read()


def test_resize_to_range_multi_scale_and_flip(exported, tmp_path):
    export_config = ExportConfig(format="frozen_graph", crop_size=(49, 49), min_resize_value=33,
                                 max_resize_value=49, inference_scales=(0.75, 1.0),
                                 add_flipped_images=True)
    spec = InferenceSpec.from_export_config(exported["config"], export_config)
    path = export_frozen_graph(exported["model"], exported["config"], spec,
                               str(tmp_path / "frozen_inference_graph.pb"))
    client = DeepLabModel(_tarball(path, tmp_path))
    image = np.random.default_rng(2).integers(0, 256, (60, 75, 3), dtype=np.uint8)
    labels = client.run(image)
    assert labels.shape == (60, 75)  # resized to 33 x 42 inside, back to the input size
    np.testing.assert_array_equal(labels, _expected(exported, image, spec)["labels"].numpy()[0])


def test_unwritable_destination_and_bad_class_count_fail_before_work(exported, tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    with pytest.raises(FrozenGraphError, match="not writable"):
        export_frozen_graph(exported["model"], exported["config"], exported["spec"],
                            str(blocker / "frozen_inference_graph.pb"))
    with pytest.raises(FrozenGraphError, match="is a directory"):
        export_frozen_graph(exported["model"], exported["config"], exported["spec"],
                            str(tmp_path))
    with pytest.raises(FrozenGraphError, match="--num_classes=21 but the model has 3"):
        export_frozen_graph(exported["model"], exported["config"], exported["spec"],
                            str(tmp_path / "out.pb"), num_classes=21)
    assert sorted(os.listdir(tmp_path)) == ["a_file"]
