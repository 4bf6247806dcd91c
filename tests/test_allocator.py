"""mlff.allocator: with its settings, freed model buffers are reused by the next call
instead of being returned to the system and faulted in again."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

# Allocates and frees 8 blocks of 320 MiB three times, touching every page, and prints the
# minor page faults of the last round. Each block is above glibc's largest mmap threshold
# (32 MiB), and together they are above the largest positive trim threshold (2 GiB), which
# still returned the freed heap top to the system on every call.
SCRIPT = """
import ctypes, resource, sys
libc = ctypes.CDLL("libc.so.6")
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = [ctypes.c_void_p]
libc.memset.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_size_t]
if sys.argv[1] == "trim_at_2GiB":
    from mlff.allocator import M_MMAP_MAX, M_TRIM_THRESHOLD
    assert libc.mallopt(M_MMAP_MAX, 0) == 1 and libc.mallopt(M_TRIM_THRESHOLD, 2**31 - 1) == 1
if sys.argv[1] == "mlff":
    from mlff.allocator import reuse_freed_memory
    assert reuse_freed_memory()
size = 320 << 20
for _ in range(3):
    f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    blocks = [libc.malloc(size) for _ in range(8)]
    for b in blocks:
        libc.memset(b, 1, size)
    for b in reversed(blocks):
        libc.free(b)
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0
print(faults)
"""


def faults_of_last_round(mode: str) -> int:
    out = subprocess.run([sys.executable, "-c", SCRIPT, mode], capture_output=True, text=True,
                         env={**os.environ, "MLFF_NO_MALLOPT": "0"})
    assert out.returncode == 0, out.stderr
    return int(out.stdout.split()[-1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_freed_memory_is_reused_by_the_next_call():
    pages = 8 * (320 << 20) // 4096
    assert faults_of_last_round("glibc") > pages // 2      # glibc's defaults: mapped afresh every round
    assert faults_of_last_round("trim_at_2GiB") > pages // 2  # no mmap, but trimmed above 2 GiB free
    assert faults_of_last_round("mlff") < pages // 100     # mlff's settings: the same pages again
