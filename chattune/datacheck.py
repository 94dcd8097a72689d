"""`chattune data check` and `chattune data convert`: validate every row and report, or write normalised JSONL."""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from chattune.batching.prepare import PrepareStats, prepare_examples
from chattune.data.convert import detect_format, to_conversation
from chattune.data.load import load_rows
from chattune.errors import DataError

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


def _reason(message: str) -> str:
    """A problem's kind without its specifics, for counting (`field 'answer': expected column ...`)."""
    core = message.split(": ", 1)[-1] if re.match(r".*row \d+", message) else message
    core = re.sub(r"\d+", "N", core.split(";")[0])
    return core[:80]


def _histogram(lengths: list[int]) -> dict[str, int]:
    bins: Counter[str] = Counter()
    for n in lengths:
        upper = next((e for e in HISTOGRAM_EDGES if n <= e), None)
        bins[f"<={upper}" if upper else f">{HISTOGRAM_EDGES[-1]}"] += 1
    return {k: bins[k] for k in [f"<={e}" for e in HISTOGRAM_EDGES] + [f">{HISTOGRAM_EDGES[-1]}"] if bins[k]}


def check_source(source: str, tokenizer: Any, *, columns: dict[str, str] | None = None,
                 system_prompt: str | None = None, max_length: int = 1024, train_on: str = "all_assistant",
                 limit: int | None = None) -> CheckReport:
    """Convert, render and verify every row of `source`, collecting every problem instead of stopping."""
    report = CheckReport(source)
    rows = load_rows(source, limit=limit)
    total = PrepareStats()
    formats: Counter[str] = Counter()
    reasons: Counter[str] = Counter()

    def bad(e: DataError) -> None:
        reasons[_reason(str(e))] += 1
        if len(report.problems) < 20:
            report.problems.append(str(e))

    for row_no, row in rows:
        formats["columns" if columns else (detect_format(row) or "unknown")] += 1
        try:
            conv = to_conversation(row, source=source, row_no=row_no, columns=columns, system_prompt=system_prompt)
            examples, stats = prepare_examples([conv], tokenizer, template=None, train_on=train_on,
                                               max_length=max_length)
        except DataError as e:
            bad(e)
            continue
        report.ok += len(examples)
        total.tokens += stats.tokens
        total.trained_tokens += stats.trained_tokens
        total.truncated += stats.truncated
        total.dropped_no_trained += stats.dropped_no_trained
        total.lengths += stats.lengths
    report.rows = len(rows)
    report.formats, report.bad_by_reason = dict(formats), dict(reasons)
    report.tokens, report.trained_tokens = total.tokens, total.trained_tokens
    report.truncated, report.dropped_no_trained = total.truncated, total.dropped_no_trained
    if total.dropped_no_trained:
        report.bad_by_reason["no trained token left after truncation at max_length"] = total.dropped_no_trained
    report.length_histogram = _histogram(total.lengths)
    return report


def convert_file(source: str, out: str | Path, *, columns: dict[str, str] | None = None,
                 system_prompt: str | None = None) -> int:
    """Write every row of `source` as normalised `{"messages": [...]}` JSONL; returns the rows written."""
    rows = load_rows(source)
    lines = []
    for row_no, row in rows:
        conv = to_conversation(row, source=source, row_no=row_no, columns=columns, system_prompt=system_prompt)
        record: dict[str, Any] = {"messages": [m.to_template_dict() for m in conv.messages]}
        if conv.tools:
            record["tools"] = conv.tools
        lines.append(json.dumps(record, ensure_ascii=False))
    Path(out).write_text("\n".join(lines) + "\n", encoding="utf-8")
    return len(lines)
