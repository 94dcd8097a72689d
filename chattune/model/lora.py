"""LoRA through peft: adapters in the standard format, merging checked against the unmerged model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from chattune.config import LoraSettings
from chattune.errors import ModelError


def apply_lora(model: Any, settings: LoraSettings, new_token_ids: list[int] | None = None) -> Any:
    """Wrap `model` with trainable LoRA adapters; the base stays frozen.

    Tokens added for a chat template (`new_token_ids`) start untrained, so their embedding rows are trained
    too (peft's trainable tokens) and saved with the adapter.
    """
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(r=settings.r, lora_alpha=settings.alpha, lora_dropout=settings.dropout,
                        target_modules=settings.target_modules, task_type="CAUSAL_LM",
                        trainable_token_indices=new_token_ids or None)
    try:
        return get_peft_model(model, config)
    except ValueError as e:  # peft names the module it could not find
        raise ModelError(f"lora.target_modules: {e}") from None


def load_adapter(model: Any, adapter_dir: str | Path, vocab_size: int | None = None) -> Any:
    """Attach a saved PEFT adapter to `model` (weights read from safetensors).

    `vocab_size`: the adapter's tokenizer size; the base's embeddings grow to it first when the adapter was
    trained with added chat tokens.
    """
    from peft import PeftModel

    if not (Path(adapter_dir) / "adapter_config.json").is_file():
        raise ModelError(f"{adapter_dir}: not a PEFT adapter directory (adapter_config.json is missing)")
    if vocab_size and vocab_size > model.get_input_embeddings().weight.shape[0]:
        model.resize_token_embeddings(vocab_size, mean_resizing=False)
    return PeftModel.from_pretrained(model, str(adapter_dir))


PROBE_PROMPTS = ["The capital of France is", "def fibonacci(n):", "Question: what is 12 * 7?\nAnswer:"]


@torch.no_grad()
def _logits(model: Any, tokenizer: Any, prompts: list[str]) -> list[torch.Tensor]:
    return [model(**tokenizer(p, return_tensors="pt")).logits.float() for p in prompts]


def merge_adapter(peft_model: Any, tokenizer: Any, *, tolerance: float = 1e-3) -> tuple[Any, float]:
    """Merge LoRA weights into the base; compare logits with the unmerged model first.

    Returns (merged model, max absolute logit difference). Raises ModelError if they diverge.
    """
    peft_model.eval()
    before = _logits(peft_model, tokenizer, PROBE_PROMPTS)
    merged = peft_model.merge_and_unload()
    after = _logits(merged, tokenizer, PROBE_PROMPTS)
    diff = max(float((a - b).abs().max()) for a, b in zip(before, after))
    if diff > tolerance:
        raise ModelError(f"merged logits differ from base+adapter by {diff:.2e} (> {tolerance:.0e}); "
                         "refusing to write the merged model")
    return merged, diff
