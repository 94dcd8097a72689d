"""`chattune data check` and `chattune data convert`: validate every row and report, or write
normalised JSONL."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from chattune.config import DataSource
from chattune.data.convert import conversations_from_rows
from chattune.data.load import load_rows
from chattune.prepare.examples import PrepareOptions, prepare_source
from chattune.prepare.rows import PrepareStats


def check_source(source: str | DataSource, tokenizer: Any, *, columns: dict[str, str] | None = None,
                 system_prompt: str | None = None, max_length: int = 1024,
                 train_on: str = "all_assistant", truncation: str = "keep_start",
                 limit: int | None = None,
                 template_kwargs: dict[str, Any] | None = None) -> PrepareStats:
    """Convert, render and verify every row of `source` exactly as training would (never from the
    cache), collecting every problem instead of stopping: the same account the training summary
    prints."""
    spec = source if isinstance(source, DataSource) else DataSource(path=source, columns=columns,
                                                                     system_prompt=system_prompt)
    if limit is not None:
        spec = spec.model_copy(update={"num_samples": limit})
    opts = PrepareOptions(train_on=train_on, max_length=max_length, truncation=truncation,
                          template_kwargs=template_kwargs)
    return prepare_source(spec, tokenizer, opts, cache=False)[1]


def convert_file(source: str, out: str | Path, *, columns: dict[str, str] | None = None,
                 system_prompt: str | None = None, fmt: str | None = None,
                 prompt_template: str | None = None) -> int:
    """Write every row of `source` as normalised `{"messages": [...]}` JSONL (raw text rows as
    `{"text": ...}`); returns the rows written. Every bad row is reported at once and nothing is
    written."""
    convs = conversations_from_rows(load_rows(source), source, columns=columns,
                                    system_prompt=system_prompt, fmt=fmt,
                                    prompt_template=prompt_template)
    lines = []
    for conv in convs:
        if conv.text is not None:
            lines.append(json.dumps({"text": conv.text}, ensure_ascii=False))
            continue
        record: dict[str, Any] = {"messages": [m.to_template_dict() for m in conv.messages]}
        if conv.tools:
            record["tools"] = conv.tools
        if conv.template_kwargs:
            record["chat_template_kwargs"] = conv.template_kwargs
        lines.append(json.dumps(record, ensure_ascii=False))
    Path(out).write_text("\n".join(lines) + "\n", encoding="utf-8")
    return len(lines)
