"""Paths in a config file are read against the config file's folder, so `chattune train
trial/my.yaml` finds `trial/chats.jsonl` from any folder. A relative path that exists only against
the current folder still works (configs written for the folder they are run from); output_dir stays
relative to the current folder."""

from __future__ import annotations

from pathlib import Path
from typing import Any

GLOB_CHARS = "*?["  # as chattune.data.load expands them
TASK_FILE_SUFFIXES = (".yaml", ".yml")


def _exists(path: Path) -> bool:
    """A file or folder, or a glob that matches at least one file."""
    if any(c in str(path) for c in GLOB_CHARS):
        anchor = Path(path.anchor)
        return any(anchor.glob(str(path.relative_to(anchor))))
    return path.exists()


def _hub_like(value: str) -> bool:
    """`owner/name` (or `owner/name:split`) with no file suffix: what data and model loaders send to
    the hub."""
    return (value.count("/") == 1 and not value.startswith((".", "/", "~"))
            and not Path(value).suffix)


def rebased(value: str, folder: Path, *, may_be_name: bool = False) -> str:
    """`value` as the config means it: absolute paths and `~` as given; a relative path found beside
    the config file, else one found from the current folder; a hub id (or with `may_be_name`, any
    name, as a model's) as given; otherwise the absolute path beside the config file, so that the
    "not found" error names the place that was looked in."""
    path = Path(value).expanduser()
    if path.is_absolute() or value.startswith("~"):
        return value
    beside = (folder / path).resolve()
    if _exists(beside):
        return str(beside)
    if _exists(path):
        return str(path.resolve())
    return value if may_be_name or _hub_like(value) else str(beside)


def _rebase_sources(sources: Any, folder: Path) -> Any:
    if isinstance(sources, str):
        return rebased(sources, folder)
    if isinstance(sources, list):
        return [_rebase_sources(s, folder) for s in sources]
    if isinstance(sources, dict) and isinstance(sources.get("path"), str):
        return {**sources, "path": rebased(sources["path"], folder)}
    return sources  # not a shape validation accepts: its error is reported as written


def rebase_config_paths(raw: dict[str, Any], folder: Path) -> dict[str, Any]:
    """A copy of a config mapping with its input paths (model, data, compare data and rubric, task
    files) read against `folder`. Values of the wrong type are left for validation to report."""
    raw = dict(raw)
    if isinstance(raw.get("model"), str) and raw["model"].strip():
        raw["model"] = rebased(raw["model"], folder, may_be_name=True)
    if isinstance(raw.get("data"), dict):
        data = dict(raw["data"])
        for key in ("train", "eval"):
            if key in data:
                data[key] = _rebase_sources(data[key], folder)
        raw["data"] = data
    if isinstance(raw.get("compare"), dict):
        compare = dict(raw["compare"])
        if isinstance(compare.get("data"), str):
            compare["data"] = rebased(compare["data"], folder)
        judge = compare.get("judge")
        if isinstance(judge, dict):
            judge = dict(judge)
            if isinstance(judge.get("rubric"), str):
                judge["rubric"] = rebased(judge["rubric"], folder)
            if isinstance(judge.get("model"), str):
                judge["model"] = rebased(judge["model"], folder, may_be_name=True)
            compare["judge"] = judge
        raw["compare"] = compare
    if isinstance(raw.get("eval_tasks"), list):
        raw["eval_tasks"] = [_rebase_task(t, folder) for t in raw["eval_tasks"]]
    return raw


def _rebase_task(task: Any, folder: Path) -> Any:
    if isinstance(task, str) and task.endswith(TASK_FILE_SUFFIXES):
        return rebased(task, folder)
    if isinstance(task, dict) and isinstance(task.get("data"), str):
        return {**task, "data": rebased(task["data"], folder)}
    return task
