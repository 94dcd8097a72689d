"""While training on a CPU, glibc's malloc keeps the memory that tensors free between steps
instead of handing it back to the kernel: memory handed back is paged in again, a fault a page,
when the next step allocates it (on a VM whose host reclaims the memory a guest frees, tens of
microseconds a page). Other C libraries, and training on a GPU, are left as they are."""

from __future__ import annotations

import ctypes
from collections.abc import Iterator
from contextlib import contextmanager

import torch

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
# the largest mmap threshold glibc allows on 64-bit (HEAP_MAX_SIZE / 2), which its adaptive
# threshold also grows to: blocks up to it come from the heap, larger ones are mapped whole
MMAP_THRESHOLD = 32 * 2**20
NEVER = 2**31 - 1  # mallopt takes an int
# where glibc's adaptive trim threshold ends up (twice the mmap threshold), restored afterwards
TRIM_THRESHOLD = 2 * MMAP_THRESHOLD


def _glibc() -> ctypes.CDLL | None:
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return None
    return libc if hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim") else None


@contextmanager
def kept_heap(device: torch.device) -> Iterator[None]:
    """Inside the block (on a CPU with glibc) freed heap memory is not trimmed; after it, glibc
    trims as its adaptive settings would and hands the block's free memory back."""
    libc = _glibc() if device.type == "cpu" else None
    if libc is None:
        yield
        return
    libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)
    libc.mallopt(M_TRIM_THRESHOLD, NEVER)
    try:
        yield
    finally:
        libc.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD)
        libc.malloc_trim(0)
