"""LoRA and QLoRA through peft: adapters in the standard format, merging checked against the
unmerged model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from chattune.config import LoraSettings
from chattune.errors import ModelError
from chattune.model.device import ids_tensor
from chattune.model.load import is_quantized
from chattune.model.lora_speed import speed_up_lora


def base_model(model: Any) -> Any:
    """The causal LM inside a peft wrapper (LoRA layers stay injected in it); the model itself
    otherwise."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def trainable_in_fp32(model: Any) -> None:
    """Trainable weights (LoRA matrices, new token rows) in fp32 whatever the frozen base's dtype,
    so their updates and AdamW's state keep full precision."""
    for p in model.parameters():
        if p.requires_grad and p.dtype != torch.float32:
            p.data = p.data.float()


def apply_lora(model: Any, settings: LoraSettings, new_token_ids: list[int] | None = None, *,
               fast: bool = True) -> Any:
    """Wrap `model` with trainable LoRA adapters; the base stays frozen (in its own dtype, 4-bit for
    QLoRA).

    Tokens added for a chat template (`new_token_ids`) start untrained, so their embedding rows are
    trained too (peft's trainable tokens) and saved with the adapter. `fast`: LoRA layers train the
    faster way on CPUs (chattune.model.lora_speed: cheap dropout masks, scales folded into the small
    matmuls); False keeps peft's.
    """
    from peft import LoraConfig

    config = LoraConfig(r=settings.r, lora_alpha=settings.alpha, lora_dropout=settings.dropout,
                        target_modules=settings.target_modules, task_type="CAUSAL_LM",
                        trainable_token_indices=new_token_ids or None)
    try:
        return wrap_with_peft(model, config, fast=fast)
    except ValueError as e:  # peft names the module it could not find
        raise ModelError(f"lora.target_modules: {e}") from None


def wrap_with_peft(model: Any, peft_config: Any, *, fast: bool = True) -> Any:
    """get_peft_model with the base kept as it is (bf16 or 4-bit: norms and embeddings are not
    upcast, as TRL does too) and every trainable weight in fp32; with `fast`, chattune's faster LoRA
    layers on CPUs (speed_up_lora)."""
    from peft import get_peft_model

    peft_model = get_peft_model(model, peft_config)
    trainable_in_fp32(peft_model)
    if fast:
        speed_up_lora(peft_model)
    return peft_model


def load_adapter(model: Any, adapter_dir: str | Path, vocab_size: int | None = None) -> Any:
    """Attach a saved PEFT adapter to `model` (weights read from safetensors).

    `vocab_size`: the adapter's tokenizer size; the base's embeddings grow to it first when the
    adapter was trained with added chat tokens.
    """
    from peft import PeftModel

    check_adapter_dir(adapter_dir)
    if vocab_size and vocab_size > model.get_input_embeddings().weight.shape[0]:
        model.resize_token_embeddings(vocab_size, mean_resizing=False)
    try:
        return PeftModel.from_pretrained(model, str(adapter_dir))
    # safetensors' SafetensorError (truncated, garbled) and OSError, named by the file
    except Exception as e:
        raise ModelError(f"{Path(adapter_dir) / 'adapter_model.safetensors'}: the adapter cannot "
                         f"be loaded ({type(e).__name__}: {e})") from None


def check_adapter_dir(adapter_dir: str | Path) -> None:
    """A ModelError unless `adapter_dir` is a PEFT adapter saved as safetensors: a pickled
    adapter_model.bin could run code when loaded, so it is refused, not read."""
    adapter_dir = Path(adapter_dir)
    if not (adapter_dir / "adapter_config.json").is_file():
        raise ModelError(f"{adapter_dir}: not a PEFT adapter directory (adapter_config.json is "
                         "missing)")
    if not (adapter_dir / "adapter_model.safetensors").is_file():
        if (adapter_dir / "adapter_model.bin").exists():
            raise ModelError(f"{adapter_dir / 'adapter_model.bin'}: a pickled adapter is not "
                             "loaded (unpickling can run code); chattune reads safetensors only: "
                             "save it again with save_pretrained(safe_serialization=True), where "
                             "you trust it")
        raise ModelError(f"{adapter_dir}: adapter_model.safetensors is missing")


PROBE_PROMPTS = ["The capital of France is", "def fibonacci(n):",
                 "Question: what is 12 * 7?\nAnswer:"]


@torch.no_grad()
def _logits(model: Any, tokenizer: Any, prompts: list[str]) -> list[torch.Tensor]:
    return [model(input_ids=ids_tensor(model, [tokenizer(p)["input_ids"]])).logits.float()
            for p in prompts]


def merge_adapter(peft_model: Any, tokenizer: Any, *, tolerance: float = 1e-3) -> tuple[Any, float]:
    """Merge LoRA weights into the base in fp32 (the model is upcast in place: a bf16 merge would
    round the update into the weights); compare logits with the unmerged model first.

    Returns (merged model in fp32, max absolute logit difference). Raises ModelError if they
    diverge; the caller casts to the dtype it saves in."""
    if is_quantized(peft_model):
        raise ModelError("merging into a 4-bit base would quantise the update away; merge the "
                         "adapter into the unquantised base instead (chattune merge BASE ADAPTER "
                         "OUT)")
    peft_model.float().eval()
    before = _logits(peft_model, tokenizer, PROBE_PROMPTS)
    merged = peft_model.merge_and_unload()
    after = _logits(merged, tokenizer, PROBE_PROMPTS)
    diff = max(float((a - b).abs().max()) for a, b in zip(before, after))
    if diff > tolerance:
        raise ModelError(f"merged logits differ from base+adapter by {diff:.2e} (> "
                         f"{tolerance:.0e}); refusing to write the merged model")
    return merged, diff
