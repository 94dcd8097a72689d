"""Checkpoints: weights, tokenizer and training state in one directory, written atomically, pruned
by limit.

A checkpoint is written into a temporary directory and renamed into place, so a crash, a full disk
or a kill mid-save leaves the previous checkpoints as they were.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch
import yaml

from chattune.errors import TrainingError
from chattune.files import follow_umask
from chattune.outputs.save import write_pretrained
from chattune.train.fsdp import SHARDS
from chattune.train.state import ResumeState

STATE_FILE = "trainer_state.pt"
RECORDS_FILE = "records.json"
STATE_KEYS = ("step", "micro_batches", "tokens", "trained_tokens", "rng", "optimizer", "scheduler")
# the config of the run that wrote the checkpoint, which a resume is checked against
CONFIG_FILE = "train_config.yaml"
_NAME = re.compile(r"^checkpoint-(\d+)$")
# save_checkpoint's temporary folders: mkdtemp's prefix ".checkpoint-<step>-" and its 8 random
# characters
_PARTIAL = re.compile(r"^\.checkpoint-\d+-[a-z0-9_]{8}$")


def checkpoints(out_dir: Path) -> list[Path]:
    """Complete checkpoints in `out_dir`, oldest first."""
    if not Path(out_dir).is_dir():
        return []
    found = [(int(m.group(1)), p) for p in Path(out_dir).iterdir()
             if (m := _NAME.match(p.name)) and (p / STATE_FILE).is_file()]
    return [p for _, p in sorted(found)]


def remove_partial_checkpoints(out_dir: Path) -> list[Path]:
    """Delete the temporary folders of checkpoints that a killed run was writing (each as large as a
    checkpoint, never complete, never read); returns what was removed. Only chattune's own temporary
    names are touched, and only while no other run writes to `out_dir` (the output_dir lock)."""
    if not Path(out_dir).is_dir():
        return []
    found = [p for p in Path(out_dir).iterdir()
             if _PARTIAL.match(p.name) and p.is_dir() and not p.is_symlink()]
    for p in found:
        shutil.rmtree(p, ignore_errors=True)
    return found


def latest_checkpoint(out_dir: Path) -> Path | None:
    found = checkpoints(out_dir)
    return found[-1] if found else None


def save_checkpoint(out_dir: Path, model: Any, tokenizer: Any, stop_ids: list[int],
                    state: dict[str, Any], config: dict[str, Any] | None = None) -> Path:
    """Write checkpoint-<step> (with the run's `config`, when given); raises TrainingError (naming
    the previous checkpoint, left intact) on failure."""
    path = Path(out_dir) / f"checkpoint-{state['step']}"
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}-", dir=out_dir))
    try:
        # FSDP: every process wrote its shards of weights and optimizer state
        if state.get("shards"):
            os.replace(state["shards"], tmp / SHARDS)
            tokenizer.save_pretrained(tmp)
        else:
            write_pretrained(model, tokenizer, tmp, stop_ids)
        kept = {k: v for k, v in state.items() if k not in ("records", "shards")}
        torch.save({**kept, "sharded": True} if state.get("shards") else kept, tmp / STATE_FILE)
        (tmp / RECORDS_FILE).write_text(json.dumps(state["records"]), encoding="utf-8")
        if config is not None:
            (tmp / CONFIG_FILE).write_text(yaml.safe_dump(config, sort_keys=False),
                                           encoding="utf-8")
        follow_umask(tmp)
        if path.exists():
            shutil.rmtree(path)
        tmp.rename(path)
    except (OSError, RuntimeError) as e:
        previous = latest_checkpoint(out_dir)
        kept = (f"the previous checkpoint {previous} is intact" if previous
                else "no earlier checkpoint exists")
        raise TrainingError(f"could not save the checkpoint at step {state['step']} to {path}: "
                            f"{e}; {kept}") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return path


def _saved_dict(path: Path) -> dict[str, Any]:
    """The state file's entries (tensors and plain types only: weights_only loading), every one
    there."""
    damaged = "the checkpoint is damaged; resume from another one"
    try:
        # on the CPU first: a checkpoint written on a GPU resumes anywhere (the optimizer moves its
        # state to the parameters' device when loaded)
        state = torch.load(path / STATE_FILE, weights_only=True, map_location="cpu")
    except Exception as e:  # truncated (EOF, zip) or garbled (unpickling) files raise many kinds
        raise TrainingError(f"{path / STATE_FILE}: cannot be read ({type(e).__name__}: {e}); "
                            f"{damaged}") from None
    # a sharded checkpoint keeps its optimizer state in its shards
    keys = [k for k in STATE_KEYS
            if not (k == "optimizer" and isinstance(state, dict) and state.get("sharded"))]
    missing = [key for key in keys if key not in state] if isinstance(state, dict) else list(keys)
    if missing:
        raise TrainingError(f"{path / STATE_FILE}: expected the entries {', '.join(STATE_KEYS)}, "
                            f"{', '.join(missing)} missing; {damaged}")
    return state


def load_state(path: Path) -> ResumeState:
    """A checkpoint's training state and records; a missing, truncated or garbled file is a
    TrainingError naming it."""
    path = Path(path)
    if not (path / STATE_FILE).is_file():
        raise TrainingError(f"{path}: not a chattune checkpoint ({STATE_FILE} is missing)")
    damaged = "the checkpoint is damaged; resume from another one"
    state = _saved_dict(path)
    try:
        records = json.loads((path / RECORDS_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise TrainingError(f"{path / RECORDS_FILE}: cannot be read ({e}); {damaged}") from None
    if not isinstance(records, list):
        raise TrainingError(f"{path / RECORDS_FILE}: expected a list of records; {damaged}")
    try:
        return ResumeState(path, int(state["step"]), int(state["micro_batches"]),
                           int(state["tokens"]),
                           int(state["trained_tokens"]), records, state["rng"], state["scheduler"],
                           state.get("optimizer"), state.get("scaler"), bool(state.get("sharded")))
    except (TypeError, ValueError) as e:
        raise TrainingError(f"{path / STATE_FILE}: its counters are not numbers ({e}); "
                            f"{damaged}") from None


def prune_checkpoints(out_dir: Path, limit: int | None, keep: Path | None = None) -> None:
    """Delete the oldest checkpoints beyond `limit`, never `keep` (the best one)."""
    if not limit:
        return
    found = checkpoints(out_dir)
    removable = [p for p in found if keep is None or p.resolve() != Path(keep).resolve()]
    excess = len(found) - limit
    for p in removable[:max(excess, 0)]:
        shutil.rmtree(p, ignore_errors=True)


class Checkpointer:
    """Saves checkpoints for a run, keeps at most `limit` of them plus, when asked, the best by eval
    loss. Starting, it removes the half-written checkpoints a killed run left (`removed` lists
    them). `config`: the run's config, saved in each checkpoint."""

    def __init__(self, out_dir: Path, model: Any, tokenizer: Any, stop_ids: list[int], *,
                 limit: int | None, keep_best: bool, records: list[dict[str, Any]] | None = None,
                 config: dict[str, Any] | None = None):
        self.out_dir, self.model, self.tokenizer, self.stop_ids = (Path(out_dir),
                                                                   model, tokenizer, stop_ids)
        self.config = config
        self.limit, self.keep_best = limit, keep_best
        self.best: tuple[float, Path] | None = None
        self.removed = remove_partial_checkpoints(self.out_dir)
        # a resumed run knows its earlier checkpoints' eval losses
        for path in checkpoints(self.out_dir):
            self._consider(path, records or [])

    def _consider(self, path: Path, records: list[dict[str, Any]]) -> None:
        step = int(_NAME.match(path.name).group(1))
        losses = [r["eval_loss"] for r in records if r.get("step") == step and "eval_loss" in r]
        if self.keep_best and losses and (self.best is None or losses[-1] < self.best[0]):
            self.best = (losses[-1], path)

    def __call__(self, step: int, state: dict[str, Any]) -> Path:
        path = save_checkpoint(self.out_dir, self.model, self.tokenizer, self.stop_ids, state,
                               self.config)
        self._consider(path, state["records"])
        prune_checkpoints(self.out_dir, self.limit, keep=self.best[1] if self.best else None)
        return path


def _what_exists(folder: Path) -> str:
    """The checkpoints in `folder`, or that it holds none, or that it does not exist."""
    if not folder.is_dir():
        return f"{folder.resolve()} does not exist"
    found = checkpoints(folder)
    if not found:
        return f"{folder.resolve()} holds no checkpoint (they are written every save_steps)"
    return f"checkpoints in {folder.resolve()}: {', '.join(p.name for p in found)}"


def check_resume_target(out_dir: Path, resume: str | Path | None) -> None:
    """Before anything is created or loaded: the checkpoint a resume names exists; else a
    TrainingError saying what does."""
    if resume is None:
        return
    out_dir = Path(out_dir)
    if resume == "latest":
        if latest_checkpoint(out_dir) is None:
            raise TrainingError(f"resume: nothing to resume: {_what_exists(out_dir)}; run without "
                                "--resume to start, or name the run's output_dir")
        return
    path = Path(resume)
    if not path.is_dir():
        raise TrainingError(f"resume: {path.resolve()} does not exist; {_what_exists(path.parent)}")
    if not (path / STATE_FILE).is_file():
        raise TrainingError(f"resume: {path.resolve()} is not a chattune checkpoint ({STATE_FILE} "
                            f"is missing); {_what_exists(path.parent)}")


def resume_state(out_dir: Path, resume: str | Path | None) -> ResumeState | None:
    """The state to resume from: `resume` is "latest" (the newest checkpoint in out_dir), a
    checkpoint directory, or None (start afresh)."""
    if resume is None:
        return None
    check_resume_target(out_dir, resume)
    return load_state(latest_checkpoint(Path(out_dir)) if resume == "latest" else Path(resume))
