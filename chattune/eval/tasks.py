"""Which lm-eval tasks a run means: chattune's shipped offline subsets, a user's task YAML,
lm-eval's own names.

A shipped subset is the first N items of the split lm-eval scores, under lm-eval's task name and
with lm-eval's own prompts and metrics (its YAML with only the data source changed), so its figures
equal lm-eval's with `--limit N` on the full set. Relative `data_files` in a task YAML are read from
the YAML's folder (lm-eval itself reads them from the current directory); a data file that does not
exist is named before any model is loaded.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

from chattune.errors import TaskError
from chattune.eval.own_task import own_task

BENCHMARKS = Path(__file__).parent / "benchmarks"
# the default set: one grade-school maths task (generation), instruction following (generation,
# rule-checked) and one knowledge task scored by loglikelihood; sized to run on SmolLM2-135M in
# minutes on a 2-core CPU
DEFAULT_TASKS = ("gsm8k", "ifeval", "truthfulqa_mc1")


def require_lm_eval() -> None:
    """lm-evaluation-harness is an extra: a clear error where it is not installed."""
    from importlib.util import find_spec

    if find_spec("lm_eval") is None:
        raise TaskError("benchmarks run on lm-evaluation-harness, which is not installed: pip "
                        "install 'chattune[eval]'")


@lru_cache(maxsize=1)
def shipped_tasks() -> dict[str, Path]:
    """Task name -> the shipped YAML that defines it."""
    found = {}
    for path in sorted(BENCHMARKS.glob("*/*.yaml")):
        with open(path, encoding="utf-8") as f:
            # !function tags are lm-eval's; only the task name is read here
            name = next((line.split(":", 1)[1].strip() for line in f if line.startswith("task:")),
                        None)
        if name:
            found[name] = path
    return found


def _absolute(path: Path, value: Any) -> Any:
    """data_files (a path, list or split -> path(s)) with relative paths made absolute against the
    YAML's folder."""
    if isinstance(value, dict):
        return {split: _absolute(path, v) for split, v in value.items()}
    if isinstance(value, list):
        return [_absolute(path, v) for v in value]
    if isinstance(value, str) and "://" not in value and not os.path.isabs(value):
        return str(path.parent / value)
    return value


def _missing_files(value: Any) -> list[str]:
    files = value.values() if isinstance(value, dict) else [value]
    flat = [f for v in files for f in (v if isinstance(v, list) else [v])]
    return [f for f in flat
            if isinstance(f, str) and "://" not in f and not any(c in f for c in "*?[")
            and not Path(f).exists()]


def task_config(path: str | Path) -> dict[str, Any]:
    """A task YAML loaded as lm-eval loads it (include: and !function resolved beside it), its data
    files made absolute and checked."""
    from lm_eval.tasks._yaml_loader import load_yaml

    path = Path(path).expanduser().resolve()
    if not path.is_file():
        raise TaskError(f"task file not found: {path}")
    try:
        cfg = load_yaml(path, resolve_func=True)
    except Exception as e:  # lm-eval's loader raises yaml, import and file errors alike
        raise TaskError(f"{path}: cannot be read as an lm-eval task: {e}") from None
    kwargs = cfg.get("dataset_kwargs") or {}
    if "data_files" in kwargs:
        kwargs["data_files"] = _absolute(path, kwargs["data_files"])
        missing = _missing_files(kwargs["data_files"])
        if missing:
            raise TaskError(f"{path}: data file not found: {', '.join(missing)} "
                            "(dataset_kwargs.data_files; a relative path is read from the task "
                            "file's folder)")
    return cfg


def _own_task_file(path: Path) -> dict[str, Any] | None:
    """A YAML of chattune's short own-task form (data, prompt, answer, metric; see own_task.py) as a
    task config; None for anything else (an lm-eval task YAML). Its data path is read from the
    YAML's folder."""
    import yaml

    try:
        spec = yaml.safe_load(path.read_text(encoding="utf-8"))
    # missing, or lm-eval's own tags (!function): lm-eval's loader says why
    except (OSError, yaml.YAMLError):
        return None
    if (not isinstance(spec, dict) or "metric" not in spec or "data" not in spec
            or "dataset_path" in spec):
        return None
    return own_task(**{**spec, "data": _absolute(path.resolve(), spec["data"]),
                       "name": spec.get("name", path.stem)})


def resolve_tasks(names: Sequence[str | dict[str, Any]], *,
                  full: bool = False) -> list[str | dict[str, Any]]:
    """Each task as lm-eval takes it: a shipped subset or a YAML file as its config, an lm-eval name
    as itself (a config passes through). `default` stands for DEFAULT_TASKS; `full` runs lm-eval's
    own full sets (from the Hub) for shipped names."""
    require_lm_eval()
    expanded = [t for name in names for t in (DEFAULT_TASKS if name == "default" else (name,))]
    resolved: list[str | dict[str, Any]] = []
    unknown = []
    for name in expanded:
        if isinstance(name, dict):
            resolved.append(own_task(**name) if "metric" in name else name)
        elif name.endswith((".yaml", ".yml")):
            resolved.append(_own_task_file(Path(name)) or task_config(name))
        elif name in shipped_tasks() and not full:
            resolved.append(task_config(shipped_tasks()[name]))
        elif name in lm_eval_task_names():
            resolved.append(name)
        else:
            unknown.append(name)
    if unknown:
        raise TaskError(f"unknown task(s): {', '.join(unknown)}. Offline (shipped): "
                        f"{', '.join(shipped_tasks())}; 'default' = {','.join(DEFAULT_TASKS)}; any "
                        f"of lm-eval's {len(lm_eval_task_names()):,} task names (from the Hub: "
                        "`chattune eval --list-tasks` lists them); or the path of a task YAML")
    return resolved


@lru_cache(maxsize=1)
def lm_eval_task_names() -> frozenset[str]:
    """Every task, group and tag name lm-eval knows (indexing them takes a few seconds, so only when
    asked)."""
    from lm_eval.tasks import TaskManager

    return frozenset(TaskManager().all_tasks)
