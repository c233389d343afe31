"""Keep freed host memory for reuse: on CPU a training step allocates and frees the same large
tensors (activations, gradients) every step.

glibc serves every allocation above 32 MB (its largest mmap threshold) with a fresh mmap and unmaps
it on free, so each step page-faults and zeroes those tensors again: at DLE's architecture and batch
that was a third of a CPU step. Served from the heap instead, with trimming at 2 GiB of free memory
rather than 128 KB, the same pages are reused. The price is memory the process keeps: peak RSS of
the DLE-size step went from 1.26 to about 1.55 GB. Other C libraries are left as they are.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import platform

M_TRIM_THRESHOLD, M_MMAP_MAX = -1, -4  # mallopt parameters, <malloc.h>
TRIM_THRESHOLD_BYTES = 2**31 - 1


def reuse_freed_memory() -> bool:
    """Ask glibc's malloc to keep freed memory; returns whether it took effect."""
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    return bool(libc.mallopt(M_MMAP_MAX, 0)) and bool(libc.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES))
