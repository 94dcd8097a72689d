"""Files chattune writes get the modes the user's umask gives, as if made with a plain mkdir and
open."""

from __future__ import annotations

import os
from pathlib import Path


def user_umask() -> int:
    """The process's umask. Read from /proc where the system has it: the portable way (set it, then
    set it back) changes it for every thread for an instant."""
    try:
        for line in Path("/proc/self/status").read_text(encoding="ascii").splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def follow_umask(root: Path) -> None:
    """Give `root` (a folder chattune just wrote) and everything in it the modes of the user's
    umask: mkdtemp makes folders 0700 and safetensors writes weights 0600 whatever it is, so a
    shared group could not read a model or adapter saved through a temporary folder. Links are left
    as they are."""
    mask = user_umask()
    for folder, _, names in os.walk(root):
        os.chmod(folder, 0o777 & ~mask)
        for name in names:
            path = os.path.join(folder, name)
            if not os.path.islink(path):
                os.chmod(path, 0o666 & ~mask)
