"""Conversations to verified training Examples: render, check the mask, truncate."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from chattune.batching.collate import Example
from chattune.data.convert import conversations_from_rows
from chattune.data.load import load_rows
from chattune.data.schema import Conversation
from chattune.errors import DataError, TemplateError
from chattune.templates.render import check_rendered, render


@dataclass
class PrepareStats:
    """What preparation did, for the console and the report."""

    rows: int = 0
    tokens: int = 0
    trained_tokens: int = 0
    truncated: int = 0
    dropped_no_trained: int = 0
    lengths: list[int] = field(default_factory=list)

    @property
    def trained_share(self) -> float:
        return self.trained_tokens / self.tokens if self.tokens else 0.0


def examples_from_file(source: str, tokenizer: Any, *, columns: dict[str, str] | None = None,
                       system_prompt: str | None = None, train_on: str = "all_assistant", max_length: int = 1024,
                       limit: int | None = None) -> tuple[list[Example], PrepareStats]:
    """Rows of `source` -> Conversations (every bad row reported at once) -> verified Examples."""
    rows = load_rows(source, limit=limit)
    convs = conversations_from_rows(rows, source, columns=columns, system_prompt=system_prompt)
    return prepare_examples(convs, tokenizer, template=None, train_on=train_on, max_length=max_length)


def prepare_examples(conversations: Sequence[Conversation], tokenizer: Any, *, template: str | None,
                     train_on: str, max_length: int) -> tuple[list[Example], PrepareStats]:
    """Render and verify every conversation; rows longer than max_length keep their start.

    A row whose trained tokens all fall past max_length is dropped and counted, never kept all-masked.
    """
    stats = PrepareStats()
    examples = []
    for conv in conversations:
        try:
            r = render(tokenizer, conv, template=template, train_on=train_on)
            check_rendered(tokenizer, r, conv.messages, train_on)
        except TemplateError as e:
            raise DataError(conv.source, conv.row, None, str(e)) from None
        ex = Example(r.input_ids[:max_length], r.labels[:max_length])
        stats.rows += 1
        stats.truncated += len(r.input_ids) > max_length
        if ex.num_trained == 0:
            stats.dropped_no_trained += 1
            continue
        examples.append(ex)
        stats.tokens += len(ex.input_ids)
        stats.trained_tokens += ex.num_trained
        stats.lengths.append(len(ex.input_ids))
    return examples, stats
