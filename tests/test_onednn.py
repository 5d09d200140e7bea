"""``import deeplab_tf`` turns oneDNN's kernels on for x86 CPUs with AVX2 (onednn.py).

The rule is tested on given CPU flags (the machine's own flags decide only the end-to-end
check): set where TensorFlow leaves oneDNN off and the CPU has AVX2; left alone where
TensorFlow turns it on itself, where the user set TF_ENABLE_ONEDNN_OPTS, where TensorFlow
was imported first, without AVX2 and off x86. A benchmark's original peer gets TensorFlow's
own default back.
"""

import os
import platform
import subprocess
import sys

import pytest

from deeplab_tf.runtime import onednn

AVX2_ONLY = frozenset({"sse4_2", "avx", "avx2", "fma"})
AVX512_VNNI = AVX2_ONLY | {"avx512f", "avx512_vnni"}


@pytest.fixture
def fresh(monkeypatch):
    """A process state as before ``import deeplab_tf``: nothing decided, nothing set,
    TensorFlow not imported."""
    monkeypatch.setitem(onednn._state, "done", None)
    for name in (onednn.ENV, onednn.SET_HERE):
        monkeypatch.setenv(name, "")  # recorded, so that the end of the test restores it
        monkeypatch.delenv(name)
    monkeypatch.delitem(sys.modules, "tensorflow", raising=False)
    return monkeypatch


def test_avx2_cpu_gets_onednn_and_the_original_peer_gets_tensorflows_default(fresh):
    done = onednn.prefer_onednn(AVX2_ONLY, machine="x86_64")
    assert "set by deeplab_tf" in done
    assert os.environ[onednn.ENV] == "1"
    assert onednn.prefer_onednn(frozenset(), machine="aarch64") == done  # once per process
    assert onednn.original_environment(AVX2_ONLY) == {onednn.ENV: "0", onednn.SET_HERE: "0"}
    # A child process inherits both variables: it knows the choice was not the user's.
    fresh.setitem(onednn._state, "done", None)
    assert "set by deeplab_tf" in onednn.prefer_onednn(AVX2_ONLY, machine="x86_64")
    assert onednn.original_environment(AVX2_ONLY)[onednn.ENV] == "0"


def test_tensorflows_own_choice_is_kept_where_it_turns_onednn_on(fresh):
    assert "TensorFlow's default" in onednn.prefer_onednn(AVX512_VNNI, machine="x86_64")
    assert onednn.ENV not in os.environ
    assert onednn.tensorflow_turns_it_on(AVX512_VNNI)
    assert not onednn.tensorflow_turns_it_on(AVX2_ONLY)
    assert onednn.original_environment(AVX512_VNNI)[onednn.ENV] == "1"


@pytest.mark.parametrize("case", ["user_off", "no_avx2", "arm", "tensorflow_first"])
def test_nothing_is_set_where_it_should_not_be(fresh, case):
    flags, machine = AVX2_ONLY, "x86_64"
    if case == "user_off":
        fresh.setenv(onednn.ENV, "0")
    elif case == "no_avx2":
        flags = frozenset({"sse4_2", "avx"})
    elif case == "arm":
        machine = "aarch64"
    else:
        fresh.setitem(sys.modules, "tensorflow", object())
    done = onednn.prefer_onednn(flags, machine=machine)
    expected = {"user_off": f"{onednn.ENV}=0 kept", "no_avx2": "no AVX2",
                "arm": "not Linux x86", "tensorflow_first": "TensorFlow was imported before"}
    assert expected[case] in done
    assert os.environ.get(onednn.ENV) == ("0" if case == "user_off" else None)
    # The user's own setting is what a benchmark's original peer inherits (nothing added).
    assert (onednn.original_environment(flags) == {}) == (case == "user_off")


@pytest.mark.skipif(platform.machine().lower() not in ("x86_64", "amd64")
                    or not sys.platform.startswith("linux"), reason="the rule is for Linux x86")
def test_tensorflow_imported_after_deeplab_tf_runs_onednn_on_an_avx2_cpu():
    probe = ("import deeplab_tf\n"
             "from deeplab_tf.runtime import onednn\n"
             "from tensorflow.python.util import _pywrap_util_port\n"
             "print(_pywrap_util_port.IsMklEnabled())\n"
             "print(onednn.prefer_onednn())\n")
    env = {k: v for k, v in os.environ.items() if k not in (onednn.ENV, onednn.SET_HERE)}
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"
    lines = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True,
                           text=True, check=True).stdout.splitlines()
    flags = onednn._flags(None)
    if "avx2" in flags or onednn.tensorflow_turns_it_on(flags):
        assert lines[0] == "True", lines
    assert lines[1].startswith(("oneDNN on", "no AVX2")), lines
    off = subprocess.run([sys.executable, "-c", probe], env={**env, onednn.ENV: "0"},
                         capture_output=True, text=True, check=True).stdout.splitlines()
    assert off == ["False", f"{onednn.ENV}=0 kept (set in the environment)"]
