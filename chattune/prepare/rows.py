"""A prepared row and the account of a source's rows: examples, bad and dropped rows by reason,
tokens, lengths, formats and shapes, as `data check`, training and the report print them."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from chattune.labels import num_trained

# Why a row is not an example. A bad row stops training (data.on_bad_row: error) or is skipped and
# counted; a dropped row is left out by a setting (truncation) and counted. Codes, not messages, are
# what is counted.
TOO_LONG, NO_TRAINED, TEMPLATE = "too_long", "no_trained", "template"
REASONS = {
    TOO_LONG: "longer than max_length",
    NO_TRAINED: "no trained token left after truncation at max_length",
    TEMPLATE: "the chat template cannot render or mask it",
    "invalid_row": "the row cannot be converted to a conversation",
    "unknown_format": "the data format cannot be told from the row's columns",
    "missing_field": "a field the format needs is missing",
    "wrong_type": "a field has the wrong type",
    "invalid_messages": "the messages are not a valid conversation",
    "empty_text": "a text row with no text",
}


@dataclass
class PreparedRow:
    """One row after preparation: an example (ids and labels), or why it is not one (`reason`, a
    code of REASONS; `error` the message naming file, row and field, for bad rows)."""

    format: str = ""
    input_ids: list[int] = field(default_factory=list)
    labels: list[int] = field(default_factory=list)
    truncated: bool = False
    reason: str = ""
    error: str = ""

    @property
    def bad(self) -> bool:
        return bool(self.error)


RECORD_KEYS = tuple(f.name for f in fields(PreparedRow))  # the cache's columns


def to_columns(rows: Sequence[PreparedRow]) -> dict[str, list]:
    return {key: [getattr(row, key) for row in rows] for key in RECORD_KEYS}


def from_columns(cols: dict[str, list]) -> list[PreparedRow]:
    return [PreparedRow(*values) for values in zip(*(cols[key] for key in RECORD_KEYS))]


HISTOGRAM_EDGES = (64, 128, 256, 512, 1024, 2048, 4096)


@dataclass
class PrepareStats:
    """What preparation did to a source (or several): the one account `data check`, the training
    summary and the report print."""

    source: str = ""
    rows: int = 0
    tokens: int = 0
    trained_tokens: int = 0
    truncated: int = 0
    bad: int = 0
    bad_by_reason: dict[str, int] = field(default_factory=dict)  # reason code -> rows
    dropped_by_reason: dict[str, int] = field(default_factory=dict)
    # every bad row's message, each naming file and row
    problems: list[str] = field(default_factory=list)
    formats: dict[str, int] = field(default_factory=dict)
    # per file and shape: how its columns become messages
    shapes: list[str] = field(default_factory=list)
    lengths: list[int] = field(default_factory=list)
    # sources whose prepared data came from the cache
    reused: list[str] = field(default_factory=list)
    # damaged cache entries removed (prepared again)
    cache_damaged: list[str] = field(default_factory=list)

    @property
    def examples(self) -> int:
        return len(self.lengths)

    @property
    def dropped(self) -> int:
        return sum(self.dropped_by_reason.values())

    @property
    def dropped_too_long(self) -> int:
        return self.dropped_by_reason.get(TOO_LONG, 0)

    @property
    def dropped_no_trained(self) -> int:
        return self.dropped_by_reason.get(NO_TRAINED, 0)

    @property
    def trained_share(self) -> float:
        return self.trained_tokens / self.tokens if self.tokens else 0.0

    @property
    def length_histogram(self) -> dict[str, int]:
        bins: Counter[str] = Counter()
        for n in self.lengths:
            upper = next((e for e in HISTOGRAM_EDGES if n <= e), None)
            bins[f"<={upper}" if upper else f">{HISTOGRAM_EDGES[-1]}"] += 1
        return {k: bins[k] for k in [f"<={e}" for e in HISTOGRAM_EDGES]
                + [f">{HISTOGRAM_EDGES[-1]}"] if bins[k]}

    def count(self, row: PreparedRow) -> None:
        """Fold one prepared row into the account."""
        self.rows += 1
        if row.format:  # conversations given in memory have no row format
            self.formats[row.format] = self.formats.get(row.format, 0) + 1
        if row.bad:
            self.bad += 1
            if row.reason != "unknown_format":  # named once per file, by prepare_source
                self.problems.append(row.error)
            self.bad_by_reason[row.reason] = self.bad_by_reason.get(row.reason, 0) + 1
        elif row.reason:
            self.dropped_by_reason[row.reason] = self.dropped_by_reason.get(row.reason, 0) + 1
        else:
            self.truncated += row.truncated
            self.lengths.append(len(row.input_ids))
            self.tokens += len(row.input_ids)
            self.trained_tokens += num_trained(row.labels)

    def add(self, other: PrepareStats) -> None:
        """Fold another source's stats into these."""
        for name in ("rows", "tokens", "trained_tokens", "truncated", "bad"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        for name in ("bad_by_reason", "dropped_by_reason", "formats"):
            setattr(self, name, dict(Counter(getattr(self, name)) + Counter(getattr(other, name))))
        self.source = ", ".join(s for s in (self.source, other.source) if s)
        self.problems += other.problems
        self.shapes += other.shapes
        self.lengths += other.lengths
        self.reused += other.reused
        self.cache_damaged += other.cache_damaged

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out.pop("lengths")
        return {**out, "examples": self.examples, "dropped": self.dropped,
                "trained_share": self.trained_share, "length_histogram": self.length_histogram}


def print_stats(console: Any, stats: PrepareStats, title: str, *, problems: int = 0,
                bad: str = "bad") -> None:
    """The one account of prepared data, for `data check` and the start of training; `problems` bad
    rows' messages are listed; `bad` names what happens to bad rows ("skipped" in training)."""
    lengths = sorted(stats.lengths)
    median = lengths[len(lengths) // 2] if lengths else 0
    console.print(f"[bold]{title}[/bold]: {stats.rows} rows -> {stats.examples} examples, "
                  f"{stats.bad} bad, {stats.dropped} dropped; {stats.tokens} tokens (median "
                  f"{median}/example), {stats.trained_share:.1%} trained; {stats.truncated} "
                  "truncated",
                  highlight=False)
    for line in stats.shapes:
        console.print(f"  {line}", highlight=False, markup=False)
    for kind, counts in ((bad, stats.bad_by_reason), ("dropped", stats.dropped_by_reason)):
        for reason, n in sorted(counts.items(), key=lambda kv: -kv[1]):
            console.print(f"  {kind}: {n} x {reason} ({REASONS.get(reason, reason)})",
                          highlight=False)
    for message in stats.problems[:problems]:
        console.print(f"  - {message}", highlight=False, markup=False)
    if problems and len(stats.problems) > problems:
        console.print(f"  ... and {len(stats.problems) - problems} more bad rows")
    if stats.lengths:
        console.print("  lengths in tokens: " + ", ".join(f"{k}: {n}"
                                                          for k, n
                                                          in stats.length_histogram.items()),
                      highlight=False)
    if stats.reused:
        console.print(f"  reused prepared data from the cache for {', '.join(stats.reused)}",
                      highlight=False)
    for note in stats.cache_damaged:
        console.print(f"  warning: {note}; prepared again", highlight=False, markup=False)
