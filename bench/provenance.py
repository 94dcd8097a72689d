"""Where and when a benchmark ran: the machine (CPU model and flags, cores), the date, the versions
of what was measured and the git commit, for the JSON every benchmark writes."""

from __future__ import annotations

import contextlib
import importlib.metadata
import os
import platform
import subprocess
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("chattune", "trl", "transformers", "tokenizers", "datasets", "torch", "jinja2",
            "pyarrow")


def cpu() -> tuple[str, list[str]]:
    """The CPU's model name and flags, from /proc/cpuinfo (the platform's processor string
    elsewhere)."""
    try:
        lines = Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines()
    except OSError:
        return platform.processor() or platform.machine(), []
    field = {k.strip(): v.strip() for k, _, v in (line.partition(":") for line in lines[:40]) if v}
    return field.get("model name", platform.machine()), field.get("flags", "").split()


def versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in PACKAGES:
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            out[name] = importlib.metadata.version(name)
    try:  # the tree measured, not an installed copy of chattune
        import chattune

        out["chattune"] = chattune.__version__
    except ImportError:
        pass
    return out


def git_commit() -> str:
    """The checkout's commit, `+dirty` when it has uncommitted changes, "" outside git."""
    try:
        run = {"cwd": ROOT, "capture_output": True, "text": True, "timeout": 10, "check": True}
        commit = subprocess.run(["git", "rev-parse", "HEAD"], **run).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               **run).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""
    return commit + ("+dirty" if dirty else "")


def record() -> dict:
    """The provenance fields a benchmark's JSON starts with."""
    model, flags = cpu()
    return {"cpu": model, "cpu_flags": " ".join(flags), "cores": os.cpu_count(),
            "machine": platform.machine(),
            "python": platform.python_version(), "date": time.strftime("%Y-%m-%d"),
            "time_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "versions": versions(),
            # a shared machine
            "commit": git_commit(), "load_average": [round(x, 2) for x in os.getloadavg()]}
