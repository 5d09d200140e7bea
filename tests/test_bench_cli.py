"""deeplab-bench's side-by-side comparison from the command line: its flags' errors, the
table's ratios against the medians, and (slow) a real run with a frozen graph exported by
deeplab-export from the same checkpoint. No test asserts a time."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from deeplab_tf.bench.compare import Comparison, ContenderResult, format_comparison
from deeplab_tf.bench.contenders import (CONTENDERS, Setup, available_contenders,
                                         check_contenders, load_graph_def)
from deeplab_tf.bench.timing import Summary

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.dirname(sys.executable)
MODEL_FLAGS = ["--model_variant=mobilenet_v2", "--depth_multiplier=0.25",
               "--decoder_output_stride=4", "--output_stride=16", "--num_classes=3"]


def _run(binary, *args, timeout=600):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    return subprocess.run([os.path.join(BIN, binary), *args], capture_output=True, text=True,
                          cwd=REPO, env=env, timeout=timeout)


def _rows(table):
    """{contender: [cells]} of the table's body rows."""
    rows = {}
    for line in table.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("| ") and cells[0] in CONTENDERS:
            rows[cells[0]] = cells
    return rows


def _ratio(a, b):
    return f"{a / b:.2f}x"


def test_utilisation_is_against_the_peak_of_each_rows_precision():
    """A bfloat16 or int8 contender's utilisation divides by its own precision's peak (the
    issue's "150 %" came from dividing bfloat16 by the float32 peak); float32 where that
    precision's peak was not measured."""
    from deeplab_tf.bench.model import Result, format_table

    config = {"model_variant": "mobilenet_v2", "output_stride": 16, "decoder_output_stride": []}
    medians = {"tf_folded": 0.10, "tf_folded_bfloat16": 0.04, "tflite_int8": 0.02,
               "openvino_bfloat16": 0.05}
    results = [ContenderResult(name, Summary.of([value]), agreement=1.0)
               for name, value in medians.items()]
    peaks = {"float32": 5e10, "bfloat16": 1e11, "int8": 4e11}
    peak = {"peak_flops": 5e10, "matmul_flops": 4e10, "conv_flops": 5e10, "peaks": peaks}
    text = format_comparison(Comparison(Setup(config, 65, 65), results, peak, madds=10 ** 9,
                                        rounds=1))
    assert "float32 50.0 GFLOP/s, bfloat16 100.0 GFLOP/s, int8 400.0 GOP/s" in text
    rows = _rows(text)
    for name, precision in (("tf_folded", "float32"), ("tf_folded_bfloat16", "bfloat16"),
                            ("tflite_int8", "int8"), ("openvino_bfloat16", "bfloat16")):
        expected = 100 * 2e9 / medians[name] / peaks[precision]
        assert rows[name][6] == f"{expected:.1f} % {precision}", (name, rows[name])
    # Without an int8 peak, int8 rows fall back to float32's (and say so).
    del peaks["int8"]
    rows = _rows(format_comparison(Comparison(Setup(config, 65, 65), results, peak,
                                              madds=10 ** 9, rounds=1)))
    assert rows["tflite_int8"][6] == f"{100 * 2e9 / 0.02 / 5e10:.1f} % float32"
    table = format_table([Result("inference/function_folded", 1, 0.1, 2e9),
                          Result("inference/bfloat16_folded", 1, 0.04, 2e9,
                                 precision="bfloat16")], peak)
    lines = table.splitlines()[1:]
    assert lines[0].split()[-2:] == ["40.0%", "float32"]
    assert lines[1].split()[-2:] == ["50.0%", "bfloat16"]


def test_table_and_json_ratios_follow_the_medians():
    config = {"model_variant": "mobilenet_v2", "output_stride": 16,
              "decoder_output_stride": [4]}
    times = {"tf_function": [0.30, 0.20, 0.40], "tf_frozen": [0.12, 0.16, 0.10],
             "original": [0.25, 0.22, 0.26]}
    results = [ContenderResult(name, Summary.of(values), agreement=1.0)
               for name, values in times.items()]
    results.append(ContenderResult("openvino", error="WorkerError: no runtime"))
    peak = {"peak_flops": 5e10, "matmul_flops": 4e10, "conv_flops": 5e10}
    medians = {name: float(np.median(values)) for name, values in times.items()}
    results[2].agreement = 0.25  # the original's graph with other weights
    for checkpoint, agreement_cell in ((None, "25.000 %"), ("ckpt-1", "25.000 %")):
        report = Comparison(Setup(config, 65, 65, checkpoint_path=checkpoint), results, peak,
                            madds=10 ** 9, rounds=3)
        text = format_comparison(report)
        rows = _rows(text)
        assert ("random weights of seed 0" in text) == (checkpoint is None)
        assert "original: its graph's own weights" in text
        assert sorted(rows) == ["openvino", "original", "tf_frozen", "tf_function"]
        assert rows["openvino"][1] == "failed: WorkerError: no runtime"
        for name, median in medians.items():
            cells = rows[name]
            assert cells[1] == f"{median * 1e3:.1f}"
            assert cells[3] == _ratio(medians["tf_frozen"], median)  # the fastest
            assert cells[4] == _ratio(medians["tf_function"], median)
            assert cells[5] == _ratio(medians["original"], median)
            assert cells[6] == f"{2e9 / median / 1e9:.1f}"
        assert rows["original"][-1] == agreement_cell and rows["tf_frozen"][-1] == "100.000 %"
        record = {r["name"]: r for r in report.to_dict()["results"]}
        for name, median in medians.items():
            assert record[name]["median_s"] == median
            assert record[name]["vs_tf_function"] == pytest.approx(medians["tf_function"] / median)
            assert record[name]["vs_original"] == pytest.approx(medians["original"] / median)
            assert record[name]["vs_fastest"] == pytest.approx(medians["tf_frozen"] / median)
        assert "median_s" not in record["openvino"] and record["openvino"]["error"]


def test_contender_names_and_frozen_graph_are_checked(tmp_path):
    import tensorflow as tf

    assert {"tf_function", "tf_folded", "tf_frozen"} <= set(available_contenders())
    assert "original" not in available_contenders()
    assert check_contenders(["tf_frozen", "tf_frozen", "tflite"], None) == ("tf_frozen", "tflite")
    with pytest.raises(ValueError, match=r"--contenders: unknown contender\(s\) tf_slow"):
        check_contenders(["tf_folded", "tf_slow"], None)
    with pytest.raises(ValueError, match="original needs --compare_frozen_graph"):
        check_contenders(["original"], None)
    missing = tmp_path / "missing.pb"
    with pytest.raises(ValueError, match=f"--compare_frozen_graph={missing}: cannot read"):
        load_graph_def(str(missing))
    garbage = tmp_path / "garbage.pb"
    garbage.write_bytes(b"\xff" * 64)
    with pytest.raises(ValueError, match=f"--compare_frozen_graph={garbage}: not a frozen "
                                         "GraphDef"):
        load_graph_def(str(garbage))
    other = tmp_path / "other.pb"  # a valid GraphDef, but not DeepLab's
    graph = tf.Graph()
    with graph.as_default():
        tf.compat.v1.placeholder(tf.uint8, [1, None, None, 3], name="ImageTensor")
    other.write_bytes(graph.as_graph_def().SerializeToString())
    with pytest.raises(ValueError, match="missing SemanticPredictions"):
        load_graph_def(str(other))


def test_cli_rejects_a_missing_frozen_graph_before_any_work(tmp_path):
    result = _run("deeplab-bench", f"--compare_frozen_graph={tmp_path / 'none.pb'}",
                  f"--output_json={tmp_path / 'bench.json'}", timeout=120)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        f"error: --compare_frozen_graph={tmp_path / 'none.pb'}: cannot read the file "
        "(No such file or directory)")
    assert "Traceback" not in result.stderr and not os.listdir(tmp_path)


@pytest.mark.slow  # deeplab-export, then deeplab-bench's four processes (1-2 min on 2 cores)
def test_cli_compares_contenders_and_the_exported_frozen_graph(tmp_path):
    import tensorflow as tf

    from helpers import tiny_config
    from test_inference import calibrated_model

    model = calibrated_model(tiny_config(num_classes=3), seed=3)
    checkpoint = tf.train.Checkpoint(model=model).write(str(tmp_path / "ckpt" / "model"))
    graph = tmp_path / "frozen_inference_graph.pb"
    exported = _run("deeplab-export", f"--checkpoint_path={checkpoint}",
                    f"--export_path={graph}", "--crop_size=65,65", *MODEL_FLAGS)
    assert exported.returncode == 0, exported.stderr[-3000:]
    output = tmp_path / "out" / "bench.json"
    result = _run("deeplab-bench", "--contenders=tf_function,tf_frozen",
                  f"--compare_frozen_graph={graph}", "--compare_rounds=2", "--crop_size=65,65",
                  f"--checkpoint_path={checkpoint}", f"--output_json={output}", *MODEL_FLAGS)
    assert result.returncode == 0, result.stderr[-3000:]
    with open(output) as f:
        record = json.load(f)
    assert os.listdir(output.parent) == ["bench.json"]  # written atomically, nothing left
    assert record["table"] in result.stdout
    rows = _rows(record["table"])
    assert sorted(rows) == ["original", "tf_frozen", "tf_function"]
    results = {r["name"]: r for r in record["comparison"]["results"]}
    assert sorted(results) == sorted(rows) and not any(r["error"] for r in results.values())
    medians = {name: r["median_s"] for name, r in results.items()}
    fastest = min(medians.values())
    for name, cells in rows.items():
        assert cells[3] == _ratio(fastest, medians[name])
        assert cells[4] == _ratio(medians["tf_function"], medians[name])
        assert cells[5] == _ratio(medians["original"], medians[name])
        assert results[name]["vs_tf_function"] == pytest.approx(
            medians["tf_function"] / medians[name])
    # The exported graph holds the checkpoint's weights: the same labels as the Keras model.
    agreements = {name: r["agreement"] for name, r in results.items()}
    print(f"argmax agreement with tf_function: {agreements}")
    assert agreements["original"] == 1.0 and rows["original"][-1] == "100.000 %"
    assert agreements["tf_frozen"] >= 0.999
    assert record["comparison"]["rounds"] == 2
    assert record["comparison"]["setup"]["checkpoint_path"] == checkpoint


def test_environment_flags_take_name_value_pairs():
    from types import SimpleNamespace

    from deeplab_tf.cli.bench import _assignments
    from deeplab_tf.errors import UserError

    holder = SimpleNamespace(name="contender_env",
                             value=["ONEDNN_MAX_CPU_ISA=AVX2", "A=x=y", "EMPTY="])
    assert _assignments(holder) == {"ONEDNN_MAX_CPU_ISA": "AVX2", "A": "x=y", "EMPTY": ""}
    assert _assignments(SimpleNamespace(name="original_env", value=None)) == {}
    for bad in ("ONEDNN_MAX_CPU_ISA", "=AVX2"):
        with pytest.raises(UserError) as error:
            _assignments(SimpleNamespace(name="original_env", value=[bad]))
        assert str(error.value) == (f"--original_env takes NAME=VALUE. Received: "
                                    f"--original_env={bad}")
