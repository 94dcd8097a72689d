"""Reading a config: YAML and `--set key=value` overrides, validated once, every problem reported at
once."""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from chattune.config.loop_args import TrainArgs
from chattune.config.sections import (
    CompareConfig,
    DataConfig,
    DataSource,
    JudgeConfig,
    LoraSettings,
)
from chattune.config.train_config import TrainConfig
from chattune.config_paths import rebase_config_paths
from chattune.errors import ConfigError, did_you_mean

_M = TypeVar("_M", bound=BaseModel)
# the models a config is validated as, by the name pydantic gives their errors
_MODELS: dict[str, type[BaseModel]] = {m.__name__: m
                                       for m in (TrainConfig, TrainArgs, DataConfig, DataSource,
                                                 LoraSettings, JudgeConfig, CompareConfig)}


def cache_dir() -> Path:
    """chattune's cache: $CHATTUNE_CACHE, else $XDG_CACHE_HOME/chattune, else ~/.cache/chattune."""
    if os.environ.get("CHATTUNE_CACHE"):
        return Path(os.environ["CHATTUNE_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "chattune"


def _is_union_branch(part: Any) -> bool:
    # pydantic names the alternative of a union it tried (`str`, `function-after[...]`, `list[...]`)
    # in the location; the user wrote no such key
    return part in ("str", "int", "float", "bool") or "[" in str(part)


def _user_loc(title: str, loc: tuple[Any, ...]) -> list[Any]:
    # the loop's keys are written at a config's top level; TrainConfig gathers them under `args`
    parts = [p for p in loc if not _is_union_branch(p)]
    return parts[1:] if title == "TrainConfig" and parts[:1] == ["args"] else parts


def _format_validation_error(err: ValidationError) -> list[str]:
    errors = []
    for e in err.errors():
        loc = _user_loc(err.title, e["loc"])
        errors.append((".".join(map(str, loc)), len(loc) < len(e["loc"]), e))
    # of a union's alternatives, the one that got deepest into the value is the one the user meant
    deep = [key for key, union, _ in errors if union]
    problems: list[str] = []
    for key, union, e in errors:
        if union and any(other.startswith(key + ".") for other in deep):
            continue
        got = "" if isinstance(e.get("input"), dict | list) else f", got {e.get('input')!r}"
        if e["type"] == "extra_forbidden":
            text = f"{key}: unknown key" + did_you_mean(_MODELS.get(err.title),
                                                        _user_loc(err.title, e["loc"]))
        elif e["type"] == "missing":
            text = f"{key}: required key is missing"
        elif (
            e["type"] == "value_error"
        ):  # chattune's own check: its message; one across keys names them
            message = str(e["ctx"]["error"])
            text = message if not key or message.startswith(key + ".") else f"{key}: {message}{got}"
        else:
            text = f"{key or '(config)'}: {e['msg']}{got}"
        if text not in problems:
            problems.append(text)
    return problems


def set_dotted(tree: dict[str, Any], dotted: str, value: Any) -> None:
    """Set `tree['a']['b'] = value` for `dotted='a.b'`, creating levels as needed."""
    *parents, leaf = dotted.split(".")
    for p in parents:
        node = tree.get(p)
        if not isinstance(node, dict):
            node = tree[p] = {}
        tree = node
    tree[leaf] = value


def parse_overrides(pairs: list[str]) -> list[tuple[str, Any]]:
    """Parse `key=value` strings; values are YAML, so `3`, `true`, `[a, b]` get their types."""
    parsed, problems = [], []
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            problems.append(f"--set {pair!r}: expected key=value")
            continue
        try:
            parsed.append((key.strip(), yaml.safe_load(raw)))
        except yaml.YAMLError as e:
            problems.append(f"--set {key}: value is not valid YAML ({e})")
    if problems:
        raise ConfigError(problems)
    return parsed


def validated(model: type[_M], raw: dict[str, Any]) -> _M:
    """`model` validated from `raw`, raising one ConfigError that lists every problem."""
    try:
        return model.model_validate(raw)
    except ValidationError as err:
        raise ConfigError(_format_validation_error(err)) from None


def build_config(raw: dict[str, Any], overrides: list[str] | None = None) -> TrainConfig:
    """Validate a config dict (plus `key=value` overrides), raising one ConfigError listing every
    problem."""
    raw = copy.deepcopy(raw)  # an override of a nested key must not change the caller's dict
    for key, value in parse_overrides(overrides or []):
        set_dotted(raw, key, value)
    try:
        return TrainConfig.model_validate(raw)
    except ValidationError as err:
        raise ConfigError(_format_validation_error(err)) from None


def load_config(path: str | Path, overrides: list[str] | None = None) -> TrainConfig:
    """Read a YAML config file and validate it."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError([f"{path}: config file not found"])
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        raise ConfigError([f"{path}: not valid YAML ({e})"]) from None
    if not isinstance(raw, dict):
        raise ConfigError(
            [f"{path}: expected a mapping of keys at the top level, found {type(raw).__name__}"]
        )
    # paths in the file are read against its folder; paths given in --set overrides, against the
    # current one
    return build_config(rebase_config_paths(raw, path.resolve().parent), overrides)
