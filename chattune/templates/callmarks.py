"""Tool calls in the marked rendering: markers placed in a call (its name, its arguments' last text,
its id) and the marks of a call that the template writes more than once."""

from __future__ import annotations

from typing import Any


def _close_last_leaf(value: Any, close: str) -> tuple[Any, bool]:
    """A copy of a JSON value with `close` after its last non-empty string (tool-call arguments,
    which may be an object or a JSON string), and whether there was one."""
    if isinstance(value, str):
        if not value.strip():
            return value, False
        trail = len(value.rstrip())
        return value[:trail] + close + value[trail:], True
    items = (list(value.items()) if isinstance(value, dict) else list(enumerate(value))
             if isinstance(value, list) else [])
    for k in range(len(items) - 1, -1, -1):
        new, done = _close_last_leaf(items[k][1], close)
        if done:
            if isinstance(value, dict):
                return {**value, items[k][0]: new}, True
            return [*value[:k], new, *value[k + 1:]], True
    return value, False


def mark_call(call: Any, pair: tuple[str, str], ids: bool = False) -> Any:
    """A tool call with the open marker before its name and the close marker after its arguments'
    last text; with `ids`, its id wrapped in markers too (Kimi K2 writes a call as its id,
    `functions.multiply:0`, and arguments)."""
    if not isinstance(call, dict):
        return call
    fn = call.get("function")
    marked = dict(fn if isinstance(fn, dict) else call)
    closed = False
    if marked.get("arguments"):
        marked["arguments"], closed = _close_last_leaf(marked["arguments"], pair[1])
    if isinstance(marked.get("name"), str) and marked["name"]:
        marked["name"] = pair[0] + marked["name"] + ("" if closed else pair[1])
    out = {**call, "function": marked} if isinstance(fn, dict) else marked
    if ids and isinstance(call.get("id"), str) and call["id"]:
        out["id"] = pair[0] + call["id"] + pair[1]
    return out


def call_marks(message: dict[str, Any], ids: bool = False) -> int:
    """How many open markers the tool calls of a marked message carry: one per named call, one more
    per id."""
    count = 0
    for call in message.get("tool_calls") or []:
        if isinstance(call, dict):
            fn = call["function"] if isinstance(call.get("function"), dict) else call
            count += int(isinstance(fn.get("name"), str) and bool(fn["name"]))
            count += int(ids and isinstance(call.get("id"), str) and bool(call["id"]))
    return count


def first_calls(marks: list[tuple[int, int, bool]], count: int,
                kind: int) -> list[tuple[int, int, bool]]:
    """A message's marks with only the first `count` opens and closes of its tool calls: a call
    written again after the turn (gpt-oss names the call in the tool result's header) is not the
    turn."""
    opens = [m for m in marks if m[1] == kind and m[2]][count:]
    closes = [m for m in marks if m[1] == kind and not m[2]][count:]
    return [m for m in marks if m not in opens and m not in closes] if opens or closes else marks


def has_text_leaf(value: Any) -> bool:
    """Whether tool-call arguments hold a non-empty string, which can carry the close marker."""
    return _close_last_leaf(value, "")[1]
