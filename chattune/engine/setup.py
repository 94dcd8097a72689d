"""What every training run sets up before its first step, for `chattune train` and SFTTrainer alike: device and
process group, precision, trackers checked, the output folder locked (and removed again if the run fails before
training and created it), the checkpoint to resume."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from rich.console import Console

from chattune.config import FsdpSettings
from chattune.model.device import Precision, resolve_device, resolve_precision
from chattune.model.load import check_qlora_runs
from chattune.outputs.checkpoint import check_resume_target, resume_state
from chattune.outputs.lock import OutputDirLock
from chattune.outputs.trackers import check_trackers
from chattune.train.dist import Dist
from chattune.train.speed import check_attention, check_liger


@dataclass
class Run:
    """A started run: where it writes, where it computes, in what precision, and what it resumes."""

    out: Path
    device: torch.device
    dist: Dist
    precision: Precision
    resumed: dict[str, Any] | None
    console: Console
    began: bool = False  # set by begin(): from then on, what the run wrote is kept whatever happens

    def begin(self) -> None:
        """Training starts: a failure before this leaves no output folder this run created."""
        self.began = True


@contextmanager
def open_run(output_dir: str | Path, *, device: str, finetuning: str, bf16: bool | None, fp16: bool,
                report_to: list[str], resume: str | Path | None = None, bf16_full: bool = False,
                liger: bool = False, attn_implementation: str | None = None, strategy: str | None = None,
                fsdp: FsdpSettings | None = None, console: Console | None = None) -> Iterator[Run]:
    """Set up a run and hold its output folder for as long as it lasts.

    One process speaks and writes (the others get a quiet console); the main process holds output_dir's lock for
    every rank, taken before any checkpoint is read or written. `resume`: "latest" or a checkpoint directory."""
    target = resolve_device(device)
    dist = Dist.from_env(target, strategy, fsdp)
    target = dist.device or target
    console = (console or Console()) if dist.is_main else Console(quiet=True)
    check_trackers(report_to)
    if finetuning == "qlora":
        check_qlora_runs(target)
    if liger:
        check_liger(target)
    check_attention(attn_implementation, target)
    precision = resolve_precision(target, finetuning=finetuning, bf16=bf16, fp16=fp16, bf16_full=bf16_full)
    out = Path(output_dir)
    check_resume_target(out, resume)  # before the folder is created
    created = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    run = None
    try:
        with OutputDirLock(out, enabled=dist.is_main) as lock:
            if lock.previous:
                console.print(f"took over the output_dir lock of an ended run (process {lock.previous.get('pid')})")
            run = Run(out, target, dist, precision, resume_state(out, resume), console)
            yield run
            dist.finish()  # after a run that ended well; one that failed leaves the launcher to stop the others
    except BaseException:
        if created and dist.is_main and not (run and run.began):
            shutil.rmtree(out, ignore_errors=True)  # a run that failed before training leaves nothing behind
        raise
