"""The original-graph peer (peers.original_graph) is the original's network and loss.

Its variables are the original's checkpoint list; with random weights written as a TF1
checkpoint and loaded into this project's Keras model, the two give the same logits
(inference) and the same first training-step loss; one step updates the weights as momentum
SGD at the poly rate with the original's bias multiplier (checked in NumPy). Then the
side-by-side report (bench.train_compare) and its script.
"""

import numpy as np
import pytest

from tests.helpers import reference_variables

HEIGHT = WIDTH = 65
BATCH = 2
CLASSES = 21  # the reference list's class count
BASE_LR, STEPS = 0.01, 50


def _config():
    from deeplab_tf.config import ModelConfig

    return ModelConfig(model_variant="xception_65", num_classes=CLASSES, output_stride=16,
                       atrous_rates=(6, 12, 18), decoder_output_stride=(4,))


def _random_values(variables, seed=0):
    """{name: value}: kernels ~ N(0, 1/fan_in), biases and BN shifts ~ N(0, 0.1),
    scales and moving variances in [0.5, 1.5]."""
    rng = np.random.default_rng(seed)
    values = {}
    for var in variables:
        name, shape = var.op.name, tuple(var.shape)
        if name.endswith("weights"):
            fan_in = int(np.prod(shape[:-1])) if not name.endswith("depthwise_weights") \
                else shape[0] * shape[1]
            value = rng.normal(0.0, 1.0 / np.sqrt(fan_in), shape)
        elif name.endswith(("gamma", "moving_variance")):
            value = rng.uniform(0.5, 1.5, shape)
        else:
            value = rng.normal(0.0, 0.1, shape)
        values[name] = value.astype(np.float32)
    return values


@pytest.fixture(scope="module")
def batch():
    from deeplab_tf.bench.train import IGNORE_LABEL, synthetic_batch

    images, labels = synthetic_batch(BATCH, HEIGHT, WIDTH, CLASSES, seed=3)
    assert 0 < (labels == IGNORE_LABEL).mean() < 0.1
    return images, labels


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory, batch):
    """(prefix, values, peer inference logits): random weights saved by tf.train.Saver."""
    import tensorflow as tf
    from peers.original_graph import build_network

    graph = tf.Graph()
    with graph.as_default():
        images = tf.compat.v1.placeholder(tf.float32, [None, HEIGHT, WIDTH, 3])
        peer_logits, variables = build_network(images, _config(), HEIGHT, WIDTH)
        values = _random_values(variables)
        feeds = {}
        for var in variables:
            value = tf.compat.v1.placeholder(tf.float32, var.shape)
            feeds[value] = values[var.op.name]
            tf.compat.v1.add_to_collection("assign", tf.compat.v1.assign(var, value))
    prefix = str(tmp_path_factory.mktemp("peer") / "model.ckpt")
    with tf.compat.v1.Session(graph=graph) as session:
        session.run(graph.get_collection("assign"), feeds)
        logits = session.run(peer_logits, {images: batch[0]})
        tf.compat.v1.train.Saver(variables).save(session, prefix, write_meta_graph=False)
    return prefix, values, logits


@pytest.fixture(scope="module")
def keras_model(checkpoint):
    import deeplab_tf

    model = deeplab_tf.build_model(_config())
    report = deeplab_tf.load_original_checkpoint(model, checkpoint[0])
    assert not report.missing_in_checkpoint and not report.unused_in_checkpoint
    return model


@pytest.fixture(scope="module")
def keras_inference_logits(keras_model, batch):
    return keras_model(batch[0], training=False).numpy()  # before any training-mode call


@pytest.fixture(scope="module")
def peer_steps(checkpoint, batch):
    """The peer trained two steps from the checkpoint: the fetches of each step and the
    logits biases before and after the first."""
    from peers.original_graph import build_training_graph

    from deeplab_tf.config import TrainConfig

    train_config = TrainConfig(train_batch_size=BATCH, base_learning_rate=BASE_LR,
                               training_number_of_steps=STEPS)
    peer = build_training_graph(_config(), HEIGHT, WIDTH, BATCH, train_config,
                                images=batch[0], labels=batch[1], dropout_keep_prob=1.0)
    session = peer.session(checkpoint[0])
    bias = next(v for v in peer.model_variables if v.op.name == "logits/semantic/biases")
    step = peer.step_fn(session, fetch_logits=True)
    first = step()
    bias_after = session.run(bias)
    second = step()
    with peer.graph.as_default():
        names = {v.op.name: tuple(v.shape) for v in peer.model_variables}
        all_names = {v.op.name for v in peer.graph.get_collection("variables")}
        trainable = {v.op.name for v in peer.graph.get_collection("trainable_variables")}
    return dict(first=first, second=second, bias_after=bias_after,
                global_step=int(session.run(peer.global_step)), names=names,
                all_names=all_names, trainable=trainable)


def test_variables_are_the_originals(peer_steps):
    expected = reference_variables("xception65_os16_dec.tsv")
    assert peer_steps["names"] == expected
    moving = {n for n in expected if n.endswith(("moving_mean", "moving_variance"))}
    assert peer_steps["trainable"] == set(expected) - moving
    # Nothing else: one momentum slot per trainable variable, and the step.
    assert peer_steps["all_names"] == (set(expected) | {"global_step"}
                                       | {f"{n}/Momentum" for n in peer_steps["trainable"]})


def test_inference_logits_equal_the_keras_models(checkpoint, keras_inference_logits):
    peer_logits = checkpoint[2]
    assert peer_logits.shape == keras_inference_logits.shape == (BATCH, 17, 17, CLASSES)
    scale = np.abs(keras_inference_logits).max()
    assert np.std(keras_inference_logits) > 0.05  # non-trivial logits
    relative = np.abs(peer_logits - keras_inference_logits).max() / scale
    assert relative < 1e-4, relative


def test_original_frozen_graph_gives_our_labels(keras_model, tmp_path):
    """export_model.py's graph, built TF1 style from the Keras model's weights (FusedBatchNorm
    unfolded, padding to --crop_size), labels an image smaller than the crop as the project's
    default path does (batch norm folded, padding to the same size)."""
    import tensorflow as tf
    from peers.original_export import original_frozen_graph

    from deeplab_tf import inference
    from deeplab_tf.bench.contenders import graph_function, load_graph_def
    from deeplab_tf.modeling.backbones import mean_pixel

    graph_def = original_frozen_graph(keras_model, _config(), (HEIGHT, WIDTH))
    ops = {node.op for node in graph_def.node}
    assert "FusedBatchNormV3" in ops and not ops & {"VariableV2", "VarHandleOp"}
    path = tmp_path / "frozen_inference_graph.pb"
    path.write_bytes(graph_def.SerializeToString())
    run = graph_function(load_graph_def(str(path)))
    image = np.random.default_rng(5).integers(0, 256, (1, 49, 57, 3), dtype=np.uint8)
    labels = run(image)
    spec = inference.InferenceSpec(output_stride=16, crop_size=(HEIGHT, WIDTH),
                                   pad_value=mean_pixel("xception_65"))
    ours = inference.predict_function(inference.prepare_model(keras_model, spec, _config()),
                                      spec, input_dtype=tf.uint8)(image).numpy()
    assert labels.shape == ours.shape == (1, 49, 57) and labels.dtype == np.int32
    assert len(np.unique(ours)) >= 3  # non-trivial labels
    assert (labels == ours).mean() > 0.999, (labels == ours).mean()
    with pytest.raises(ValueError, match="do not match the original graph"):
        from deeplab_tf.config import ModelConfig

        original_frozen_graph(keras_model, ModelConfig(
            model_variant="xception_41", num_classes=CLASSES, atrous_rates=(6, 12, 18),
            decoder_output_stride=(4,)), (HEIGHT, WIDTH))


def test_regularization_is_slim_l2_of_the_regular_kernels(checkpoint, peer_steps, keras_model):
    values = checkpoint[1]
    # slim: wd * sum(w**2) / 2 over conv, pointwise and logits kernels (not depthwise).
    expected = sum(0.5 * 4e-5 * np.sum(v.astype(np.float64) ** 2)
                   for n, v in values.items() if n.endswith("/weights"))
    assert peer_steps["first"]["regularization"] == pytest.approx(expected, rel=1e-5)
    ours = sum(float(loss) for loss in keras_model.losses)
    assert ours == pytest.approx(expected, rel=1e-5)


def test_first_step_loss_equals_ours_and_the_step_updates(keras_model, keras_inference_logits,
                                                          batch, peer_steps, checkpoint):
    from deeplab_tf.losses import mean_loss, softmax_cross_entropy

    images, labels = batch
    keras_model.get_layer("concat_projection_dropout").rate = 0.0  # the peer's keep_prob 1
    logits = keras_model(images, training=True)
    total, count = softmax_cross_entropy(logits, labels, num_classes=CLASSES,
                                         ignore_label=255)
    ours = float(mean_loss(total, count))
    first, second = peer_steps["first"], peer_steps["second"]
    assert first["cross_entropy"] == pytest.approx(ours, rel=1e-5, abs=1e-5)
    assert first["loss"] == pytest.approx(first["cross_entropy"] + first["regularization"],
                                          rel=1e-6)

    # The poly rate (power 0.9) at steps 0 and 1, and one update done.
    assert first["learning_rate"] == pytest.approx(BASE_LR, rel=1e-6)
    assert second["learning_rate"] == pytest.approx(BASE_LR * (1 - 1 / STEPS) ** 0.9,
                                                    rel=1e-5)
    assert peer_steps["global_step"] == 2
    assert abs(second["cross_entropy"] - first["cross_entropy"]) > 1e-4

    # The logits bias: its gradient is the mean over kept pixels of softmax - one-hot (the
    # align-corners resizes pass a constant through); momentum from zero, doubled for biases.
    pixel_logits = first["logits"].astype(np.float64)
    flat = labels.reshape(-1)
    keep = flat != 255
    probs = np.exp(pixel_logits - pixel_logits.max(1, keepdims=True))
    probs /= probs.sum(1, keepdims=True)
    one_hot = np.eye(CLASSES)[np.where(keep, flat, 0)]
    gradient = ((probs - one_hot) * keep[:, None]).sum(0) / keep.sum()
    before = checkpoint[1]["logits/semantic/biases"]
    np.testing.assert_allclose(peer_steps["bias_after"] - before, -BASE_LR * 2.0 * gradient,
                               rtol=1e-3, atol=1e-7)


def _report(trainer_times, original_times, batch_size=2):
    from peers.train_compare import ORIGINAL, TRAINER, TrainComparison

    from deeplab_tf.bench.timing import Summary

    report = TrainComparison(_config().to_dict(), 513, 513, batch_size, "float32",
                             rounds=len(trainer_times), warmup=2)
    report.summaries = {TRAINER: Summary.of(trainer_times)}
    if original_times:
        report.summaries[ORIGINAL] = Summary.of(original_times)
    report.losses = {TRAINER: [3.05, 3.0], ORIGINAL: [3.04, 3.0]}
    report.build_seconds = {TRAINER: 30.0, ORIGINAL: 20.0}
    return report


def test_training_comparison_report_ratio_and_table():
    import json

    from peers.train_compare import (ORIGINAL, TRAINER,
                                     format_training_comparison)

    report = _report([4.0, 5.0, 9.0], [6.0, 2.0, 5.5])
    # images/s = batch / median step: 2/5 (trainer), 2/5.5 (original).
    assert report.images_per_second(TRAINER) == pytest.approx(0.4)
    assert report.ratio == pytest.approx(5.5 / 5.0)
    table = format_training_comparison(report)
    assert "| trainer | 0.400 | 5.00 | 4.00..9.00 | 3.050 | 30 |" in table
    assert "| original_graph | 0.364 | 5.50 | 2.00..6.00 | 3.040 | 20 |" in table
    assert "1.10x" in table
    values = json.loads(json.dumps(report.to_dict()))
    assert values["ratio_trainer_over_original"] == pytest.approx(1.1)
    assert values["results"][ORIGINAL]["median_s"] == 5.5
    assert "trainer's" not in table and values["trainer_environment"] == {}
    report.trainer_environment = {"TF_ENABLE_ONEDNN_OPTS": "1", "ONEDNN_MAX_CPU_ISA": "AVX2"}
    table = format_training_comparison(report)
    assert ("; trainer's ONEDNN_MAX_CPU_ISA=AVX2; trainer's TF_ENABLE_ONEDNN_OPTS=1"
            in table.splitlines()[0])
    assert report.to_dict()["trainer_environment"]["ONEDNN_MAX_CPU_ISA"] == "AVX2"

    failed = _report([4.0], None)
    failed.errors[ORIGINAL] = "original_graph: the process died"
    assert failed.ratio is None
    assert "| original_graph | failed: original_graph: the process died |" in \
        format_training_comparison(failed)


def test_side_by_side_script_rejects_a_bad_crop_size(capsys):
    import importlib.util
    import os

    path = os.path.join(os.path.dirname(__file__), os.pardir, "benchmarks",
                        "train_side_by_side.py")
    spec = importlib.util.spec_from_file_location("train_side_by_side", path)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    with pytest.raises(SystemExit):
        script.main(["--crop_size=513x513"])
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert "--crop_size" in error and "'513x513'" in error
    with pytest.raises(SystemExit):
        script.main(["--trainer_env=TF_ENABLE_ONEDNN_OPTS"])
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert "--trainer_env" in error and "NAME=VALUE" in error
    assert script._parser().parse_args(
        ["--trainer_env=ONEDNN_MAX_CPU_ISA=AVX2"]).trainer_env == [("ONEDNN_MAX_CPU_ISA", "AVX2")]
    assert "avx512f: " in script.machine_lines()[1]


@pytest.mark.slow
def test_compare_training_times_both_steps():
    from peers.train_compare import NAMES, compare_training

    report = compare_training(_config().to_dict(), HEIGHT, WIDTH, 1, rounds=1,
                              log=lambda line: None)
    assert not report.errors
    for name in NAMES:
        assert report.summaries[name].count == 1
        losses = report.losses[name]
        assert len(losses) == 3  # two warm-up steps and one timed
        # Both start near ln(21) (logits initialised with stddev 0.01), and train.
        assert 2.5 < losses[0] < 3.6 and losses[-1] != losses[0]
    assert report.ratio == pytest.approx(report.summaries[NAMES[1]].median
                                         / report.summaries[NAMES[0]].median)
