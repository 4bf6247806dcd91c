"""glibc allocator settings for repeated model calls (the same the LAMMPS plugin applies).

libtorch allocates and frees its activation tensors on every call. With glibc's
defaults, blocks above the mmap threshold (at most 32 MB) are mmap()ed and unmapped again
and the heap top is trimmed, so every call pays page faults for fresh pages: measured on
the 4,000-atom Cu box with nequip fp64, about 1.2 million minor faults (4.8 GiB of fresh
pages) and twice the time per call. :func:`reuse_freed_memory` turns off mmap for malloc
(big blocks come from the heap and are reused) and trims the heap only when more than
2 GB are free at its top. Process-wide, so it is applied once, by the first
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
        ok = libc.mallopt(M_MMAP_MAX, 0) == 1 and libc.mallopt(M_TRIM_THRESHOLD, 2**31 - 1) == 1
    except (OSError, AttributeError):  # not glibc
        return False
    _applied = ok
    return ok
