"""``import deeplab_tf`` makes freed memory reusable without new page faults (allocator.py).

A process frees a 64 MB block and allocates and writes one again: with the settings on
(the default) the kernel is asked for no new pages; with DEEPLAB_TF_KEEP_FREED_MEMORY=0,
glibc's defaults map fresh pages, one fault each (the slowdown the module removes).
"""

import ctypes
import os
import subprocess
import sys

import pytest

PROBE = r"""
import ctypes, resource
import deeplab_tf
from deeplab_tf.runtime.allocator import keep_freed_memory
libc = ctypes.CDLL(None)
libc.malloc.restype = ctypes.c_void_p
libc.malloc.argtypes = [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
SIZE = 64 << 20

def faults_of_one_block():
    block = libc.malloc(SIZE)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    ctypes.memset(block, 1, SIZE)
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
    libc.free(block)
    return faults

faults_of_one_block()  # the first block's pages are new in any case
print(min(faults_of_one_block() for _ in range(3)))
print(keep_freed_memory())
"""
PAGES = (64 << 20) // 4096


def _is_glibc():
    try:
        ctypes.CDLL(None).gnu_get_libc_version  # noqa: B018
        return True
    except (OSError, AttributeError):
        return False


def _probe(**env):
    out = subprocess.run([sys.executable, "-c", PROBE], env={**os.environ, **env},
                         capture_output=True, text=True, check=True).stdout.splitlines()
    return int(out[0]), out[1]


@pytest.mark.skipif(not _is_glibc(), reason="the settings are glibc's mallopt")
def test_freed_blocks_are_reused_without_page_faults():
    kept, kept_state = _probe(DEEPLAB_TF_KEEP_FREED_MEMORY="1")
    default, default_state = _probe(DEEPLAB_TF_KEEP_FREED_MEMORY="0")
    assert kept_state.startswith("glibc malloc: M_MMAP_MAX=0"), kept_state
    assert "defaults kept" in default_state, default_state
    assert kept <= PAGES // 100, (kept, default)
    # glibc's defaults: a fresh mapping per block (4 KB pages, or 2 MB ones with THP).
    assert default >= 32 and default > 10 * max(kept, 1), (kept, default)
