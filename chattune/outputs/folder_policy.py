"""What a run may do with an output_dir that another run wrote: start over another run's checkpoints
and finished outputs only when told to, and resume only under the config that wrote the checkpoint
(or when told that a change is meant)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import yaml

from chattune.config import resume_may_change
from chattune.errors import ChattuneError, TrainingError
from chattune.outputs.checkpoint import CONFIG_FILE, checkpoints

# Keys a resume may change (marked in the config's field metadata): where and how often the run
# logs, evaluates and saves, how long it goes on, speed features tested to give the same losses.
# Every other key (a new one too) must match for a resume to continue the same training.
NOT_COMPARED = resume_may_change()


# What a finished run leaves beside its checkpoints; a new run into the folder would replace them
FINISHED_OUTPUTS = ("adapter", "model", "merged", "report.html", "metrics.jsonl", "compare.json",
                    "compare.jsonl", "judge.json", "judge.jsonl", "exports.json", "timings.json",
                    "run.json", "loss.png", "learning_rate.png", "grad_norm.png", "warnings.log")


def earlier_outputs(out: Path) -> list[Path]:
    """What an earlier run left in `out`: its checkpoints, then its finished outputs (weights,
    metrics, report, comparisons, GGUF exports)."""
    finished = [out / name for name in FINISHED_OUTPUTS if (out / name).exists()]
    return (checkpoints(out) + finished + sorted(out.glob("*.gguf"))
            + sorted(out.glob("*.Modelfile")))


def listed(paths: list[Path], limit: int = 6) -> str:
    names = [p.name + ("/" if p.is_dir() else "") for p in paths]
    return ", ".join(names[:limit]) + (f" and {len(names) - limit} more" if len(names) > limit
                                       else "")


def check_fresh_start(out: Path, *, overwrite: bool) -> list[Path]:
    """Before a run that does not resume: refuse when `out` holds another run's checkpoints or
    finished outputs (they would be replaced or mixed with this run's), unless `overwrite`. Nothing
    is removed here: returns what `clear_earlier` removes once the run is ready to train, so that a
    run that fails before then loses nothing."""
    found = earlier_outputs(out) if out.is_dir() else []
    if found and not overwrite:
        kept = checkpoints(out)
        what = "checkpoints" if kept == found else "checkpoints and outputs" if kept else "outputs"
        raise ChattuneError(f"{out.resolve()}: holds the {what} of an earlier run "
                            f"({listed(found)}); nothing was changed. Continue that run with "
                            "--resume, replace it with --overwrite_output_dir, or choose another "
                            "output_dir")
    return found


def clear_earlier(paths: list[Path]) -> None:
    """Remove what check_fresh_start found (with overwrite_output_dir), just before this run
    writes."""
    for path in paths:
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()


def flat(config: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """{"lora": {"r": 8}} -> {"lora.r": 8}: every setting under the dotted key a user writes with
    --set."""
    out: dict[str, Any] = {}
    for key, value in config.items():
        if isinstance(value, dict) and key in ("data", "lora"):
            out.update(flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def config_changes(saved: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """The settings that change what is trained and differ: 'key: checkpoint X, now Y', sorted by
    key."""
    # as the saved copy was written
    old, new = flat(saved), flat(yaml.safe_load(yaml.safe_dump(current)))
    return [f"{key}: checkpoint {old.get(key)!r}, now {new.get(key)!r}"
            for key in sorted(old.keys() | new.keys())
            if key not in NOT_COMPARED and old.get(key) != new.get(key)]


def saved_config(checkpoint: Path) -> tuple[Path, dict[str, Any]] | None:
    """The config that wrote `checkpoint`: its own copy, else (checkpoints of older versions) the
    config.yaml its run left beside it; None when neither exists."""
    for path in (checkpoint / CONFIG_FILE, checkpoint.parent / "config.yaml"):
        if path.is_file():
            try:
                value = yaml.safe_load(path.read_text(encoding="utf-8"))
            except (yaml.YAMLError, UnicodeDecodeError, OSError) as e:
                raise TrainingError(f"{path}: the checkpoint's saved config cannot be read ({e}); "
                                    "resume from another checkpoint") from None
            if not isinstance(value, dict):
                raise TrainingError(f"{path}: the checkpoint's saved config is not a mapping of "
                                    "keys; resume from another checkpoint")
            return path, value
    return None


def check_resume(checkpoint: Path, current: dict[str, Any], *,
                 allow_changes: bool) -> list[str] | None:
    """Refuse to resume `checkpoint` under a config that trains something else (what differs is
    listed) unless `allow_changes`; returns the changes allowed, None when no saved config is there
    to compare with."""
    found = saved_config(checkpoint)
    if found is None:
        return None
    path, saved = found
    changes = config_changes(saved, current)
    if changes and not allow_changes:
        listed = "\n".join(f"  - {c}" for c in changes)
        raise TrainingError(f"resume: the config differs from the one that wrote {checkpoint} "
                            f"({path}) in what is trained:\n{listed}\nrestore those settings, "
                            "start afresh (--overwrite_output_dir), or resume anyway with "
                            "--allow-config-changes")
    return changes


def check_output_dir(out: Path, config: dict[str, Any], resumed: Path | None, *,
                     allow_changes: bool, console: Any) -> list[Path]:
    """The checks before a run writes into `out` (under its lock): over an earlier run's checkpoints
    or finished outputs only with overwrite_output_dir; a resume only under the checkpoint's config
    (or with `allow_changes`). Returns what the run is to remove before it writes (clear_earlier);
    nothing is changed here."""
    overwrite = bool(config.get("overwrite_output_dir"))
    if resumed is None:
        return check_fresh_start(out, overwrite=overwrite)
    if overwrite:
        raise ChattuneError("--resume continues the run in output_dir and overwrite_output_dir "
                            "removes it; choose one")
    changes = check_resume(resumed, config, allow_changes=allow_changes)
    if changes is None:
        console.print(f"note: {resumed} has no saved config; the config was not compared with it")
    elif changes:
        console.print("resuming with config changes (--allow-config-changes): "
                      + "; ".join(changes), highlight=False, markup=False)
    return []


def note_output_dir(out: Path, config: dict[str, Any], resumed: Path | None, console: Any) -> None:
    """SFTTrainer's checks, which warn where `chattune train` refuses: TRL's Trainer writes beside
    an earlier run's checkpoints and resumes under changed arguments, and code written for it does
    both (a notebook cell run twice). What would mix two runs is said, nothing is removed."""
    if resumed is None:
        found = checkpoints(out)
        if found:
            console.print(f"warning: {out} holds checkpoints of an earlier run ({found[-1].name} "
                          "the newest); this run writes beside them (replacing those of the same "
                          "step), and resume_from_checkpoint=True continues the newest of all",
                          highlight=False, markup=False)
        return
    changes = check_resume(resumed, config, allow_changes=True)
    if changes:
        console.print(f"warning: resuming {resumed} with arguments that differ from those that "
                      "wrote it: "
                      + "; ".join(changes), highlight=False, markup=False)
