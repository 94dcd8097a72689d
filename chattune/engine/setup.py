"""What every training run sets up before its first step, for `chattune train` and SFTTrainer alike:
device and process group, precision, trackers checked, the output folder locked (and removed again
if the run fails before training and created it), the checkpoint to resume."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from rich.console import Console

from chattune.config import FsdpSettings, TrainConfig
from chattune.model.device import Precision, resolve_device, resolve_precision
from chattune.model.load import check_qlora_runs
from chattune.outputs.checkpoint import check_resume_target, resume_state
from chattune.outputs.folder_policy import check_output_dir, clear_earlier, listed, note_output_dir
from chattune.outputs.lock import OutputDirLock
from chattune.outputs.trackers import check_trackers
from chattune.train.dist import Dist
from chattune.train.speed import check_attention, check_liger
from chattune.train.state import ResumeState


@dataclass(frozen=True)
class RunSettings:
    """What the engine needs to open a run, from either front end: `chattune train`'s config
    (from_config) or SFTTrainer's arguments. `strict`: an earlier run's checkpoints and outputs in
    output_dir are refused (chattune train) rather than warned about (SFTTrainer, as TRL's Trainer
    writes beside them)."""

    output_dir: str | Path
    device: str = "auto"
    finetuning: str = "lora"
    bf16: bool | None = None
    fp16: bool = False
    bf16_full: bool = False
    report_to: tuple[str, ...] = ()
    liger: bool = False
    attn_implementation: str | None = None
    strategy: str | None = None
    fsdp: FsdpSettings | None = None
    strict: bool = True

    @classmethod
    def from_config(cls, cfg: TrainConfig) -> RunSettings:
        return cls(cfg.args.output_dir, cfg.device, cfg.finetuning, cfg.bf16, cfg.fp16,
                   cfg.args.bf16_full, tuple(cfg.args.report_to),
                   cfg.liger, cfg.attn_implementation, cfg.strategy, cfg.fsdp)


@dataclass
class Run:
    """A started run: where it writes, where it computes, in what precision, and what it resumes."""

    out: Path
    device: torch.device
    dist: Dist
    precision: Precision
    resumed: ResumeState | None
    console: Console
    strict: bool = True
    began: bool = False  # set by begin(): from then on, what the run wrote is kept whatever happens
    # an earlier run's outputs that begin() removes
    earlier: list[Path] = field(default_factory=list)

    def check_folder(self, config: dict[str, Any], *, allow_changes: bool = False) -> None:
        """The output folder's policy for this run's `config` (its settings as saved): refused or
        warned about as `strict` says; nothing is removed before begin()."""
        if not self.dist.is_main:
            return
        resumed = self.resumed.path if self.resumed else None
        if self.strict:
            self.earlier = check_output_dir(self.out, config, resumed, allow_changes=allow_changes,
                                            console=self.console)
        else:
            note_output_dir(self.out, config, resumed, self.console)

    def begin(self) -> None:
        """Training starts: an earlier run's outputs (overwrite_output_dir) go now; a failure before
        this leaves no output folder this run created, and from now on what the run writes is
        kept."""
        if self.earlier:
            self.console.print("overwrite_output_dir: removing the earlier run's outputs in "
                               f"{self.out}: {listed(self.earlier)}", highlight=False, markup=False)
            clear_earlier(self.earlier)
            self.earlier = []
        self.began = True


@contextmanager
def open_run(settings: RunSettings, resume: str | Path | None = None,
             console: Console | None = None) -> Iterator[Run]:
    """Set up a run and hold its output folder for as long as it lasts.

    One process speaks and writes (the others get a quiet console); the main process holds
    output_dir's lock for every rank, taken before any checkpoint is read or written. `resume`:
    "latest" or a checkpoint directory."""
    target, dist, precision = _checked_device(settings)
    console = (console or Console()) if dist.is_main else Console(quiet=True)
    out = Path(settings.output_dir)
    check_resume_target(out, resume)  # before the folder is created
    created = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    run = None
    try:
        with OutputDirLock(out, enabled=dist.is_main) as lock:
            if lock.previous:
                console.print("took over the output_dir lock of an ended run (process "
                              f"{lock.previous.get('pid')})")
            run = Run(out, target, dist, precision, resume_state(out, resume), console,
                      settings.strict)
            yield run
            # after a run that ended well; one that failed leaves the launcher to stop the others
            dist.finish()
    except BaseException:
        if created and dist.is_main and not (run and run.began):
            # a run that failed before training leaves nothing behind
            shutil.rmtree(out, ignore_errors=True)
        raise


def _checked_device(settings: RunSettings) -> tuple[torch.device, Dist, Precision]:
    """The device (a process's own under a launcher), the process group and the precision, with
    every setting that needs hardware or a package checked."""
    target = resolve_device(settings.device)
    dist = Dist.from_env(target, settings.strategy, settings.fsdp)
    target = dist.device or target
    check_trackers(list(settings.report_to))
    if settings.finetuning == "qlora":
        check_qlora_runs(target)
    if settings.liger:
        check_liger(target)
    check_attention(settings.attn_implementation, target)
    precision = resolve_precision(target, finetuning=settings.finetuning, bf16=settings.bf16,
                                  fp16=settings.fp16, bf16_full=settings.bf16_full)
    return target, dist, precision
