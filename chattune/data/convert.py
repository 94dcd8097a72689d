"""Convert raw rows of every common shape to a Conversation, validating as we go."""

from __future__ import annotations

import json
import string
from typing import Any

from chattune.data.load import Row
from chattune.data.schema import REASONING_KEYS, Conversation, Message, validate_messages
from chattune.data.shapes import (
    SHAPES,
    Mapping,
    UnknownRows,
    columns_hint,
    detect_format,
    find_column,
    find_pair,
    required_columns,
)
from chattune.errors import DataError

ROLE_ORDER = ("system", "user", "assistant")
SHAREGPT_ROLES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant",
                  "system": "system", "tool": "tool", "observation": "tool",
                  "function_call": "assistant"}


def _text(value: Any, field: str, err) -> str:
    """Content as text: a string, or a list of {type: text, text: ...} parts joined."""
    if isinstance(value, str):
        return value
    if isinstance(value, list) and all(isinstance(p, dict) and p.get("type") == "text"
                                       for p in value):
        return "".join(str(p.get("text", "")) for p in value)
    raise err(field,
              f"expected text (a string or a list of text parts), found {type(value).__name__}",
              "wrong_type")


def _message_list(items: Any, field: str, err, role_key="role", content_key="content",
                  roles=None) -> list[Message]:
    if not isinstance(items, list):
        raise err(field, f"expected a list of messages, found {type(items).__name__}", "wrong_type")
    out = []
    for i, m in enumerate(items):
        where = f"{field}[{i}]"
        if not isinstance(m, dict):
            raise err(where, f"expected an object with {role_key!r} and {content_key!r}, found "
                             f"{type(m).__name__}")
        if role_key not in m:
            raise err(where, f"missing {role_key!r}", "missing_field")
        role = m[role_key]
        if roles is not None:
            if role not in roles:
                raise err(f"{where}.{role_key}", f"expected one of {sorted(roles)}, found {role!r}")
            role = roles[role]
        content = m.get(content_key)
        extra = {k: v for k, v in m.items()
                 if k not in (role_key, content_key, "tool_calls", "name", "train")}
        reasoning = any(extra.get(k) for k in REASONING_KEYS)
        content = "" if content is None and (m.get("tool_calls") or reasoning) else \
            _text(content, f"{where}.{content_key}", err)
        out.append(Message(role=role, content=content, tool_calls=m.get("tool_calls"),
                           name=m.get("name"), train=m.get("train"), extra=extra or None))
    return out


def parse_messages(items: Any, source: str = "<messages>") -> list[Message]:
    """Messages from a list of dicts (OpenAI style), each checked; an error names the index and the
    problem."""

    def err(field: str | None, message: str, reason: str = "invalid_row") -> DataError:
        return DataError(source, None, field, message, reason=reason)

    messages = _message_list(items, "messages", err)
    problems = [p for p in validate_messages(messages) if "no assistant message" not in p]
    if problems:
        raise err("messages", "; ".join(problems))
    return messages


def _fill_template(row: dict[str, Any], template: str, err) -> str:
    """`template` with each {column} replaced by that column's text."""
    fields = [f for _, f, _, _ in string.Formatter().parse(template) if f is not None]
    for f in fields:
        if f not in row:
            raise err(f,
                      f"expected column {f!r} (from prompt_template), found columns {sorted(row)}",
                      "missing_field")
    # outside the try: a wrong type is its own error
    values = {f: _text(row[f], f, err) for f in fields}
    try:
        return template.format_map(values)
    except (ValueError, IndexError, KeyError) as e:
        raise err(None, f"prompt_template {template!r} is not a valid template with {{column}} "
                        f"fields ({e})") from None


def _from_columns(row: dict[str, Any], columns: dict[str, str], err,
                  prompt_template: str | None) -> list[Message]:
    if prompt_template:  # the template is the user message; any user column is only a field of it
        columns = {c: r for c, r in columns.items() if r != "user"}
    missing = [c for c in columns if c not in row]
    if missing:
        raise err(missing[0], f"expected column {missing[0]!r} (from data.columns), found columns "
                              f"{sorted(row)}",
                  "missing_field")
    # messages follow role order, not the mapping's key order (YAML dumpers sort keys)
    order = sorted(columns.items(), key=lambda item: ROLE_ORDER.index(item[1]))
    messages = [Message(role=role, content=_text(row[col], col, err)) for col, role in order]
    if prompt_template:
        at = 1 if messages and messages[0].role == "system" else 0
        messages.insert(at, Message("user", _fill_template(row, prompt_template, err)))
    return messages


def _tools(value: Any, err) -> list[dict[str, Any]] | None:
    """A row's tool signatures: a list of objects, or that list as a JSON string (as hub datasets
    store it)."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as e:
            raise err("tools", "expected a list of tools or that list as JSON, found a string "
                      f"that is not JSON ({e.msg})", "wrong_type") from None
    if not isinstance(value, list) or not all(isinstance(t, dict) for t in value):
        raise err("tools", f"expected a list of tool objects, found {type(value).__name__}",
                  "wrong_type")
    return value or None


def _maybe_messages(value: Any, field: str, role: str, err) -> list[Message]:
    """A prompt or completion: a list of messages (TRL's conversational prompt-completion) or
    text."""
    if isinstance(value, list) and value and isinstance(value[0], dict) and "role" in value[0]:
        return _message_list(value, field, err)
    return [Message(role, _text(value, field, err))]


def _from_pair(row: dict[str, Any], mapping: Mapping, err) -> list[Message]:
    """Messages from a recognised column pair; appended columns (Alpaca's input) follow the user
    text after a blank line, and a system column becomes the system message."""
    user, assistant = mapping.user, mapping.assistant
    if mapping.pair.format == "prompt_completion":
        messages = _maybe_messages(row[user], user, "user", err) + _maybe_messages(
            row[assistant], assistant, "assistant", err)
    else:
        parts = [_text(row[user], user, err)] + [_text(row[c], c, err) for c in mapping.appended
                                                 if row[c]]
        messages = [Message("user", "\n\n".join(p for p in parts if p)),
                    Message("assistant", _text(row[assistant], assistant, err))]
    system = mapping.system
    if system and row[system] and messages[0].role != "system":
        messages.insert(0, Message("system", _text(row[system], system, err)))
    return messages


def _convert(row: dict[str, Any], fmt: str, columns: dict[str, str] | None, err,
             prompt_template: str | None = None) -> tuple[list[Message], Any]:
    if columns:
        return _from_columns(row, columns, err, prompt_template), None
    if fmt == "messages":
        return _message_list(row["messages"], "messages", err), _tools(row.get("tools"), err)
    if fmt == "sharegpt":
        return _message_list(row["conversations"], "conversations", err, "from", "value",
                             SHAREGPT_ROLES), None
    mapping = find_pair(row, fmt)
    if mapping is None:
        # text rows never get here, a pair's columns were checked
        raise AssertionError(f"unhandled format {fmt}")
    return _from_pair(row, mapping, err), None


def to_conversation(row: dict[str, Any], *, source: str = "<memory>", row_no: int | None = None,
                    columns: dict[str, str] | None = None, system_prompt: str | None = None,
                    require_assistant: bool = True, fmt: str | None = None,
                    prompt_template: str | None = None) -> Conversation:
    """Convert one raw row to a validated Conversation, raising DataError that names source, row and
    field (`row_no` as load_rows gave it: the editor line for jsonl, csv and json files).

    `fmt` names the shape instead of detecting it. Raw `text` becomes a Conversation with no
    messages, trained as plain language modelling (as TRL does), so the system prompt does not apply
    to it."""

    def err(field: str | None, message: str, reason: str = "invalid_row") -> DataError:
        return DataError(source, row_no, field, message, reason=reason)

    if fmt is not None and not columns:
        missing = [f for f in required_columns(fmt) if find_column(row, f) is None]
        if missing:
            raise err(missing[0],
                      f"expected column {missing[0]!r} (format {fmt}), found columns {sorted(row)}",
                      "missing_field")
    fmt = fmt or detect_format(row)
    if fmt is None and not columns:
        raise err(None, f"cannot tell the data format from the columns {list(row)}; expected one "
                  f"of: {SHAPES}. Rename the columns, or {columns_hint(row)}", "unknown_format")
    if fmt == "text" and not columns:
        text = _text(row["text"], "text", err)
        if not text.strip():
            raise err("text", "expected text to train on, found an empty string", "empty_text")
        return Conversation(messages=[], source=source, row=row_no, text=text)
    messages, tools = _convert(row, fmt or "columns", columns, err, prompt_template)
    if system_prompt and messages and messages[0].role != "system":
        messages = [Message("system", system_prompt)] + messages
    problems = validate_messages(messages)
    if not require_assistant:
        problems = [p for p in problems if "no assistant message" not in p]
    if problems:
        raise err(None, "; ".join(problems), "invalid_messages")
    kwargs = row.get("chat_template_kwargs") if not columns else None
    if kwargs is not None and not isinstance(kwargs, dict):
        raise err("chat_template_kwargs",
                  f"expected an object of template options, found {type(kwargs).__name__}",
                  "wrong_type")
    return Conversation(messages=messages, source=source, row=row_no, tools=tools,
                        template_kwargs=kwargs or None)


def bad_rows_error(source: str, problems: list[str], bad: int | None = None) -> DataError:
    """One error for `bad` bad rows (default: one per problem), listing the first 20 problems and a
    count of the rest."""
    shown = "\n".join(f"  - {p}" for p in problems[:20])
    more = f"\n  ... and {len(problems) - 20} more" if len(problems) > 20 else ""
    return DataError(source, None, None,
                     f"{len(problems) if bad is None else bad} bad row(s):\n{shown}{more}")


def conversations_from_rows(rows: list[Row], source: str, **options: Any) -> list[Conversation]:
    """Convert every row (options as to_conversation's), collecting all bad rows into one error
    (rows of no recognised shape named once per set of columns)."""
    out, problems, unknown = [], [], UnknownRows(source)
    for row_no, row in rows:
        try:
            out.append(to_conversation(row, source=source, row_no=row_no, **options))
        except DataError as e:
            if e.reason == "unknown_format":
                unknown.add(row_no, row)
            else:
                problems.append(str(e))
    if problems or unknown.groups:
        raise bad_rows_error(source, [str(e) for e in unknown.errors()] + problems,
                             len(problems) + unknown.rows)
    return out
