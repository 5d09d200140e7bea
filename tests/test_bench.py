"""The bench package's pieces on tiny inputs: hardware detection on fake /proc/cpuinfo text,
timing summaries, worker processes in alternating rounds, the side-by-side comparison, the
Trainer-step benchmark and ``benchmarks/gpu.sh --smoke``. No test asserts a time."""

import os
import signal
import subprocess
import sys

import numpy as np
import pytest

from deeplab_tf.runtime import hardware

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

EPYC_AVX2 = """processor\t: 0
vendor_id\t: AuthenticAMD
model name\t: AMD EPYC
flags\t\t: fpu vme sse sse2 ssse3 sse4_1 sse4_2 avx avx2 fma f16c bmi2
processor\t: 1
model name\t: AMD EPYC
flags\t\t: fpu vme sse sse2 ssse3 sse4_1 sse4_2 avx avx2 fma f16c bmi2
"""
XEON_AVX512_BF16 = """processor\t: 0
model name\t: Intel(R) Xeon(R) Platinum 8375C
flags\t\t: fpu sse2 avx avx2 fma avx512f avx512bw avx512_vnni avx512_bf16
"""
SAPPHIRE_AMX = """processor\t: 0
model name\t: Intel(R) Xeon(R) Platinum 8480+
flags\t\t: fpu avx2 avx512f amx_tile amx_bf16 amx_int8
"""
GRAVITON = """processor\t: 0
BogoMIPS\t: 243.75
Features\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp bf16
"""


@pytest.mark.parametrize("text, policy, flag", [
    (EPYC_AVX2, "float32", "no native bfloat16"),
    (XEON_AVX512_BF16, "bfloat16", "avx512_bf16"),
    (SAPPHIRE_AMX, "bfloat16", "amx_bf16"),
    (GRAVITON, "float32", "no native bfloat16"),
])
def test_auto_mixed_precision_from_cpuinfo(text, policy, flag):
    machine = hardware.detect(cpuinfo_text=text, gpus=())
    assert machine.native_bf16 == (policy == "bfloat16")
    chosen, reason = hardware.resolve_mixed_precision("auto", machine)
    assert chosen == policy and flag in reason


def test_cpuinfo_parsing_and_description():
    model, flags = hardware.parse_cpuinfo(EPYC_AVX2)
    assert model == "AMD EPYC" and "avx2" in flags and "avx512f" not in flags
    machine = hardware.detect(cpuinfo_text=EPYC_AVX2, gpus=())
    assert "AMD EPYC" in machine.describe() and "AVX2" in machine.describe()
    assert "AMX" in hardware.detect(cpuinfo_text=SAPPHIRE_AMX, gpus=()).describe()
    assert hardware.parse_cpuinfo("") == ("", frozenset())


@pytest.mark.parametrize("capability, policy", [((8, 0), "bfloat16"), ((9, 0), "bfloat16"),
                                                ((7, 5), "float16"), ((6, 1), "float32")])
def test_auto_mixed_precision_on_gpus(capability, policy):
    machine = hardware.detect(cpuinfo_text=EPYC_AVX2, gpus=[("NVIDIA X", capability)])
    chosen, reason = hardware.resolve_mixed_precision("auto", machine)
    assert chosen == policy and "NVIDIA X" in reason


def test_explicit_mixed_precision_is_kept_and_unknown_rejected():
    machine = hardware.detect(cpuinfo_text=EPYC_AVX2, gpus=())
    assert hardware.resolve_mixed_precision("bfloat16", machine)[0] == "bfloat16"
    with pytest.raises(ValueError, match="'fp8'"):
        hardware.resolve_mixed_precision("fp8", machine)


@pytest.mark.parametrize("environ, native", [
    ({}, True), ({"ONEDNN_MAX_CPU_ISA": "AVX2"}, False), ({"DNNL_MAX_CPU_ISA": "avx512_core"}, False),
    ({"ONEDNN_MAX_CPU_ISA": "AVX512_CORE_BF16"}, True), ({"ONEDNN_MAX_CPU_ISA": "ALL"}, True),
    ({"TF_ENABLE_ONEDNN_OPTS": "0"}, False), ({"TF_ENABLE_ONEDNN_OPTS": "1"}, True)])
def test_kernel_limits_turn_native_bfloat16_off(environ, native):
    """bfloat16 counts as native only where TensorFlow's oneDNN kernels may use it: not with
    TensorFlow's own kernels nor with oneDNN held below AVX512_CORE_BF16 (the AVX2 kind
    emulated); the reason names the setting."""
    machine = hardware.detect(cpuinfo_text=SAPPHIRE_AMX, gpus=(), environ=environ)
    assert machine.native_bf16 == native
    for resolve in (hardware.resolve_mixed_precision, hardware.resolve_inference_precision):
        chosen, reason = resolve("auto", machine)
        assert chosen == ("bfloat16" if native else "float32")
        assert all(f"{name}={value}" in reason for name, value in environ.items()) or native


@pytest.mark.parametrize("text, gpus, expected", [
    (EPYC_AVX2, (), "float32"), (XEON_AVX512_BF16, (), "bfloat16"),
    (SAPPHIRE_AMX, (), "bfloat16"), (EPYC_AVX2, [("NVIDIA A", (8, 0))], "bfloat16"),
    (EPYC_AVX2, [("NVIDIA T", (7, 5))], "float32")])
def test_auto_inference_precision(text, gpus, expected):
    """--inference_precision=auto: bfloat16 where it is native (said with the agreement
    rule), float32 elsewhere (float16 GPUs included: inference offers no float16)."""
    machine = hardware.detect(cpuinfo_text=text, gpus=gpus)
    chosen, reason = hardware.resolve_inference_precision("auto", machine)
    assert chosen == expected
    assert ("99.5 %" in reason) == (expected == "bfloat16")
    assert hardware.resolve_inference_precision("float32", machine)[0] == "float32"
    assert hardware.resolve_inference_precision("bfloat16", machine)[0] == "bfloat16"
    with pytest.raises(ValueError, match="inference_precision must be one of auto, float32, "
                                         "bfloat16. Received: 'float16'"):
        hardware.resolve_inference_precision("float16", machine)


def test_summary_and_time_calls():
    from deeplab_tf.bench.timing import Summary, time_calls

    values = [0.3, 0.1, 0.2, 0.5]
    s = Summary.of(values)
    assert (s.median, s.best, s.worst, s.count) == (np.median(values), 0.1, 0.5, 4)
    assert s.spread == pytest.approx(0.4 / np.median(values))
    calls = []
    assert len(time_calls(lambda: calls.append(1), warmup=2, repeats=3)) == 3
    assert len(calls) == 5
    with pytest.raises(ValueError):
        Summary.of([])


def _counter_factory(label):
    """Worker factory: a callable returning (label, pid, calls so far)."""
    count = [0]

    def call():
        count[0] += 1
        return label, os.getpid(), count[0]

    return call, {"label": label}


def _environment_factory(name):
    """Worker factory: the process's value of environment variable ``name``."""
    return (lambda: os.environ.get(name)), {"value": os.environ.get(name)}


def _failing_factory():
    raise RuntimeError("cannot build this one")


def _state(pid):
    with open(f"/proc/{pid}/status") as f:
        return next(line.split()[1] for line in f if line.startswith("State:"))


def test_workers_alternate_and_idle_ones_are_stopped():
    from deeplab_tf.bench.worker import Pool, Worker, WorkerError

    pool = Pool([Worker(name, _counter_factory, (name,)) for name in ("a", "b", "c")])
    try:
        assert [w.facts["label"] for w in pool.workers] == ["a", "b", "c"]
        pids = [w._process.pid for w in pool.workers]
        assert len(set(pids)) == 3 and os.getpid() not in pids
        orders = []
        for index in range(3):
            outputs = pool.round(index, want_output=True)
            orders.append(list(outputs))
            assert {name: out[1][2] for name, out in outputs.items()} == dict.fromkeys("abc",
                                                                                      index + 1)
            assert {out[1][1] for out in outputs.values()} == set(pids)
        assert orders == [["a", "b", "c"], ["b", "c", "a"], ["c", "a", "b"]]
        assert all(_state(pid) == "T" for pid in pids)  # stopped between calls
    finally:
        pool.close()
    with pytest.raises(WorkerError, match="broken: RuntimeError: cannot build this one"):
        Worker("broken", _failing_factory)


def _dying_factory(when):
    """Worker factory: a process killed (as for memory) while building or at its first call."""
    def die():
        os.kill(os.getpid(), signal.SIGKILL)

    if when == "build":
        die()
    return die, {}


def test_a_worker_killed_is_an_error_not_a_wait():
    from deeplab_tf.bench.worker import Worker, WorkerError

    def hung(*_):
        raise AssertionError("waited for a dead worker")

    previous = signal.signal(signal.SIGALRM, hung)
    signal.alarm(120)
    try:
        with pytest.raises(WorkerError, match=r"build: the process died \(exit code -9"):
            Worker("build", _dying_factory, ("build",))
        worker = Worker("call", _dying_factory, ("call",))
        with pytest.raises(WorkerError, match=r"call: the process died \(exit code"):
            worker.call()
        worker.close()
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def test_worker_environment_is_the_new_process_only():
    from deeplab_tf.bench.worker import Worker

    name = "DEEPLAB_TF_TEST_WORKER_VARIABLE"
    assert name not in os.environ
    worker = Worker("env", _environment_factory, (name,), environment={name: "oneDNN"})
    try:
        assert worker.facts["value"] == "oneDNN"
        assert name not in os.environ  # the parent's environment is restored
    finally:
        worker.close()


@pytest.mark.slow  # several subprocesses that each build and trace models (1-4 min on 2 cores)
def test_compare_tf_contenders_on_a_tiny_model():
    from deeplab_tf.bench.compare import compare, format_comparison
    from deeplab_tf.bench.contenders import Setup
    from deeplab_tf.config import ModelConfig

    config = ModelConfig(model_variant="mobilenet_v2", num_classes=3, depth_multiplier=0.25)
    report = compare(Setup(config.to_dict(), 33, 33), ("tf_folded", "no_such_runtime"),
                     rounds=2, log=lambda *_: None)
    names = [r.name for r in report.results]
    assert names == ["tf_function", "tf_folded", "no_such_runtime"]
    reference, folded, missing = report.results
    assert reference.agreement == 1.0 and folded.agreement >= 0.99
    assert folded.summary.count == 2 and "Unknown contender" in missing.error
    assert report.madds > 0 and report.peak["peak_flops"] >= report.peak["conv_flops"]
    assert report.speedup("tf_function", "tf_function") == 1.0
    table = format_comparison(report)
    assert "| tf_folded |" in table and "failed: " in table and "peak" in table


@pytest.mark.slow  # eight contender processes, two int8 calibrations (3-6 min on 2 cores)
def test_compare_precision_and_int8_contenders_on_a_tiny_model():
    """The bfloat16, SavedModel and int8 contenders build, run and agree with the Keras model
    on most labels (random weights: the margins are small); the peak is measured for every
    precision the contenders compute in."""
    from deeplab_tf.bench.compare import compare, format_comparison
    from deeplab_tf.bench.contenders import Setup
    from deeplab_tf.config import ModelConfig

    config = ModelConfig(model_variant="mobilenet_v2", num_classes=3, depth_multiplier=0.25)
    names = ("tf_folded_bfloat16", "saved_model", "saved_model_bfloat16", "openvino_bfloat16",
             "tflite_int8", "openvino_tflite_int8", "openvino_int8")
    report = compare(Setup(config.to_dict(), 49, 65, scenes=True, calibration_images=2), names,
                     rounds=1, log=lambda *_: None)
    results = {r.name: r for r in report.results}
    assert not [r.error for r in results.values() if r.error]
    assert results["saved_model"].agreement == 1.0
    for name in names:
        assert results[name].agreement > 0.9, (name, results[name].agreement)
    assert set(report.peak["peaks"]) == {"float32", "bfloat16", "int8"}
    assert "% int8 |" in format_comparison(report)


@pytest.mark.slow  # several subprocesses that each build and trace models (1-4 min on 2 cores)
def test_trainer_step_benchmark_times_every_step_after_warmup():
    from deeplab_tf.bench.train import time_trainer_steps
    from deeplab_tf.config import ModelConfig

    config = ModelConfig(model_variant="mobilenet_v2", num_classes=3, depth_multiplier=0.25)
    times, loss = time_trainer_steps(config.to_dict(), 33, 33, 2, "float32", False, steps=2,
                                     warmup=1)
    assert len(times) == 2 and all(t > 0 for t in times)
    # Untrained 3-class softmax: cross-entropy near log(3), plus a small weight decay.
    assert np.isfinite(loss) and 0.5 < loss < 5


@pytest.mark.slow  # several subprocesses that each build and trace models (1-4 min on 2 cores)
def test_gpu_script_smoke_mode_runs_on_cpu():
    result = subprocess.run(["bash", os.path.join(ROOT, "benchmarks", "gpu.sh"), "--smoke"],
                            cwd=ROOT, capture_output=True, text=True, timeout=600,
                            env={**os.environ, "PYTHON": sys.executable})
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout
    assert "mixed_precision=auto -> " in out
    assert "| train/float32 |" in out and "| train/float32 mirrored |" in out
    assert "| tf_folded |" in out and "failed" not in out


def test_gpu_script_rejects_unknown_arguments():
    result = subprocess.run(["bash", os.path.join(ROOT, "benchmarks", "gpu.sh"), "--fast"],
                            capture_output=True, text=True)
    assert result.returncode == 2 and "'--fast'" in result.stderr
