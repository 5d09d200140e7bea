"""Keep freed memory in the process: glibc's malloc without fresh mmap pages per tensor.

TensorFlow's CPU tensors come from ``malloc``. glibc hands out blocks above its mmap
threshold (32 MB at most) as new anonymous mappings and unmaps them on ``free``, and trims
the heap's top back to the kernel, so each training step's large feature maps and gradients
are page-faulted and zeroed by the kernel again and again (with TensorFlow's own kernels;
oneDNN's keep their own buffers). docs/performance.md has the measurements.

``keep_freed_memory`` sets ``M_MMAP_MAX = 0`` (no block is served by its own mapping: every
allocation comes from the heap and is reused after ``free``) and a 2 GB ``M_TRIM_THRESHOLD``
(the heap's top is not handed back). The process keeps its peak memory reserved instead of
returning it between steps, so its peak resident memory grows somewhat (fragmentation).
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
