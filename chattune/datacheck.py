"""`chattune data check` and `chattune data convert`: validate every row and report, or write normalised JSONL."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from chattune.batching.prepare import PrepareOptions, prepare_source
from chattune.config import DataSource
from chattune.data.convert import conversations_from_rows
from chattune.data.load import load_rows

HISTOGRAM_EDGES = (64, 128, 256, 512, 1024, 2048, 4096)


@dataclass
class CheckReport:
    """What `data check` found in one source."""

    source: str
    formats: dict[str, int] = field(default_factory=dict)
    rows: int = 0
    ok: int = 0
    bad_by_reason: dict[str, int] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)  # the first 20, each naming its row
    tokens: int = 0
    trained_tokens: int = 0
    truncated: int = 0
    dropped_too_long: int = 0
    dropped_no_trained: int = 0
    length_histogram: dict[str, int] = field(default_factory=dict)

    @property
    def bad(self) -> int:
        return self.rows - self.ok

    @property
    def trained_share(self) -> float:
        return self.trained_tokens / self.tokens if self.tokens else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "bad": self.bad, "trained_share": self.trained_share}


def _histogram(lengths: list[int]) -> dict[str, int]:
    bins: Counter[str] = Counter()
    for n in lengths:
        upper = next((e for e in HISTOGRAM_EDGES if n <= e), None)
        bins[f"<={upper}" if upper else f">{HISTOGRAM_EDGES[-1]}"] += 1
    return {k: bins[k] for k in [f"<={e}" for e in HISTOGRAM_EDGES] + [f">{HISTOGRAM_EDGES[-1]}"] if bins[k]}


def check_source(source: str | DataSource, tokenizer: Any, *, columns: dict[str, str] | None = None,
                 system_prompt: str | None = None, max_length: int = 1024, train_on: str = "all_assistant",
                 truncation: str = "keep_start", limit: int | None = None) -> CheckReport:
    """Convert, render and verify every row of `source`, collecting every problem instead of stopping.

    A row is bad when it cannot be converted or masked, when truncation is `error` and it is too long, or when
    no trained token is left after truncation (it would be dropped)."""
    spec = source if isinstance(source, DataSource) else DataSource(path=source, columns=columns,
                                                                     system_prompt=system_prompt)
    if limit is not None:
        spec = spec.model_copy(update={"num_samples": limit})
    opts = PrepareOptions(train_on=train_on, max_length=max_length, truncation=truncation)
    _, stats = prepare_source(spec, tokenizer, opts, cache=False)
    report = CheckReport(spec.path, formats=stats.formats, rows=stats.rows, ok=stats.examples,
                         bad_by_reason=dict(stats.bad_by_reason), problems=stats.problems[:20], tokens=stats.tokens,
                         trained_tokens=stats.trained_tokens, truncated=stats.truncated,
                         dropped_too_long=stats.dropped_too_long, dropped_no_trained=stats.dropped_no_trained,
                         length_histogram=_histogram(stats.lengths))
    if stats.dropped_no_trained:
        report.bad_by_reason["no trained token left after truncation at max_length"] = stats.dropped_no_trained
    if stats.dropped_too_long:
        report.bad_by_reason["longer than max_length (dropped: data.truncation is drop)"] = stats.dropped_too_long
    return report


def convert_file(source: str, out: str | Path, *, columns: dict[str, str] | None = None,
                 system_prompt: str | None = None, fmt: str | None = None, prompt_template: str | None = None) -> int:
    """Write every row of `source` as normalised `{"messages": [...]}` JSONL (raw text rows as `{"text": ...}`);
    returns the rows written. Every bad row is reported at once and nothing is written."""
    convs = conversations_from_rows(load_rows(source), source, columns=columns, system_prompt=system_prompt,
                                    fmt=fmt, prompt_template=prompt_template)
    lines = []
    for conv in convs:
        if conv.text is not None:
            lines.append(json.dumps({"text": conv.text}, ensure_ascii=False))
            continue
        record: dict[str, Any] = {"messages": [m.to_template_dict() for m in conv.messages]}
        if conv.tools:
            record["tools"] = conv.tools
        lines.append(json.dumps(record, ensure_ascii=False))
    Path(out).write_text("\n".join(lines) + "\n", encoding="utf-8")
    return len(lines)
