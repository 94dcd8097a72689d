"""`chattune eval --data`: loss, perplexity and token accuracy on a file's answers, and greedy
answers to its questions scored for format compliance and exact match."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from chattune.data.convert import to_conversation
from chattune.data.load import load_rows
from chattune.data.schema import Message
from chattune.eval.loss import evaluate_loss
from chattune.eval.scoring import extract_gsm8k, score_answers
from chattune.generate import generate_batch
from chattune.model.device import model_device
from chattune.prepare.examples import examples_from_file


def prompts_from_file(source: str, *, columns: dict[str, str] | None = None,
                      system_prompt: str | None = None,
                      limit: int | None = None) -> tuple[list[list[Message]], list[str | None]]:
    """Each row's prompt (its messages up to the last assistant message) and that message as the
    reference (None for a row that ends before any answer)."""
    prompts: list[list[Message]] = []
    refs: list[str | None] = []
    for row_no, row in load_rows(source, limit=limit):
        conv = to_conversation(row, source=source, row_no=row_no, columns=columns,
                               system_prompt=system_prompt, require_assistant=False)
        msgs = conv.messages
        if msgs[-1].role == "assistant" and len(msgs) > 1:
            prompts.append(msgs[:-1])
            refs.append(msgs[-1].content)
        else:
            prompts.append(msgs)
            refs.append(None)
    return prompts, refs


def evaluate_dataset(model: Any, tokenizer: Any, source: str, *,
                     columns: dict[str, str] | None = None,
                     limit: int | None = None, max_new_tokens: int = 256, batch_size: int = 32,
                     extract: Callable[[str], str | None] = extract_gsm8k, generate: bool = True,
                     max_length: int = 1024, on_batch: Callable[[int], None] | None = None,
                     template_kwargs: dict[str, Any] | None = None) -> dict[str, Any]:
    """Loss, perplexity and next-token accuracy on the answers; with `generate`, greedy answers
    scored for format compliance and exact match through `extract`."""
    examples, stats = examples_from_file(source, tokenizer, columns=columns, max_length=max_length,
                                         limit=limit, template_kwargs=template_kwargs)
    metrics: dict[str, Any] = {"rows": stats.rows,
                               **evaluate_loss(model, examples, batch_size, tokenizer.pad_token_id,
                                              model_device(model))}
    results: dict[str, Any] = {"data": source, "metrics": metrics}
    if generate:
        prompts, refs = prompts_from_file(source, columns=columns, limit=limit)
        answers = generate_batch(model, tokenizer, prompts, max_new_tokens=max_new_tokens,
                                 batch_size=batch_size, on_batch=on_batch,
                                 template_kwargs=template_kwargs)
        score = score_answers(answers, [r or "" for r in refs], extract)
        metrics.update(format_compliance=score.compliance, exact_match=score.accuracy)
        results["generations"] = [{"prompt": p[-1].content, "reference": r, "answer": a}
                                  for p, r, a in zip(prompts, refs, answers)]
    return results
