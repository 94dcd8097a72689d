"""Where each message's marked texts lie in a rendering: the template run once more on the messages
wrapped in marker characters (chattune.templates.markers), the markers taken out again, and their
positions kept."""

from __future__ import annotations

import bisect
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from chattune.errors import TemplateError
from chattune.templates.callmarks import call_marks, first_calls
from chattune.templates.markers import TOOL_CALLS, Markers, mark_message, markers_for

Render = Callable[[list[dict[str, Any]], bool], str]  # (messages, add_generation_prompt) -> text


@dataclass
class Located:
    """A rendering and, for each message, where its marked texts lie in it (character positions)."""

    text: str
    # message -> (pos, kind, open)
    positions: dict[int, list[tuple[int, int, bool]]] = field(default_factory=dict)
    markers: Markers = Markers()
    marking: tuple[bool, bool] = (True, False)  # (tool calls marked, their ids marked)

    def first(self, message: int) -> int | None:
        """Where the message's first text opens (a template may repeat a tool's name later: opens
        only count)."""
        marks = self.positions.get(message)
        opens = [p for p, _, is_open in marks or [] if is_open]
        return min(opens or [p for p, _, _ in marks]) if marks else None

    def last(self, message: int) -> int | None:
        """Where the message's last text closes."""
        marks = self.positions.get(message)
        closes = [p for p, _, is_open in marks or [] if not is_open]
        return max(closes or [p for p, _, _ in marks]) if marks else None

    def all_marks(self) -> list[int]:
        return self._index()[0]

    def _index(self) -> tuple[list[int], list[int]]:
        """Every mark's position, sorted, and its message: built once, so each turn's neighbours are
        found by bisection (a conversation of n messages stays O(n log n), not O(n^2))."""
        if getattr(self, "_sorted", None) is None:
            pairs = sorted((p, m) for m, marks in self.positions.items() for p, _, _ in marks)
            self._sorted = ([p for p, _ in pairs], [m for _, m in pairs])
        return self._sorted

    def before(self, message: int, pos: int) -> int | None:
        """The last mark of another message at or before `pos`."""
        marks, owners = self._index()
        k = bisect.bisect_right(marks, pos) - 1
        while k >= 0 and owners[k] == message:
            k -= 1
        return marks[k] if k >= 0 else None

    def after(self, message: int, pos: int) -> int | None:
        """The first mark of another message at or after `pos`."""
        marks, owners = self._index()
        k = bisect.bisect_left(marks, pos)
        while k < len(marks) and owners[k] == message:
            k += 1
        return marks[k] if k < len(marks) else None

    def interleaved(self, message: int, start: int, end: int) -> bool:
        """Whether another message's mark lies strictly between `start` and `end`."""
        marks, owners = self._index()
        lo, hi = bisect.bisect_right(marks, start), bisect.bisect_left(marks, end)
        return any(owners[k] != message for k in range(lo, hi))


def _locate(marked_text: str, markers: Markers, calls: dict[int, int] | None = None) -> Located:
    """Strip the markers from a marked rendering, remembering where each stood in the stripped text
    (of the tool calls of message i, the first `calls[i]` only)."""
    located = Located("", markers=markers)
    pieces, last = [], 0
    for removed, m in enumerate(markers.pattern.finditer(marked_text)):
        pieces.append(marked_text[last:m.start()])
        last = m.end()
        message, kind, is_open = markers.decode(m.group())
        located.positions.setdefault(message,
                                     []).append((m.start() - removed * markers.width, kind,
                                                 is_open))
    pieces.append(marked_text[last:])
    located.text = "".join(pieces)
    for message, count in (calls or {}).items():
        if message in located.positions:
            located.positions[message] = first_calls(located.positions[message], count, TOOL_CALLS)
    # a text repeated past its close (a tool's name written
    for message, marks in located.positions.items():
        # again in the tool result's header) is not the turn
        closes = [p for p, _, is_open in marks if not is_open]
        if closes:
            located.positions[message] = [mark for mark in marks if mark[0] <= max(closes)]
    return located


def render_marked(render: Render, messages: list[dict[str, Any]], add_generation_prompt: bool,
                  markers: Markers, marking: tuple[bool, bool]) -> Located:
    """One marked rendering of `messages`, located (`marking`: whether tool calls, and their ids,
    are marked)."""
    calls, ids = marking
    marked = [mark_message(m, i, calls=calls, ids=ids, markers=markers)
              for i, m in enumerate(messages)]
    counts = {i: call_marks(m, ids) for i, m in enumerate(messages)
              if calls and m.get("tool_calls")}
    located = _locate(render(marked, add_generation_prompt), markers, counts)
    located.marking = marking
    return located


def locate(render: Render, messages: list[dict[str, Any]], add_generation_prompt: bool,
           expected: str | None = None, *, ids: bool = False) -> Located:
    """Render `messages` with markers and find each message's texts. With `expected` (the unmarked
    rendering), the markers must not have changed anything else; tool calls are left unmarked if
    marking them does (a template that branches on a tool's name), and a template that changes still
    is refused. With `ids`, the tool calls' ids are marked first, where the template renders (and
    accepts) them marked."""
    text = (expected if expected is not None
            else json.dumps(messages, ensure_ascii=False, default=str))
    markers = markers_for(text, len(messages))
    if markers is None:
        raise TemplateError(f"chattune cannot mask a conversation of {len(messages)} messages "
                            "whose text uses this many Unicode private-use characters (it marks "
                            "turns with them)")
    for marking in ((True, True),) * ids + ((True, False), (False, False)):
        try:
            located = render_marked(render, messages, add_generation_prompt, markers, marking)
        except TemplateError:
            # a template that checks its ids (Mistral: nine characters) renders them unmarked
            if marking[1]:
                continue
            raise
        if expected is None or located.text == expected:
            return located
    raise TemplateError("the template renders the conversation differently when a message's text "
                        "changes, so chattune cannot tell exactly which tokens belong to which "
                        "turn")
