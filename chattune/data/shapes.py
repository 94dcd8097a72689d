"""The column pairs recognised as prompt/response data, which of a row's columns a pair uses, and
the words that say so (the mapping a file gets, the one error for a file whose columns fit no
shape).

A row whose columns fit several pairs takes the first in PAIRS' order (instruction/output before
instruction/response before prompt/completion ...); the mapping printed for the file names the pairs
it also fits, and `--columns` / `data.columns` picks another. Column names match exactly or, failing
that, ignoring case and surrounding spaces (a CSV header written `Question, Answer`)."""

from __future__ import annotations

import functools
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from chattune.errors import DataError


@dataclass(frozen=True)
class Pair:
    """A recognised prompt/response pair: the format it is counted as, its user and assistant
    columns, and the optional columns appended to the user message (Alpaca's `input`, Dolly's
    `context`), each after a blank line."""

    format: str
    user: str
    assistant: str
    appended: tuple[str, ...] = ()


PAIRS: tuple[Pair, ...] = (
    Pair("alpaca", "instruction", "output", ("input",)),  # Alpaca, LLaMA-Factory's alpaca
    # Dolly, GPTeacher, OASST
    Pair("instruction_response", "instruction", "response", ("input", "context")),
    Pair("prompt_completion", "prompt", "completion"),  # TRL; strings or message lists
    Pair("prompt_response", "prompt", "response"),
    Pair("query_response", "query", "response"),
    Pair("question_answer", "question", "answer"),  # gsm8k, Axolotl's alpaca_chat.load_qa
    Pair("question_response", "question", "response"),  # OpenOrca
    Pair("input_output", "input", "output"),
    Pair("human_assistant", "human", "assistant"),
    Pair("user_assistant", "user", "assistant"),
)
PAIR_FORMATS = {p.format: p for p in PAIRS}
# an optional system message (OpenOrca names it system_prompt)
SYSTEM_COLUMNS = ("system", "system_prompt")
SHAPES = ("messages (OpenAI), conversations (ShareGPT), "
          + ", ".join(f"{p.user}{''.join(f'[+{a}]' for a in p.appended)}/{p.assistant}"
                      for p in PAIRS)
          + " or text")  # the recognised shapes, as errors list them


def find_column(columns: Iterable[str], name: str) -> str | None:
    """The column called `name`: exactly, or else the first equal to it ignoring case and
    surrounding spaces."""
    columns = list(columns)
    if name in columns:
        return name
    return next((c for c in columns if isinstance(c, str) and c.strip().lower() == name), None)


def shown(column: str) -> str:
    """A column name as printed: quoted where spaces around it would be invisible."""
    return (column if isinstance(column, str) and column == column.strip()
            and column else repr(column))


@dataclass(frozen=True)
class Mapping:
    """The columns of a row a pair uses (as the row spells them), and the rest."""

    pair: Pair
    user: str
    assistant: str
    appended: tuple[str, ...]
    system: str | None
    unused: tuple[str, ...]
    # the formats of other pairs the columns fit, using a column this one leaves out
    also: tuple[str, ...]

    def describe(self) -> str:
        """`instruction + input -> user, output -> assistant`, with what else the columns hold."""
        user = " + ".join(map(shown, (self.user, *self.appended)))
        parts = ([f"{shown(self.system)} -> system"] if self.system else []) + [
            f"{user} -> user", f"{shown(self.assistant)} -> assistant"]
        text = f"{self.pair.user}/{self.pair.assistant} columns: {', '.join(parts)}"
        if self.unused:
            text += f"; not used: {', '.join(map(shown, self.unused))}"
        if self.also:
            text += f" (also fits {', '.join(self.also)}: --columns or data.columns picks another)"
        return text


def _fit(columns: list[str], pair: Pair) -> tuple[str, str] | None:
    user, assistant = find_column(columns, pair.user), find_column(columns, pair.assistant)
    return (user, assistant) if user is not None and assistant is not None else None


def find_pair(columns: Iterable[str], fmt: str | None = None) -> Mapping | None:
    """The mapping of the first pair (or of format `fmt`'s pair) the columns fit, or None."""
    return _find_pair(tuple(columns), fmt)


# a file's rows share their columns: each set is worked out once, not per row
@functools.lru_cache(maxsize=256)
def _find_pair(columns: tuple[str, ...], fmt: str | None) -> Mapping | None:
    candidates = [PAIR_FORMATS[fmt]] if fmt is not None else PAIRS
    fits = [(p, found) for p in candidates if (found := _fit(columns, p)) is not None]
    if not fits:
        return None
    pair, (user, assistant) = fits[0]
    appended = tuple(c for a in pair.appended
                     if (c := find_column(columns, a)) not in (None, user, assistant))
    system = next((c for s in SYSTEM_COLUMNS if (c := find_column(columns, s)) is not None), None)
    used = {user, assistant, system, *appended}
    # input/output inside Alpaca is not
    also = tuple(p.format for p, found in fits[1:] if not set(found) <= used)
    return Mapping(pair, user, assistant, appended, system,
                   tuple(c for c in columns if c not in used), also)


def detect_format(row: Iterable[str]) -> str | None:
    """Name the shape of a row (or of its column names), or None when no known shape fits.

    Message lists come first, then the pairs in PAIRS' order, then raw `text` (a row holding a pair
    and a `text` column, as tatsu-lab/alpaca does, is the pair)."""
    columns = tuple(row)
    if "messages" in columns:
        return "messages"
    if "conversations" in columns:
        return "sharegpt"
    mapping = _find_pair(columns, None)
    if mapping is not None:
        return mapping.pair.format
    return "text" if "text" in columns else None


def required_columns(fmt: str) -> tuple[str, ...]:
    """The columns format `fmt` cannot do without."""
    pair = PAIR_FORMATS.get(fmt)
    return (pair.user, pair.assistant) if pair else {"messages": ("messages",),
                                                     "sharegpt": ("conversations",),
                                                      "text": ("text",)}[fmt]


def describe_shape(columns: Iterable[str], *, fmt: str | None = None,
                   mapped: dict[str, str] | None = None, prompt_template: str | None = None) -> str:
    """How rows with these columns become messages, in words (the line `data check` and training
    print per file)."""
    columns = list(columns)
    if mapped:
        pairs = [f"{shown(c)} -> {r}" for c, r in mapped.items()
                 if not (prompt_template and r == "user")]
        if prompt_template:
            pairs.insert(0, f"prompt_template {prompt_template!r} -> user")
        return f"columns as mapped: {', '.join(pairs)}"
    fmt = fmt or detect_format(columns)
    if fmt in PAIR_FORMATS:
        mapping = find_pair(columns, fmt)
        if mapping is not None:
            return mapping.describe()
    return {"messages": "messages (OpenAI chat format)",
            "sharegpt": "conversations (ShareGPT: from/value)",
            "text": "raw text (plain language modelling, no template)"}.get(
                fmt or "", f"format {fmt}")


def columns_hint(columns: Iterable[str]) -> str:
    """Both ways to map columns to roles, with this file's own column names."""
    names = [str(c) for c in columns][:2] or ["COLUMN", "COLUMN"]
    user, assistant = names if len(names) == 2 else (names[0], "ANSWER_COLUMN")
    return (f"map the columns to roles, e.g. --columns {user}=user {assistant}=assistant on the "
            f"command line (data check, render, eval) or data.columns: {{{user}: user, "
            f"{assistant}: assistant}} in a config")


def unknown_format_error(source: str, columns: Iterable[str], count: int, first: int,
                         last: int) -> DataError:
    """One error for the `count` rows (from `first` to `last`) of a file whose columns fit no shape:
    the file, the rows, the columns found, the shapes recognised and both ways to fix it."""
    columns = list(columns)
    first_at, last_at = (getattr(r, "where", f"row {r}") for r in (first, last))
    at = f"{count} rows ({first_at} to {last_at})" if count > 1 else first_at
    return DataError(source, None, None,
                     f"cannot tell the data format of {at} from the columns {columns}; "
                     f"expected one of: {SHAPES}. Rename the columns, or {columns_hint(columns)}",
                     reason="unknown_format")


class UnknownRows:
    """A file's rows of no recognised shape, grouped by their columns: one error per group, not one
    per row."""

    def __init__(self, source: str):
        self.source = source
        # columns -> [count, first row, last row]
        self.groups: dict[tuple[str, ...], list[int]] = {}

    def add(self, row_no: int, columns: Iterable[str]) -> None:
        seen = self.groups.setdefault(tuple(columns), [0, row_no, row_no])
        seen[0] += 1
        seen[2] = row_no

    @property
    def rows(self) -> int:
        return sum(count for count, _, _ in self.groups.values())

    def errors(self) -> list[DataError]:
        return [unknown_format_error(self.source, columns, *seen)
                for columns, seen in self.groups.items()]


class ShapeTally:
    """How a file's rows become messages, tallied as they are read: one line per shape met (the
    mapping, in words) and one error per set of columns that fits none."""

    def __init__(self, source: str, *, fmt: str | None = None,
                 columns: dict[str, str] | None = None, prompt_template: str | None = None):
        self.source, self.fmt, self.mapped, self.prompt_template = (source, fmt,
                                                                    columns, prompt_template)
        # format -> ([rows], every column met)
        self.shapes: dict[str, tuple[list[int], dict[str, None]]] = {}
        self.unknown = UnknownRows(source)

    def tap(self, rows: Iterable[tuple[int, dict[str, Any]]]) -> Iterator[tuple[int,
                                                                                dict[str, Any]]]:
        """The rows unchanged, each tallied on the way."""
        for row_no, row in rows:
            fmt = "columns" if self.mapped else (self.fmt or detect_format(row))
            if fmt is None:
                self.unknown.add(row_no, row)
            else:
                count, columns = self.shapes.setdefault(fmt, ([0], {}))
                count[0] += 1
                columns.update(dict.fromkeys(row))
            yield row_no, row

    def lines(self) -> list[str]:
        """`pairs.csv: 12 rows, instruction/response columns: instruction -> user, response ->
        assistant`."""
        out = []
        for fmt, (count, columns) in self.shapes.items():
            shape = describe_shape(columns, fmt=None if fmt == "columns" else fmt,
                                   mapped=self.mapped, prompt_template=self.prompt_template)
            out.append(f"{self.source}: {_rows(count[0])}, {shape}")
        for columns, (count, _, _) in self.unknown.groups.items():
            out.append(f"{self.source}: {_rows(count)}, columns {', '.join(map(shown, columns))}: "
                       "no recognised shape")
        return out


def _rows(n: int) -> str:
    return f"{n} row{'s' if n != 1 else ''}"
