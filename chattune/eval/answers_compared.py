"""Base vs tuned: greedy answers from both models to held-out questions, scored and saved side by
side."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chattune.config import CompareConfig
from chattune.data.schema import Message
from chattune.errors import DataError
from chattune.eval.data_file import prompts_from_file
from chattune.eval.scoring import TaskScore, score_gsm8k
from chattune.generate import generate_batch


@dataclass
class CompareSet:
    """Prompts (messages up to the answer) and reference answers."""

    prompts: list[list[Message]]
    questions: list[str]
    references: list[str]


def load_compare_set(cfg: CompareConfig, system_prompt: str | None) -> CompareSet:
    """Read the comparison rows and split each conversation into prompt and reference answer."""
    prompts, refs = prompts_from_file(cfg.data, columns=cfg.columns, system_prompt=system_prompt,
                                      limit=cfg.num_samples)
    if any(r is None for r in refs):
        raise DataError(cfg.data, None, None,
                        "every comparison row needs a reference answer (an assistant message)")
    return CompareSet(prompts, [p[-1].content for p in prompts], [r or "" for r in refs])


def answer_and_score(model: Any, tokenizer: Any, data: CompareSet, cfg: CompareConfig,
                     template: str | None, on_batch: Callable[[int], None] | None = None,
                     template_kwargs: dict[str, Any] | None = None) -> tuple[list[str], TaskScore]:
    """Greedy answers for every prompt, scored for gsm8k format compliance and exact match."""
    answers = generate_batch(model, tokenizer, data.prompts, template=template,
                             max_new_tokens=cfg.max_new_tokens, batch_size=cfg.batch_size,
                             on_batch=on_batch, template_kwargs=template_kwargs)
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


def add_to_compare_json(out_dir: Path, value: dict[str, Any], key: str = "benchmarks") -> None:
    """compare.json gains an entry (benchmarks, judge) beside the generation comparison (if any)."""
    path = out_dir / "compare.json"
    summary = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    summary[key] = value
    path.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
