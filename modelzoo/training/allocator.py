"""Keep freed CPU memory in the process between training steps (glibc only).

A population step on CPU allocates and frees the same few multi-megabyte activations every
step. With glibc's defaults, blocks above a dynamic threshold are returned to the kernel on
``free`` and page-faulted back in on the next ``malloc``; for the population trainer that is
about a fifth of each step. PyTorch's CPU performance guide suggests swapping the allocator
(jemalloc/tcmalloc via ``LD_PRELOAD``); this does the in-process equivalent with ``mallopt``:
blocks up to 32 MiB come from the heap and up to 512 MiB of free heap is kept.

The setting is process-wide and applied once; the per-model loop measured in
``benchmarks/perf/population.py`` runs at the same speed with or without it. Set
``MODELZOO_MALLOC_TUNING=0`` to leave the allocator alone.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_done = False


def keep_freed_memory() -> bool:
    """Tune glibc malloc for repeated large allocations; True if it was (or had been) applied."""
    global _done
    if _done:
        return True
    if os.environ.get("MODELZOO_MALLOC_TUNING", "1") == "0":
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (macOS, musl without mallopt, Windows)
        return False
    # both or neither: a fixed trim threshold alone turns off glibc's dynamic mmap threshold
    if mallopt(_M_MMAP_THRESHOLD, 32 << 20) == 1:
        mallopt(_M_TRIM_THRESHOLD, 512 << 20)
        _done = True
    return _done
