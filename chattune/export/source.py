"""What an export starts from: a Hugging Face model folder in fp32 (loaded for the check) for a run folder, a
model folder, a hub id or the default model, with a LoRA adapter merged first (in fp32, checked as `chattune
merge` checks it)."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
import yaml

from chattune.errors import ExportError
from chattune.model.inference import load_for_inference, merge_saved_adapter
from chattune.model.load import resolve_model_path
from chattune.outputs.save import write_pretrained
from chattune.templates.setup import stop_token_ids


def _run_parts(run: Path, adapter_first: bool = False) -> tuple[str, Path | None]:
    """(model folder or base, adapter or None) of a training run's output folder: its merged or full model, else
    (or with `adapter_first`) its base and adapter."""
    for name in () if adapter_first else ("merged", "model"):
        if (run / name / "config.json").is_file():
            return str(run / name), None
    if (run / "adapter" / "adapter_config.json").is_file():
        config = run / "config.yaml"
        if not config.is_file():
            raise ExportError(f"{run}: an adapter without the run's config.yaml (which names its base model); give "
                              "the base as SOURCE and --adapter DIR")
        return str(yaml.safe_load(config.read_text(encoding="utf-8"))["model"]), run / "adapter"
    raise ExportError(f"{run}: neither a model folder (config.json) nor a run folder (merged/, model/ or adapter/)")


def resolve_source(source: str, adapter: str | None, adapter_first: bool = False) -> tuple[str, Path | None]:
    """(model, adapter) a SOURCE and --adapter name (`adapter_first`: a run's base and adapter, not its merged
    model)."""
    path = Path(source)
    if path.is_dir() and not (path / "config.json").is_file():
        model, run_adapter = _run_parts(path, adapter_first)
        if adapter and run_adapter:
            raise ExportError(f"{source} is a run with its own adapter; --adapter is for a base model SOURCE")
        return model, Path(adapter) if adapter else run_adapter
    return source, Path(adapter) if adapter else None


@contextmanager
def model_to_export(source: str, adapter: str | None = None) -> Iterator[tuple[Path, Any, Any, str]]:
    """(fp32 model folder, that model loaded on the CPU, tokenizer, what it is) for the converter and the check; an
    adapter is merged into a temporary folder that is removed afterwards."""
    model_name, adapter_dir = resolve_source(source, adapter)
    if adapter_dir is None:
        folder = resolve_model_path(model_name)
        model, tokenizer = load_for_inference(str(folder), device="cpu", dtype=torch.float32)
        yield folder, model, tokenizer, str(folder)
        return
    merged, tokenizer, diff = merge_saved_adapter(model_name, adapter_dir, device="cpu", save_dtype=torch.float32)
    with tempfile.TemporaryDirectory(prefix="chattune-merged-") as tmp:
        write_pretrained(merged, tokenizer, Path(tmp), stop_token_ids(tokenizer))
        yield Path(tmp), merged.eval(), tokenizer, f"{model_name} + {adapter_dir} (merged in fp32, max logit " \
                                                   f"difference {diff:.1e})"
