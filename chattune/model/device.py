"""Which device to run on, in what precision, and moving inputs to the model: one place for all
three.

Every command and the Python API pick their device here (`auto`, `cpu`, `cuda`, `cuda:N`, `mps`) and
create input tensors through `ids_tensor`, so no call site builds a CPU tensor for a GPU model.
"""

from __future__ import annotations

import os
import re
from contextlib import nullcontext
from functools import lru_cache
from typing import Any, NamedTuple

import torch

from chattune.config import DEVICE_PATTERN
from chattune.errors import ConfigError


def _mps_available() -> bool:
    return bool(getattr(torch.backends, "mps", None)) and torch.backends.mps.is_available()


def resolve_device(requested: str | None = None) -> torch.device:
    """`auto` (or None): the first GPU, else Apple's mps, else the CPU. An explicit device that this
    machine does not have is a ConfigError that says what it has."""
    name = (requested or "auto").strip().lower()
    if not re.match(DEVICE_PATTERN, name):
        raise ConfigError([f"device: expected auto, cpu, cuda, cuda:N or mps, got {requested!r}"])
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("mps") if _mps_available() else torch.device("cpu")
    device = torch.device(name)
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise ConfigError([f"device: {name} was asked for, but torch sees no CUDA GPU here "
                               f"(torch {torch.__version__}, CUDA build: "
                               f"{torch.version.cuda is not None}); use cpu or auto"])
        if device.index is not None and device.index >= count:
            raise ConfigError([f"device: {name} was asked for, but this machine has {count} "
                               "GPU(s): cuda:0"
                               + (f" .. cuda:{count - 1}" if count > 1 else "")])
    if device.type == "mps" and not _mps_available():
        raise ConfigError(["device: mps was asked for, but torch has no MPS backend here (Apple "
                           "silicon only)"])
    return device


def pick_device() -> torch.device:
    """The device `auto` chooses."""
    return resolve_device("auto")


def check_processes_fit(device: torch.device, local_processes: int,
                        gpus: int | None = None) -> None:
    """Several processes on one machine: each takes its own GPU, so there must be enough of them."""
    if local_processes <= 1:
        return
    if device.type == "mps":
        raise ConfigError([f"{local_processes} processes were launched with device mps; MPS runs "
                           "one process"])
    if device.type == "cuda":
        gpus = torch.cuda.device_count() if gpus is None else gpus
        if device.index is not None:
            raise ConfigError([f"device: {device} names one GPU, but {local_processes} processes "
                               "were launched; use device: cuda (each process takes the GPU of its "
                               "local rank)"])
        if local_processes > gpus:
            raise ConfigError([f"{local_processes} processes were launched on this machine but it "
                               f"has {gpus} GPU(s); launch at most {gpus} (e.g. torchrun "
                               f"--nproc-per-node {gpus}), or train on CPU processes with device: "
                               "cpu"])


def model_device(model: Any) -> torch.device:
    """Where the model's weights are (its first parameter's device)."""
    return next(model.parameters()).device


def ids_tensor(model: Any, rows: list[list[int]]) -> torch.Tensor:
    """Token id rows (all the same length) as a long tensor on the model's device."""
    return torch.tensor(rows, dtype=torch.long, device=model_device(model))


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


# Overrides the CPU's bf16 detection: "1" as if the CPU had AVX512-BF16, "0" as if it had not. A
# check, not a setting: the test suite runs under both to prove its outcome does not hang on the
# machine it lands on.
CPU_BF16_ENV = "CHATTUNE_CPU_BF16"


def cpu_has_fast_bf16() -> bool:
    """Whether this CPU computes bf16 in hardware (AMX or AVX512-BF16), or what $CHATTUNE_CPU_BF16
    says."""
    forced = os.environ.get(CPU_BF16_ENV, "").strip()
    if forced in ("0", "1"):
        return forced == "1"
    return bool(_cpu_flags() & {"amx_bf16", "avx512_bf16"})


def bf16_is_fast(device: torch.device) -> bool:
    """bf16 pays off on GPUs that support it and on CPUs with AMX or AVX512-BF16; elsewhere it is
    emulated and many times slower than fp32, so it stays off."""
    if device.type == "cuda":  # native bf16 (Ampere and newer); older GPUs only emulate it
        return torch.cuda.is_bf16_supported(including_emulation=False)
    if device.type == "mps":
        return False
    return cpu_has_fast_bf16()


class Precision(NamedTuple):
    """The dtypes of a run: `compute` is autocast's (None: fp32, no autocast); `base` is what the
    model's weights are loaded in (a frozen LoRA/QLoRA base in the compute dtype; fp32 master
    weights for full fine-tuning unless pure bf16 is asked for). Trainable LoRA weights and
    optimizer state stay fp32."""

    compute: torch.dtype | None
    base: torch.dtype

    @property
    def name(self) -> str:
        return {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[self.compute]


def resolve_precision(device: torch.device, *, finetuning: str, bf16: bool | None,
                      fp16: bool = False, bf16_full: bool = False) -> Precision:
    """bf16 where asked or (unset) where the hardware is fast at it; fp16 only where asked."""
    if fp16:
        compute: torch.dtype | None = torch.float16
    elif bf16 or (bf16 is None and bf16_is_fast(device)):
        if device.type == "cuda" and not torch.cuda.is_bf16_supported(including_emulation=False):
            raise ConfigError([f"bf16: this GPU ({torch.cuda.get_device_name(device)}) has no bf16 "
                               "support; set fp16: true (or bf16: false for fp32)"])
        compute = torch.bfloat16
    else:
        compute = None
    full = torch.bfloat16 if bf16_full else torch.float32
    return Precision(compute, full if finetuning == "full" else compute or torch.float32)


def memory_stats(device: torch.device) -> dict[str, float]:
    """Peak GPU memory since the last reset, in GB (allocated by tensors, reserved by the caching
    allocator); nothing on other devices."""
    if device.type != "cuda":
        return {}
    return {"peak_memory_allocated_gb": round(torch.cuda.max_memory_allocated(device) / 1e9, 3),
            "peak_memory_reserved_gb": round(torch.cuda.max_memory_reserved(device) / 1e9, 3)}


def autocast(device: torch.device, dtype: torch.dtype | None):
    """Compute in `dtype` (bf16/fp16) where the weights are fp32 (fp32 master weights, trainable
    adapters); weights already in that dtype (a frozen bf16 base) are used as they are, with no
    cast."""
    return torch.autocast(device.type, dtype=dtype) if dtype is not None else nullcontext()
