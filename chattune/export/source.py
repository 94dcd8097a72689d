"""What an export starts from: a Hugging Face model folder in fp32 (loaded for the check) for a run
folder, a model folder, a hub id or the default model, with a LoRA adapter merged first (in fp32,
checked as `chattune merge` checks it)."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

from chattune.model.inference import load_for_inference, merge_saved_adapter
from chattune.model.load import resolve_model_path
from chattune.model.source import resolve_source as resolve_model_source
from chattune.outputs.save import write_pretrained
from chattune.templates.setup import stop_token_ids


def resolve_source(source: str, adapter: str | None,
                   adapter_first: bool = False) -> tuple[str, Path | None]:
    """(model, adapter) a SOURCE and --adapter name (`adapter_first`: a run's base and adapter, not
    its merged model); see chattune.model.source."""
    found = resolve_model_source(source, adapter, adapter_first=adapter_first)
    return found.model, found.adapter


@contextmanager
def model_to_export(source: str,
                    adapter: str | None = None) -> Iterator[tuple[Path, Any, Any, str]]:
    """(fp32 model folder, that model loaded on the CPU, tokenizer, what it is) for the converter
    and the check; an adapter is merged into a temporary folder that is removed afterwards."""
    model_name, adapter_dir = resolve_source(source, adapter)
    if adapter_dir is None:
        folder = resolve_model_path(model_name)
        model, tokenizer = load_for_inference(str(folder), device="cpu", dtype=torch.float32)
        yield folder, model, tokenizer, str(folder)
        return
    merged, tokenizer, diff = merge_saved_adapter(model_name, adapter_dir, device="cpu",
                                                  save_dtype=torch.float32)
    with tempfile.TemporaryDirectory(prefix="chattune-merged-") as tmp:
        write_pretrained(merged, tokenizer, Path(tmp), stop_token_ids(tokenizer))
        yield (Path(tmp), merged.eval(), tokenizer,
               f"{model_name} + {adapter_dir} (merged in fp32, max logit "
               f"difference {diff:.1e})")
