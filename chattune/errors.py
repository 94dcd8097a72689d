"""Errors a user can act on: each names where the problem is, what was expected and what was
found."""

from __future__ import annotations

import difflib
import typing
from typing import Any


class ChattuneError(ValueError):
    """Base class for every error chattune raises for a user's mistake (the CLI prints these, no
    traceback).

    A ValueError, as the errors transformers and TRL raise for bad arguments and data are: code
    written for them (`except ValueError`) catches chattune's too."""


class ConfigError(ChattuneError):
    """One or more config problems, all reported at once."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("invalid config:\n" + "\n".join(f"  - {p}" for p in problems))


class DataError(ChattuneError):
    """A problem in a user's data, located by source file and 1-based row (the editor's line for
    jsonl, csv and json files). `reason` is a short code of the kind of problem
    (chattune.prepare.examples.REASONS), by which bad rows are counted."""

    def __init__(self, source: str, row: int | None, field: str | None, message: str, *,
                 reason: str = "invalid_row"):
        self.source, self.row, self.field, self.reason = source, row, field, reason
        # data.load.RowNo: the line an editor shows ("line 7")
        at = getattr(row, "where", f"row {row}")
        where = (source + (f", {at}" if row is not None else "")
                 + (f", field '{field}'" if field else ""))
        super().__init__(f"{where}: {message}")


class TemplateError(ChattuneError):
    """A chat template that cannot render or mask a conversation correctly."""


class ModelError(ChattuneError):
    """A model or tokenizer that cannot be found or loaded."""


class TrainingError(ChattuneError):
    """Training cannot go on (a NaN or inf loss, a checkpoint that cannot be written); says where to
    resume."""


class TrainingInterrupted(KeyboardInterrupt):
    """The user stopped training (Ctrl-C); a checkpoint was saved where possible. A
    KeyboardInterrupt still (not a ValueError): code that stops on Ctrl-C keeps stopping."""


class HubError(ChattuneError):
    """An upload to the hub failed; the files it was to send are still on disk."""


class TaskError(ChattuneError):
    """An evaluation task that cannot run: an unknown name (the known ones listed), a task file or
    its data file that is missing."""


class JudgeError(ChattuneError):
    """An LLM judge that cannot be reached or used, a rubric without its placeholders, answers that
    do not pair."""


class ExportError(ChattuneError):
    """An export that cannot be made or does not compute what the trained model computes (nothing is
    left that looks finished)."""


def did_you_mean(model: Any, loc: list[Any]) -> str:
    """`; did you mean `lora.r`?` for the unknown key at `loc` of a pydantic `model`, naming the
    closest of the keys its section takes (two where they are equally close: per_device_batch_size
    is train or eval); "" if none is."""
    section = model
    # list indices stay in the path, not the model
    for part in (p for p in loc[:-1] if not isinstance(p, int)):
        field = getattr(section, "model_fields", {}).get(part)
        todo, section = [field.annotation] if field else [], None
        # the section's model, inside Optional[...], list[...] or a union
        while todo and section is None:
            t = todo.pop()
            section = t if hasattr(t, "model_fields") and isinstance(t, type) else None
            todo.extend(typing.get_args(t))
    leaf = str(loc[-1]) if loc else ""
    keys = (section.user_keys() if hasattr(section, "user_keys")
            else getattr(section, "model_fields", {}))
    scored = sorted(((difflib.SequenceMatcher(None, leaf, k).ratio(), k) for k in keys),
                    reverse=True)
    close = [f"`{'.'.join([*map(str, loc[:-1]), k])}`" for r, k in scored[:2]
             if r >= max(0.6, scored[0][0] - 0.03)]
    return f"; did you mean {' or '.join(close)}?" if close else ""
