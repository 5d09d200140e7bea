"""oneDNN's kernels on every x86 CPU with AVX2, not only where TensorFlow turns them on.

TensorFlow's Linux wheels carry two sets of CPU kernels for convolutions, matmuls and batch
norm: its own (Eigen, compiled for plain AVX: the same code on every x86 CPU) and oneDNN's
(JIT-compiled for the CPU found at run time). TensorFlow uses oneDNN by default only on CPUs
with AVX-512 VNNI / BF16, AVX-VNNI or AMX (``tensorflow_turns_it_on``); on an AVX2-only CPU
it runs its own kernels, which made the training step slower there (docs/performance.md has
the measurements; ``benchmarks/train_side_by_side.py --trainer_env`` repeats them).

``prefer_onednn`` (called by ``import deeplab_tf``, before TensorFlow is imported) sets
``TF_ENABLE_ONEDNN_OPTS=1`` where TensorFlow would leave it off on a CPU with AVX2. It
changes nothing when the variable is already set (``TF_ENABLE_ONEDNN_OPTS=0`` keeps
TensorFlow's own kernels), when TensorFlow was imported first (the setting is read once, at
its import), or off Linux x86. The numbers differ from TensorFlow's kernels' in the last
bits (a different summation order), as on the CPUs where TensorFlow picks oneDNN itself.

Example:

>>> prefer_onednn()
'oneDNN on (TensorFlow's default for this CPU)'
"""

from __future__ import annotations

import os
import platform
import sys
from typing import Dict, FrozenSet, Optional

from deeplab_tf.runtime.hardware import detect

ENV = "TF_ENABLE_ONEDNN_OPTS"
# Set beside ENV when deeplab_tf set it, so that child processes know it was not the user.
SET_HERE = "DEEPLAB_TF_SET_ONEDNN_OPTS"
# The CPU features for which TensorFlow's Linux build enables oneDNN by itself (its
# DefaultOneDnnPolicy), as /proc/cpuinfo names them.
TENSORFLOW_DEFAULT_FLAGS = ("avx512_vnni", "avx512_bf16", "avx_vnni", "amx_tile", "amx_int8",
                            "amx_bf16")
_X86 = ("x86_64", "amd64")
_SET_BY_US = f"oneDNN on ({ENV}=1 set by deeplab_tf: TensorFlow leaves it off on this CPU)"

_state: Dict[str, Optional[str]] = {"done": None}


def _flags(cpu_flags: Optional[FrozenSet[str]]) -> FrozenSet[str]:
    return detect(gpus=()).cpu_flags if cpu_flags is None else cpu_flags


def _set_here() -> bool:
    return os.environ.get(SET_HERE) == "1" and os.environ.get(ENV) == "1"


def tensorflow_turns_it_on(cpu_flags: Optional[FrozenSet[str]] = None) -> bool:
    """Whether TensorFlow, left to itself, runs oneDNN's kernels on this CPU (Linux x86)."""
    return any(flag in _flags(cpu_flags) for flag in TENSORFLOW_DEFAULT_FLAGS)


def prefer_onednn(cpu_flags: Optional[FrozenSet[str]] = None,
                  machine: Optional[str] = None) -> str:
    """Apply the rule above once per process; returns what was done (or why not)."""
    if _state["done"] is not None:
        return _state["done"]
    machine = (machine or platform.machine()).lower()
    if _set_here():  # by deeplab_tf in this process or in a parent
        done = _SET_BY_US
    elif os.environ.get(ENV) is not None:
        done = f"{ENV}={os.environ[ENV]} kept (set in the environment)"
    elif machine not in _X86 or not sys.platform.startswith("linux"):
        done = "not Linux x86: TensorFlow's default kept"
    else:  # only now is /proc/cpuinfo read
        done = _decide(_flags(cpu_flags))
    _state["done"] = done
    return done


def _decide(flags: FrozenSet[str]) -> str:
    if tensorflow_turns_it_on(flags):
        return "oneDNN on (TensorFlow's default for this CPU)"
    if "avx2" not in flags:
        return "no AVX2: TensorFlow's own kernels kept"
    if "tensorflow" in sys.modules:
        return ("TensorFlow was imported before deeplab_tf: its own kernels kept (set "
                f"{ENV}=1 before importing it for oneDNN's)")
    os.environ[ENV] = os.environ[SET_HERE] = "1"
    return _SET_BY_US


def original_environment(cpu_flags: Optional[FrozenSet[str]] = None) -> Dict[str, str]:
    """The variable a benchmark peer gets to run the kernels the original ran with here.

    TensorFlow's own default for this CPU, unless the user set ``TF_ENABLE_ONEDNN_OPTS``
    (then that value, inherited as it is: an empty dict).
    """
    if os.environ.get(ENV) is not None and not _set_here():
        return {}
    return {ENV: "1" if tensorflow_turns_it_on(cpu_flags) else "0", SET_HERE: "0"}
