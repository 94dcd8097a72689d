"""Tests of the upstream files that are out of scope for a text-only chat SFT library on CPU, and
why.

Each rule: (group, node-id pattern, reason). `*` in a pattern matches anything (brackets are
literal, so parametrized ids can be named). Excluded tests are reported as `excluded`, never counted
as passed or failed; `run.py --include GROUP` brings a group back in.
"""

from __future__ import annotations

import re

SFT = "tests/test_sft_trainer.py::"

RULES: list[tuple[str, str, str]] = [
    # --- TRL internals: module-level helpers of trl.trainer.sft_trainer that `trl` does not export
    # and TRL's API docs (sft_trainer.md documents SFTTrainer and SFTConfig) do not name. A drop-in
    # replaces the public surface.
    ("internal", SFT + "TestDFTLoss::*",
     "trl.trainer.sft_trainer.dft_loss is a TRL internal (not exported)"),
    ("internal", SFT + "TestDataCollatorForLanguageModeling::*",
     "trl.trainer.sft_trainer.DataCollatorForLanguageModeling is a TRL internal (not exported, not "
     "documented)"),
    ("internal", SFT + "TestChunkedCrossEntropyLoss::*",
     "tests TRL's private _chunked_cross_entropy_loss"),
    ("internal", SFT + "TestPatchChunkedCELMHead::*",
     "tests TRL's private _patch_chunked_ce_lm_head"),
    # --- vision-language models (chattune trains text chat models; needs the zen-image data sets
    # and VLM tiny models)
    ("vlm", SFT + "TestSFTTrainer::test_train_nll_loss_vlm*", "vision-language model"),
    ("vlm", SFT + "TestSFTTrainer::test_train_vlm*", "vision-language model"),
    ("vlm", SFT + "TestSFTTrainer::test_vision_dataset_with_text_model_raises",
     "image data set (zen-image)"),
    # --- Liger kernels (Triton, CUDA only)
    ("liger", SFT + "TestSFTTrainer::test_train_with_liger", "Liger kernel (CUDA)"),
    ("liger", SFT
     + "TestSFTTrainer::test_compute_loss_skip_logits_on_eval_without_metrics_with_liger",
     "Liger kernel and an accelerator; mocks TRL's Trainer.compute_loss internals"),
    ("liger", SFT + "TestSFTTrainer::test_predict_does_not_skip_logits_with_liger",
     "Liger kernel and an accelerator; mocks TRL's Trainer.compute_loss internals"),
    # --- kernels from the Hub / GPU only
    ("gpu", SFT + "TestSFTTrainer::test_train_padding_free",
     "flash-attn2 from the Hub's kernels-community, Ampere GPU"),
    ("gpu", SFT + "TestSFTTrainerSlow::*",
     "slow, needs an accelerator and full-size Hub models and imdb"),
]


def _regex(pattern: str) -> re.Pattern[str]:
    return re.compile(".*".join(re.escape(part) for part in pattern.split("*")) + r"\Z")


def rules(include: set[str] | None = None) -> list[tuple[str, str]]:
    """(pattern, reason) of the rules in force, leaving out the groups in `include`."""
    return [(pattern, f"[{group}] {reason}") for group, pattern, reason in RULES
            if group not in (include or set())]


def reason_for(nodeid: str, active: list[tuple[str, str]]) -> str | None:
    for pattern, reason in active:
        if _regex(pattern).match(nodeid):
            return reason
    return None
