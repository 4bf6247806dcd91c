"""glibc allocator settings for repeated model calls (the same the LAMMPS plugin applies).

libtorch allocates and frees its activation tensors on every call. With glibc's
defaults, blocks above the mmap threshold (at most 32 MB) are mmap()ed and unmapped again
and the heap top is trimmed, so every call pays page faults for fresh pages: measured on
the 4,000-atom Cu box with nequip fp64, about 1.2 million minor faults (4.8 GiB of fresh
pages) and twice the time per call. :func:`reuse_freed_memory` turns off mmap for malloc
(big blocks come from the heap and are reused) and never trims the heap (``mallopt``'s
``M_TRIM_THRESHOLD`` of -1): a threshold of 2 GB, the largest positive value, still let
models whose calls free more than that (mbe and se3_transformer at 4,000 Cu atoms) return
and re-fault gigabytes on every call. The process keeps its peak memory, which the next
call needs anyway. Process-wide, so it is applied once, by the first
:class:`mlff.calculator.MLFFCalculator`; ``MLFF_NO_MALLOPT=1`` keeps glibc's defaults.
"""

from __future__ import annotations

import ctypes
import os
import sys

M_TRIM_THRESHOLD = -1
M_MMAP_MAX = -4
_applied = False


def reuse_freed_memory() -> bool:
    """Apply the settings once (glibc only); returns whether they are in effect."""
    global _applied
    if _applied:
        return True
    if os.environ.get("MLFF_NO_MALLOPT", "0") not in ("", "0") or not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        ok = libc.mallopt(M_MMAP_MAX, 0) == 1 and libc.mallopt(M_TRIM_THRESHOLD, -1) == 1
    except (OSError, AttributeError):  # not glibc
        return False
    _applied = ok
    return ok
