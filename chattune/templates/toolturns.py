"""Assistant turns that call tools: where the template writes the calls, and where such a turn ends.

A template may write a call outside the message's content (DeepSeek's `<｜tool▁calls▁begin｜>`
section, MiniCPM3's `<|tool_call_start|>` block, Kimi K2's call ids) and may close the calls with
their own special tokens before the turn's end of turn. So a tool-call turn is found in three steps:
where only the calls' ids are written (Kimi K2), the ids are marked; where the arguments hold no
text to carry a marker (`{"a": 6, "b": 7}`), they are found by rendering once more with every number
changed (what changes is the arguments); and the turn runs on to the end-of-turn token its template
closes plain assistant turns with (`<|im_end|>` after MiniCPM3's `<|tool_call_end|>`), never past it
(DeepSeek-R1 writes `<｜tool▁outputs▁begin｜>` right after it) and never into the next message's
header.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Sequence
from typing import Any

from chattune.errors import TemplateError
from chattune.templates.callmarks import has_text_leaf
from chattune.templates.located import Located, Render, locate, render_marked
from chattune.templates.markers import TOOL_CALLS

PROBE = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]


def _calls(message: dict[str, Any]) -> list[Any]:
    calls = message.get("tool_calls")
    return calls if isinstance(calls, list) else []


def with_call_ids(render: Render, messages: list[dict[str, Any]], trained: Sequence[int],
                  full: Located, full_text: str) -> Located:
    """`full`, or where a trained tool-call turn shows no marked text (Kimi K2 writes a call as its
    id and its arguments), the rendering located with the calls' ids marked too."""
    if all(full.first(j) is not None or not _calls(messages[j]) for j in trained):
        return full
    try:
        return locate(render, messages, False, full_text, ids=True)
    except TemplateError:
        return full


def _changed(value: Any) -> Any:
    """JSON arguments with every number and boolean changed (strings kept: they carry markers)."""
    if isinstance(value, bool):
        return not value
    if isinstance(value, (int, float)):
        return value + 1
    if isinstance(value, dict):
        return {k: _changed(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_changed(v) for v in value]
    return value


def _with_changed_arguments(message: dict[str, Any]) -> dict[str, Any]:
    calls = []
    for call in _calls(message):
        fn = call.get("function") if isinstance(call, dict) else None
        if isinstance(fn, dict) and "arguments" in fn:
            call = {**call, "function": {**fn, "arguments": _changed(fn["arguments"])}}
        calls.append(call)
    return {**message, "tool_calls": calls}


def _suffix_len(a: str, b: str) -> int:
    n = 0
    while n < min(len(a), len(b)) and a[-1 - n] == b[-1 - n]:
        n += 1
    return n


def mark_argument_ends(render: Render, messages: list[dict[str, Any]], full: Located) -> None:
    """Where a turn's call arguments hold no text, its last mark is the call's name: render once
    more with the arguments' numbers changed and add a close mark where the rendering after the name
    stops differing (the end of the arguments as written), within the turn (before the next
    message's first mark)."""
    wanting = [j for j, m in enumerate(messages) if full.last(j) is not None and any(
        isinstance(c, dict) and isinstance(c.get("function"), dict)
        and c["function"].get("arguments")
        and not has_text_leaf(c["function"]["arguments"]) for c in _calls(m))]
    if not wanting or not full.marking[0]:
        return
    changed = [_with_changed_arguments(m) if j in wanting else m for j, m in enumerate(messages)]
    try:
        other = render_marked(render, changed, False, full.markers, full.marking)
    except TemplateError:
        return
    added = False
    for j in wanting:
        last, last_other = full.last(j), other.last(j)
        if last_other is None:
            continue
        ours = full.text[last:full.after(j, last) or len(full.text)]
        theirs = other.text[last_other:other.after(j, last_other) or len(other.text)]
        differs = len(ours) - _suffix_len(ours, theirs)
        if ours != theirs and differs > 0:
            full.positions[j].append((last + differs, TOOL_CALLS, False))
            added = True
    if added:
        full._sorted = None  # the sorted index is rebuilt with the new marks


def _closing_token(text: str, last: int, limit: int, pattern: re.Pattern[str],
                   openers: Collection[str]) -> str | None:
    """The last special token of the closing right after `last`: the first special token and those
    directly after it that open nothing."""
    first = pattern.search(text, last, limit)
    if first is None:
        return None
    token, end = first.group(), first.end()
    while (nxt := pattern.match(text, end, limit)) is not None and nxt.group() not in openers:
        token, end = nxt.group(), nxt.end()
    return token


def turn_enders(render: Render, messages: list[dict[str, Any]], full: Located,
                pattern: re.Pattern[str], openers: Collection[str]) -> set[str]:
    """The special tokens that end a plain assistant turn of this template: those that close the
    conversation's assistant turns without tool calls, and the one that closes a probe reply."""
    enders = set()
    for j, m in enumerate(messages):
        if m.get("role") == "assistant" and not _calls(m) and (last := full.last(j)) is not None:
            limit = full.after(j, last)
            enders.add(_closing_token(full.text, last, len(full.text) if limit is None else limit,
                                      pattern, openers))
    try:
        probe = locate(render, PROBE, False)
    # a template that refuses the probe (it wants a system message): the conversation's
    except TemplateError:
        probe = None
    if probe is not None and (last := probe.last(1)) is not None:
        enders.add(_closing_token(probe.text, last, len(probe.text), pattern, openers))
    enders.discard(None)
    return enders


def tool_turn_end(text: str, last: int, limit: int, end: int, pattern: re.Pattern[str],
                  enders: Collection[str], openers: Collection[str]) -> int:
    """The end of a tool-call turn whose last text ends at `last` and whose closing (`end`) the span
    finder found: the end of the first end-of-turn token after `last`, unless the next message's
    header opens first."""
    for m in pattern.finditer(text, last, limit):
        if m.group() in enders:
            return m.end()
        if m.start() >= end and m.group() in openers:
            break
    return end
