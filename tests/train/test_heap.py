"""While training on a CPU, memory freed between steps stays with the process: allocating it again
pages nothing in."""

import resource

import pytest
import torch

from chattune.train.heap import _glibc, kept_heap

pytestmark = pytest.mark.skipif(_glibc() is None, reason="glibc's malloc only")


def _faults() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def _step() -> None:
    """A step's worth of activations: blocks under glibc's mmap threshold, touched, then freed."""
    blocks = [torch.empty(4 * 2**20) for _ in range(24)]  # 24 x 16 MiB
    for block in blocks:
        block.fill_(1.0)


def test_memory_freed_inside_the_block_is_not_paged_in_again_nor_grows():
    with kept_heap(torch.device("cpu")):
        for _ in range(3):  # glibc's aligned blocks settle into the heap within a few steps
            _step()
        before = _faults()
        for _ in range(3):
            _step()
        again = _faults() - before
    # each step touches 96k pages; paged in again (glibc's default trims them) they fault that many
    # a step, and a heap that kept growing would fault in its growth
    assert again < 2_000


def test_outside_a_cpu_nothing_is_changed():
    libc = _glibc()
    with kept_heap(torch.device("meta")):
        assert libc.malloc_trim(0) in (0, 1)  # glibc still answers; nothing was set
