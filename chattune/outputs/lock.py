"""One run per output directory: a lock file that names the process holding it.

The lock is an advisory `flock` on `.chattune.lock` in the directory, held while the run lasts. The
kernel drops it when its process ends, however it ends, so a lock left by a killed run is stale by
construction: the next run takes it over. The file's contents (pid, host, start time) are only for
the message a second run gets.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import socket
import time
from pathlib import Path
from typing import Any

from chattune.errors import ChattuneError

LOCK_FILE = ".chattune.lock"


def _holder(path: Path) -> str:
    """Who holds the lock, as its file says (the holder may be writing it this instant: then less is
    known)."""
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
        return f"process {info['pid']} on {info['host']} (since {info['started']})"
    except (OSError, ValueError, KeyError, TypeError):
        return "another process"


class OutputDirLock:
    """A context manager holding `out_dir`'s lock; a second holder gets a ChattuneError naming the
    first.

    `enabled=False` makes it a no-op, for the processes of a distributed run other than the main one
    (the main process holds it for them all). `previous` is what a stale lock file said when this
    one took it over."""

    def __init__(self, out_dir: Path, *, enabled: bool = True):
        self.path = Path(out_dir) / LOCK_FILE
        self.enabled = enabled
        self.previous: dict[str, Any] | None = None
        self._fd: int | None = None

    def acquire(self) -> OutputDirLock:
        import fcntl

        if not self.enabled or self._fd is not None:
            return self
        while True:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
            except OSError as e:  # a read-only or someone else's folder: before anything is trained
                raise ChattuneError(f"{self.path.parent}: the output directory cannot be written "
                                    f"({e.strerror}); choose a writable output_dir") from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as e:
                os.close(fd)
                if e.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    raise ChattuneError(f"{self.path}: cannot lock the output directory "
                                        f"({e})") from None
                raise ChattuneError(f"{self.path.parent} is in use by {_holder(self.path)}, which "
                                    f"holds {self.path}; wait for that run to end or stop it, or "
                                    "choose another output_dir") from None
            # the holder before us may have removed the file between our open and our lock: then the
            # lock we got is on a file no one else will see, and we start over on the path as it is
            # now
            with contextlib.suppress(FileNotFoundError):
                if os.stat(self.path).st_ino == os.fstat(fd).st_ino:
                    break
            os.close(fd)
        self._fd = fd
        old = os.read(fd, 65536)
        try:
            self.previous = json.loads(old) if old else None
        except ValueError:
            self.previous = None
        me = {"pid": os.getpid(), "host": socket.gethostname(),
              "started": time.strftime("%Y-%m-%d %H:%M:%S")}
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(me) + "\n").encode(), 0)
        return self

    def release(self) -> None:
        if self._fd is None:
            return
        # removed while still locked, so no one can lock the old file and think they hold the
        # directory
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)
        os.close(self._fd)
        self._fd = None

    def __enter__(self) -> OutputDirLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()
