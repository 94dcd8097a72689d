"""The model a run trains and how the run names it: the tokenizer and template first (data is
checked with them before any weights load), then the base model, with Liger's kernels before LoRA
wraps its layers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from chattune.config import TrainConfig
from chattune.model.device import Precision
from chattune.model.load import is_quantized, load_model, load_tokenizer
from chattune.outputs.run_info import RunInfo
from chattune.templates.builtin import BUILTIN_TEMPLATES
from chattune.templates.setup import setup_template
from chattune.train.speed import apply_liger, attention_kernel


def load_tokenizer_with_template(cfg: TrainConfig, path: Path) -> tuple[Any, list[int], str | None]:
    """The tokenizer with the configured template set up (special tokens added, eos/pad set), before
    any model is loaded: data is checked with it first. Returns it, the ids of tokens the template
    added, and the template set up on the model later (None: the tokenizer's own)."""
    tokenizer = load_tokenizer(path, cfg.trust_remote_code)
    applied = cfg.template or (None if getattr(tokenizer, "chat_template", None) else "chatml")
    return tokenizer, setup_template(None, tokenizer, applied), applied


def template_description(cfg: TrainConfig, applied: str | None, new_tokens: list[int]) -> str:
    """How the run renders conversations, in its first lines and run.json."""
    if applied is None:
        said = "the tokenizer's own"
    elif cfg.template is None:
        said = f"{applied} (built in; the tokenizer has none)"
    elif applied in BUILTIN_TEMPLATES:
        said = f"{applied} (built in)"
    else:
        said = "the Jinja template given in the config"
    return said + (f", {len(new_tokens)} special token(s) added" if new_tokens else "")


def load_base_model(cfg: TrainConfig, path: Path, device: torch.device, precision: Precision,
                    tokenizer: Any, applied: str | None) -> Any:
    """The model to train from its local directory `path`, in its precision on `device` (QLoRA:
    quantised as it loads), its embeddings grown for the tokens the template added to
    `tokenizer`."""
    # new embedding rows and LoRA's initial weights: the same run gives the same model
    torch.manual_seed(cfg.args.seed)
    kernel = attention_kernel(cfg.attn_implementation, cfg.args.padding_free, device)
    attention = {"attn_implementation": kernel} if kernel else {}
    model = load_model(path, cfg.trust_remote_code, precision.base,
                       quantize_4bit=cfg.finetuning == "qlora", device=device, extra=attention)
    # the tokens are in the tokenizer already: embeddings and ids
    setup_template(model, tokenizer, applied)
    if not is_quantized(model):  # a quantised model was placed on the device as it loaded
        model.to(device)
    if cfg.liger:
        model.chattune_speed = apply_liger(model, device)  # before LoRA wraps the layers it patches
    return model


def load_base(cfg: TrainConfig, path: Path, device: torch.device,
              precision: Precision) -> tuple[Any, Any, list[int]]:
    """The model to train, its tokenizer with the configured template, and the ids of tokens the
    template added."""
    tokenizer, new_tokens, applied = load_tokenizer_with_template(cfg, path)
    return load_base_model(cfg, path, device, precision, tokenizer, applied), tokenizer, new_tokens


def run_info(cfg: TrainConfig, model_path: Path, template: str, device: torch.device,
             precision: Precision, world: int) -> RunInfo:
    """The run's identity: its first lines, run.json, the report's summary."""
    def described(which: str) -> list[str]:
        return [src.path + (f" (first {src.num_samples} rows)" if src.num_samples else "")
                for src in cfg.data.sources(which)]

    method = cfg.finetuning
    if cfg.finetuning in ("lora", "qlora"):
        method += f" (r {cfg.lora.r}, alpha {cfg.lora.alpha})"
    weights = ("4-bit NF4" if cfg.finetuning == "qlora"
               else str(precision.base).removeprefix("torch."))
    eval_data = described("eval") or ([f"{cfg.data.test_size} of train held out"]
                                      if cfg.data.test_size else [])
    shown = str(model_path) if str(model_path) != cfg.model else None
    return RunInfo(model=cfg.model, method=method, template=template, data=described("train"),
                   eval_data=eval_data,
                   device=str(device) + (f" x {world} processes" if world > 1 else ""),
                   precision=f"{precision.name} compute, weights {weights}", model_path=shown)
