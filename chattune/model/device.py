"""Which device to run on and whether bf16 is fast there."""

from __future__ import annotations

from functools import lru_cache

import torch


def pick_device() -> torch.device:
    """The first GPU where there is one, else the CPU."""
    return torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")


@lru_cache(maxsize=1)
def _cpu_flags() -> set[str]:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def bf16_is_fast(device: torch.device) -> bool:
    """bf16 pays off on GPUs that support it and on CPUs with AMX or AVX512-BF16; elsewhere it is emulated
    and many times slower than fp32, so it stays off."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return bool(_cpu_flags() & {"amx_bf16", "avx512_bf16"})
