"""A model ready to answer: base (+ adapter, + template) on the chosen device; and merging a saved
adapter."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from chattune.errors import ModelError
from chattune.model.device import bf16_is_fast, resolve_device
from chattune.model.load import load_model, load_tokenizer, resolve_model_path, stored_dtype
from chattune.model.lora import check_adapter_dir, load_adapter, merge_adapter
from chattune.model.source import adapter_base as named_base
from chattune.templates.setup import setup_template

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def dtype_named(name: str | None) -> torch.dtype | None:
    """float32 / bfloat16 / float16 as a torch dtype; None for auto (or None)."""
    return DTYPES.get(name or "auto")


def inference_dtype(device: torch.device, dtype: torch.dtype | str | None) -> torch.dtype:
    """The dtype to answer in: as given, or (auto) bf16 on a GPU that is fast at it and fp32
    elsewhere."""
    if isinstance(dtype, torch.dtype):
        return dtype
    named = dtype_named(dtype)
    if named is not None:
        return named
    return torch.bfloat16 if device.type == "cuda" and bf16_is_fast(device) else torch.float32


def adapter_base(adapter: str | Path) -> str:
    """The base model an adapter was trained on (its run's config, else adapter_config.json's
    base_model_name_or_path: a hub id, which resolve_model_path finds offline for the built-in
    default)."""
    check_adapter_dir(adapter)
    return named_base(Path(adapter))


def load_for_inference(model: str | None, adapter: str | Path | None = None, *,
                       template: str | None = None, trust_remote_code: bool = False,
                       device: str | torch.device | None = None,
                       dtype: torch.dtype | str | None = torch.float32) -> tuple[Any, Any]:
    """(model in eval mode on `device`, tokenizer). With an adapter, its tokenizer (which carries
    the template it was trained with) is used and the base's embeddings grow to it; `model` None:
    the base the adapter names. `dtype`: a torch dtype or its name; "auto" (or None) is bf16 on a
    GPU fast at it, fp32 elsewhere."""
    if adapter:
        check_adapter_dir(adapter)  # before minutes of loading the base
        model = model or adapter_base(adapter)
    if not model:
        raise ModelError("no model given (and no adapter that names its base)")
    target = device if isinstance(device, torch.device) else resolve_device(device)
    dtype = inference_dtype(target, dtype)
    path = resolve_model_path(model)
    base = load_model(path, trust_remote_code, dtype)
    tokenizer = load_tokenizer(adapter) if adapter else load_tokenizer(path, trust_remote_code)
    if adapter:
        base = load_adapter(base, adapter, vocab_size=len(tokenizer))
    setup_template(base, tokenizer, template)
    return base.to(target).eval(), tokenizer


def merge_saved_adapter(model: str | None, adapter: str | Path, *,
                        device: str | torch.device | None = None, tolerance: float = 1e-3,
                        save_dtype: torch.dtype | None = None,
                        trust_remote_code: bool = False) -> tuple[Any, Any, float]:
    """Load the unquantised base in fp32 with the saved adapter, merge (logits checked in fp32, so
    the check sees the merge alone, not rounding), and cast to `save_dtype` (default: the dtype the
    base is stored in). Returns (merged model, tokenizer, max logit difference); the merged model
    goes by the base's name. `model` None: the base the adapter names. Works for QLoRA adapters too:
    they merge into the base they were trained from."""
    # once: a hub id is looked up a single time
    path = resolve_model_path(model or adapter_base(adapter))
    peft_model, tokenizer = load_for_inference(str(path), adapter,
                                               trust_remote_code=trust_remote_code, device=device,
                                               dtype=torch.float32)
    merged, diff = merge_adapter(peft_model, tokenizer, tolerance=tolerance)
    dtype = save_dtype or stored_dtype(path)
    return merged.to(dtype), tokenizer, diff
