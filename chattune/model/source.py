"""What a MODEL argument names: a hub id, a model folder, a .gguf file, a PEFT adapter folder, or a
training run's output folder, resolved to the model to load and the adapter (if any) to apply on it.

A run folder (what `chattune train` writes) is its merged/ model if there is one, else its base
model (from the run's config.yaml) with its adapter/, else its model/ (full fine-tuning). A bare
adapter folder is its base (the run's config.yaml beside it, else the adapter's own
base_model_name_or_path) with that adapter.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import yaml

from chattune.errors import ModelError

RUN_PARTS = ("merged", "adapter", "model")


@dataclass(frozen=True)
class ModelSource:
    """The model to load (hub id, folder or .gguf) and the adapter to apply; `via` says how a run or
    adapter folder was read, for a one-line note (empty when the argument was a model as it is)."""

    model: str
    adapter: Path | None = None
    via: str = ""


def is_adapter_dir(path: Path) -> bool:
    return (path / "adapter_config.json").is_file()


def is_run_dir(path: Path) -> bool:
    """A training run's output folder: no config.json of its own, and a merged/, adapter/ or model/
    part."""
    return path.is_dir() and not (path / "config.json").is_file() and any(
        (path / part / ("adapter_config.json" if part == "adapter" else "config.json")).is_file()
        for part in RUN_PARTS)


def _local(name: str, beside: Path) -> str:
    # a relative model path in a run's config.yaml was relative to where training ran; try the run's
    # own folder too
    path = Path(name).expanduser()
    if path.is_absolute() or path.exists() or not (beside / path).exists():
        return name
    return str(beside / path)


def adapter_base(adapter: Path) -> str:
    """The base model an adapter was trained on: the run's config.yaml beside it (or its run's, for
    a checkpoint), else the adapter's own base_model_name_or_path."""
    # a checkpoint keeps its run's config as train_config.yaml
    for config in (adapter / "train_config.yaml", adapter.parent / "config.yaml",
                   adapter / "config.yaml"):
        if config.is_file():
            try:
                model = (yaml.safe_load(config.read_text(encoding="utf-8")) or {}).get("model")
            except (yaml.YAMLError, AttributeError, UnicodeDecodeError):
                model = None
            if isinstance(model, str) and model.strip():
                return _local(model, config.parent if config.name == "config.yaml"
                              else adapter.parent)
    try:
        base = json.loads((adapter
                           / "adapter_config.json").read_text(encoding="utf-8")).get(
                               "base_model_name_or_path")
    except (OSError, ValueError, AttributeError):
        base = None
    if not base:
        raise ModelError(f"{adapter.resolve()}: an adapter whose base model is named nowhere (no "
                         "run config.yaml beside it, no base_model_name_or_path in "
                         "adapter_config.json); give the base model as MODEL and this folder as "
                         "the adapter")
    return str(base)


def _adapter_of(path: Path) -> Path:
    """An --adapter argument: an adapter folder, or a run folder's adapter/."""
    if not is_adapter_dir(path) and is_adapter_dir(path / "adapter"):
        return path / "adapter"
    return path


def _run_source(run: Path, adapter_first: bool) -> ModelSource:
    merged, adapter, full = (run / p for p in RUN_PARTS)
    if not adapter_first and (merged / "config.json").is_file():
        return ModelSource(str(merged), None, f"{run}: its merged model {merged}")
    if is_adapter_dir(adapter):
        base = adapter_base(adapter)
        return ModelSource(base, adapter,
                           f"{run}: its base model {base} with its adapter {adapter}")
    if (full / "config.json").is_file():
        return ModelSource(str(full), None, f"{run}: its fine-tuned model {full}")
    raise ModelError(f"{run.resolve()}: a run folder without an adapter/ to use (it holds "
                     f"{', '.join(sorted(p.name for p in run.iterdir())) or 'nothing'})")


def resolve_source(model: str, adapter: str | Path | None = None, *,
                   adapter_first: bool = False) -> ModelSource:
    """What MODEL (and --adapter) name, for loading. `adapter_first`: a run's base and adapter even
    where it has a merged model (for merging or exporting the adapter itself). An adapter given with
    a run or adapter folder that has its own is an error (which one was meant is unclear)."""
    path = Path(model).expanduser()
    extra = _adapter_of(Path(adapter).expanduser()) if adapter else None
    if path.is_dir() and is_adapter_dir(path) and not (path / "config.json").is_file():
        own = ModelSource(adapter_base(path), path,
                          f"{path}: an adapter, on its base model {adapter_base(path)}")
    elif is_run_dir(path):
        own = _run_source(path, adapter_first or extra is not None)
    elif path.is_dir() and not (path / "config.json").is_file():
        found = ", ".join(sorted(p.name for p in path.iterdir())[:8]) or "nothing"
        raise ModelError(f"{path.resolve()}: neither a model folder (config.json), an adapter "
                         "folder (adapter_config.json) nor a run folder (merged/, adapter/ or "
                         f"model/); it holds {found}")
    else:
        return ModelSource(model, extra)
    if extra is not None:
        if own.adapter is not None:
            raise ModelError(f"{model} brings its own adapter ({own.adapter}); give --adapter with "
                             "a base model, or the run or adapter folder alone")
        return ModelSource(own.model, extra, own.via)
    return own
