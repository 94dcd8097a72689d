"""Before/after: greedy answers from the base and the tuned model on held-out questions, scored and saved."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chattune.batching.prepare import examples_from_file
from chattune.config import CompareConfig
from chattune.data.convert import to_conversation
from chattune.data.load import load_rows
from chattune.data.schema import Message
from chattune.errors import DataError
from chattune.evaluate import TaskScore, extract_gsm8k, score_answers, score_gsm8k
from chattune.generate import generate_batch
from chattune.model.device import model_device
from chattune.train.evaluation import evaluate_loss


@dataclass
class CompareSet:
    """Prompts (messages up to the answer) and reference answers."""

    prompts: list[list[Message]]
    questions: list[str]
    references: list[str]


def prompts_from_file(source: str, *, columns: dict[str, str] | None = None, system_prompt: str | None = None,
                      limit: int | None = None) -> tuple[list[list[Message]], list[str | None]]:
    """Each row's prompt (its messages up to the last assistant message) and that message as the reference
    (None for a row that ends before any answer)."""
    prompts: list[list[Message]] = []
    refs: list[str | None] = []
    for row_no, row in load_rows(source, limit=limit):
        conv = to_conversation(row, source=source, row_no=row_no, columns=columns, system_prompt=system_prompt,
                               require_assistant=False)
        msgs = conv.messages
        if msgs[-1].role == "assistant" and len(msgs) > 1:
            prompts.append(msgs[:-1])
            refs.append(msgs[-1].content)
        else:
            prompts.append(msgs)
            refs.append(None)
    return prompts, refs


def load_compare_set(cfg: CompareConfig, system_prompt: str | None) -> CompareSet:
    """Read the comparison rows and split each conversation into prompt and reference answer."""
    prompts, refs = prompts_from_file(cfg.data, columns=cfg.columns, system_prompt=system_prompt,
                                      limit=cfg.num_samples)
    if any(r is None for r in refs):
        raise DataError(cfg.data, None, None, "every comparison row needs a reference answer (an assistant message)")
    return CompareSet(prompts, [p[-1].content for p in prompts], [r or "" for r in refs])


def evaluate_dataset(model: Any, tokenizer: Any, source: str, *, columns: dict[str, str] | None = None,
                     limit: int | None = None, max_new_tokens: int = 256, batch_size: int = 32,
                     extract: Callable[[str], str | None] = extract_gsm8k, generate: bool = True,
                     max_length: int = 1024, on_batch: Callable[[int], None] | None = None,
                     template_kwargs: dict[str, Any] | None = None) -> dict[str, Any]:
    """Loss, perplexity and next-token accuracy on the answers; with `generate`, greedy answers scored for
    format compliance and exact match through `extract`."""
    examples, stats = examples_from_file(source, tokenizer, columns=columns, max_length=max_length, limit=limit,
                                         template_kwargs=template_kwargs)
    metrics: dict[str, Any] = {"rows": stats.rows, **evaluate_loss(model, examples, batch_size, tokenizer.pad_token_id,
                                                                  model_device(model))}
    results: dict[str, Any] = {"data": source, "metrics": metrics}
    if generate:
        prompts, refs = prompts_from_file(source, columns=columns, limit=limit)
        answers = generate_batch(model, tokenizer, prompts, max_new_tokens=max_new_tokens, batch_size=batch_size,
                                 on_batch=on_batch, template_kwargs=template_kwargs)
        score = score_answers(answers, [r or "" for r in refs], extract)
        metrics.update(format_compliance=score.compliance, exact_match=score.accuracy)
        results["generations"] = [{"prompt": p[-1].content, "reference": r, "answer": a}
                                  for p, r, a in zip(prompts, refs, answers)]
    return results


def answer_and_score(model: Any, tokenizer: Any, data: CompareSet, cfg: CompareConfig, template: str | None,
                     on_batch: Callable[[int], None] | None = None,
                     template_kwargs: dict[str, Any] | None = None) -> tuple[list[str], TaskScore]:
    """Greedy answers for every prompt, scored for gsm8k format compliance and exact match."""
    answers = generate_batch(model, tokenizer, data.prompts, template=template, max_new_tokens=cfg.max_new_tokens,
                             batch_size=cfg.batch_size, on_batch=on_batch, template_kwargs=template_kwargs)
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
