"""Before/after: greedy answers from the base and the tuned model on held-out questions, scored and saved."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chattune.config import CompareConfig
from chattune.data.convert import to_conversation
from chattune.data.load import load_rows
from chattune.data.schema import Message
from chattune.evaluate import TaskScore, score_gsm8k
from chattune.generate import generate_batch


@dataclass
class CompareSet:
    """Prompts (messages up to the answer) and reference answers."""

    prompts: list[list[Message]]
    questions: list[str]
    references: list[str]


def load_compare_set(cfg: CompareConfig, system_prompt: str | None) -> CompareSet:
    """Read the comparison rows and split each conversation into prompt and reference answer."""
    rows = load_rows(cfg.data, limit=cfg.num_samples)
    prompts, questions, refs = [], [], []
    for row_no, row in rows:
        conv = to_conversation(row, source=cfg.data, row_no=row_no, columns=cfg.columns, system_prompt=system_prompt)
        last = max(i for i, m in enumerate(conv.messages) if m.role == "assistant")
        prompts.append(conv.messages[:last])
        questions.append(conv.messages[last - 1].content)
        refs.append(conv.messages[last].content)
    return CompareSet(prompts, questions, refs)


def answer_and_score(model: Any, tokenizer: Any, data: CompareSet, cfg: CompareConfig, template: str | None,
                     on_batch: Callable[[int], None] | None = None) -> tuple[list[str], TaskScore]:
    """Greedy answers for every prompt, scored for gsm8k format compliance and exact match."""
    answers = generate_batch(model, tokenizer, data.prompts, template=template, max_new_tokens=cfg.max_new_tokens,
                             batch_size=cfg.batch_size, on_batch=on_batch)
    return answers, score_gsm8k(answers, data.references)


def write_comparison(out_dir: Path, data: CompareSet, before: tuple[list[str], TaskScore],
                     after: tuple[list[str], TaskScore]) -> dict[str, Any]:
    """compare.json (scores) and compare.jsonl (every answer side by side) in `out_dir`."""
    summary = {"base": before[1].as_dict(), "tuned": after[1].as_dict()}
    (out_dir / "compare.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    with (out_dir / "compare.jsonl").open("w", encoding="utf-8") as f:
        for q, ref, b, a in zip(data.questions, data.references, before[0], after[0]):
            f.write(json.dumps({"question": q, "reference": ref, "base": b, "tuned": a}) + "\n")
    return summary
