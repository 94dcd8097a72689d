"""The output_dir lock and the clean-up of a killed run's half-written checkpoints."""

import json
import os
import signal
import socket
import subprocess
import sys

import pytest
from conftest import ROOT

from chattune.errors import ChattuneError, TrainingError
from chattune.outputs.checkpoint import Checkpointer, remove_partial_checkpoints, save_checkpoint
from chattune.outputs.lock import LOCK_FILE, OutputDirLock

HOLD = """
import sys
from chattune.outputs.lock import OutputDirLock
lock = OutputDirLock(sys.argv[1]).acquire()
print("locked", flush=True)
sys.stdin.read()  # held until the test closes stdin or kills this process
lock.release()
"""


def test_second_holder_is_refused_naming_the_first(tmp_path):
    with OutputDirLock(tmp_path) as lock:
        info = json.loads((tmp_path / LOCK_FILE).read_text())
        assert info["pid"] == os.getpid() and info["host"] == socket.gethostname()
        with pytest.raises(ChattuneError,
                           match=rf"{tmp_path} is in use by process {os.getpid()} on "
                           rf"{socket.gethostname()} .*choose another output_dir"):
            OutputDirLock(tmp_path).acquire()
        assert lock.previous is None
    assert not (tmp_path / LOCK_FILE).exists()  # released and removed
    with OutputDirLock(tmp_path):  # free again
        pass


def test_disabled_lock_neither_waits_nor_writes(tmp_path):
    with OutputDirLock(tmp_path), OutputDirLock(tmp_path, enabled=False) as other:
        assert other.previous is None
    assert not (tmp_path / LOCK_FILE).exists()


def test_lock_held_by_another_process_then_taken_over_after_its_kill(tmp_path):
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(tmp_path)], cwd=ROOT,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "locked"
        with pytest.raises(ChattuneError, match=f"in use by process {proc.pid} on"):
            OutputDirLock(tmp_path).acquire()
        proc.send_signal(signal.SIGKILL)  # no release: the lock file stays, naming a dead process
        proc.wait()
        assert json.loads((tmp_path / LOCK_FILE).read_text())["pid"] == proc.pid
        with OutputDirLock(tmp_path) as lock:  # stale: taken over, and now names this process
            assert lock.previous["pid"] == proc.pid
            assert json.loads((tmp_path / LOCK_FILE).read_text())["pid"] == os.getpid()
    finally:
        proc.kill()
        proc.wait()


def test_lock_released_by_another_process_is_free(tmp_path):
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(tmp_path)], cwd=ROOT,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "locked"
    proc.communicate("")  # stdin closed: it releases and exits
    assert proc.returncode == 0 and not (tmp_path / LOCK_FILE).exists()
    with OutputDirLock(tmp_path) as lock:
        assert lock.previous is None


def test_stale_lock_file_without_a_holder_is_taken_over(tmp_path):
    (tmp_path / LOCK_FILE).write_text(json.dumps({"pid": 999999999, "host": "elsewhere",
                                                  "started": "then"}))
    with OutputDirLock(tmp_path) as lock:
        assert lock.previous["pid"] == 999999999


def test_half_written_checkpoints_are_removed_at_start(tmp_path, monkeypatch):
    import chattune.outputs.checkpoint as ckpt

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    # a save that dies half-way without its clean-up, as a kill leaves it
    monkeypatch.setattr(ckpt, "write_pretrained", disk_full)
    monkeypatch.setattr(ckpt.shutil, "rmtree", lambda *a, **k: None)
    with pytest.raises(TrainingError):
        save_checkpoint(tmp_path, None, None, [0], {"step": 7, "records": []})
    monkeypatch.undo()
    (left,) = [p for p in tmp_path.iterdir() if p.name.startswith(".checkpoint-7-")]
    mine = [tmp_path / ".checkpoint-notes", tmp_path / "checkpoint-3",
            tmp_path / ".checkpoint-7-NOTOURS1"]
    for path in mine:
        path.mkdir()
    (tmp_path / ".checkpoint-8-abcdefgh").write_text("a file, not a folder chattune made")

    saver = Checkpointer(tmp_path, None, None, [0], limit=None, keep_best=False)
    assert saver.removed == [left] and not left.exists()
    assert all(p.exists() for p in mine) and (tmp_path / ".checkpoint-8-abcdefgh").is_file()
    assert remove_partial_checkpoints(tmp_path) == []
