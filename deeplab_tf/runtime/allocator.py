"""Keep freed memory in the process: glibc's malloc without fresh mmap pages per tensor.

TensorFlow's CPU tensors come from ``malloc``. glibc hands out blocks above its mmap
threshold (32 MB at most) as new anonymous mappings and unmaps them on ``free``, and trims
the heap's top back to the kernel, so each training step's large feature maps and gradients
are page-faulted and zeroed by the kernel again and again. Measured on xception_65 OS16 +
decoder, 513x513, batch 2, float32, with TensorFlow's own kernels (``TF_ENABLE_ONEDNN_OPTS=0``,
TensorFlow's default on CPUs without AVX-512 VNNI/BF16), 2-core AMD EPYC: 2.7 million minor
page faults and 6.2-6.9 s of kernel time per step of the ``Trainer`` (0.7-1.0 million in the
original's TF1 graph); with the settings below 0.35-0.6 million and 1.0-1.7 s, and the step
8.7-9.7 s -> 5.4-5.5 s. (With oneDNN's kernels, which keep their own buffers, the faults were
few already.)

``keep_freed_memory`` sets ``M_MMAP_MAX = 0`` (no block is served by its own mapping: every
allocation comes from the heap and is reused after ``free``) and a 2 GB ``M_TRIM_THRESHOLD``
(the heap's top is not handed back). The process keeps its peak memory reserved instead of
returning it between steps; peak resident memory of that step was 5.4 GB with glibc's
defaults and 5.8-7.1 GB with these settings (fragmentation varies from run to run).
``import deeplab_tf`` calls it once; ``DEEPLAB_TF_KEEP_FREED_MEMORY=0`` in the environment
keeps glibc's defaults, and so does anything other than glibc (nothing is changed there).

Example:

>>> keep_freed_memory()
'glibc malloc: M_MMAP_MAX=0, M_TRIM_THRESHOLD=2147483647'
"""

from __future__ import annotations

import ctypes
import os

ENV = "DEEPLAB_TF_KEEP_FREED_MEMORY"
# mallopt parameters (glibc's malloc.h).
M_TRIM_THRESHOLD = -1
M_MMAP_MAX = -4
TRIM_THRESHOLD = 2 ** 31 - 1

_state = {"done": None}


def _glibc():
    try:
        libc = ctypes.CDLL(None)
        libc.gnu_get_libc_version  # noqa: B018 (only glibc has it)
        return libc
    except (OSError, AttributeError):
        return None


def keep_freed_memory() -> str:
    """Apply the settings above once per process; returns what was done (or why not)."""
    if _state["done"] is not None:
        return _state["done"]
    if os.environ.get(ENV, "1").strip().lower() in ("0", "false", "no", "off"):
        _state["done"] = f"glibc malloc defaults kept ({ENV}={os.environ[ENV]})"
        return _state["done"]
    libc = _glibc()
    if libc is None:
        _state["done"] = "not glibc: malloc left as it is"
        return _state["done"]
    ok = libc.mallopt(M_MMAP_MAX, 0) == 1 and \
        libc.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1
    _state["done"] = (f"glibc malloc: M_MMAP_MAX=0, M_TRIM_THRESHOLD={TRIM_THRESHOLD}" if ok
                      else "glibc refused mallopt: malloc left as it is")
    return _state["done"]
