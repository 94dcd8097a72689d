"""What a benchmark's JSON records about where and when it ran: CPU model and flags, GPU, date,
library versions and the git commit, so a figure can be traced to the machine and code that gave
it."""

from __future__ import annotations

import datetime
import importlib.metadata
import os
import platform
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# the CPU features that decide the speed of training on a CPU
FLAGS = ("avx2", "fma", "avx512f", "avx512_bf16", "avx512_fp16", "amx_tile", "amx_bf16", "amx_fp16")
PACKAGES = ("torch", "transformers", "peft", "trl", "datasets", "tokenizers", "accelerate")


def cpu() -> dict:
    """The CPU's model name and which of FLAGS it has (Linux's /proc/cpuinfo; the platform's name
    elsewhere)."""
    name, flags = platform.processor() or platform.machine(), set()
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and name in ("", platform.machine(),
                                                        platform.processor()):
                name = value.strip()
            elif key.strip() == "flags":
                flags = set(value.split())
                break
    except OSError:
        pass
    return {"cpu": name, "cpu_flags": [f for f in FLAGS if f in flags], "cores": os.cpu_count()}


def versions() -> dict:
    found = {}
    for package in PACKAGES:
        try:
            found[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            found[package] = None
    try:  # the tree measured, not an installed copy of chattune
        import chattune

        found["chattune"] = chattune.__version__
    except ImportError:
        pass
    return {"python": platform.python_version(), **found}


def commit() -> str | None:
    """The checkout's commit, with '+dirty' when tracked files differ from it; None outside a git
    checkout."""
    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True,
                              check=True).stdout

    try:
        head = git("rev-parse", "HEAD").strip()
        return head + ("+dirty" if git("status", "--porcelain", "--untracked-files=no").strip()
                       else "")
    except (OSError, subprocess.CalledProcessError):
        return None


def gpu(device: str) -> dict:
    if not device.startswith("cuda"):
        return {}
    import torch

    return {"gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}


def record(device: str = "cpu") -> dict:
    """Every field above, plus the date (UTC), the device the benchmark ran on and the load average
    when it started (a shared machine's figures are read with it)."""
    return {"device": device, "machine": platform.machine(), **cpu(), **gpu(device),
            "load_average": [round(x, 2) for x in os.getloadavg()],
            "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "versions": versions(), "commit": commit()}
