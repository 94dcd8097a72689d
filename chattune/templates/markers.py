"""Marker characters for the marked rendering: a private-use alphabet the conversation does not use,
and a template message with its content, reasoning and tool calls wrapped in markers."""

from __future__ import annotations

import functools
import math
import re
from dataclasses import dataclass
from typing import Any

from chattune.data.schema import REASONING_KEYS
from chattune.templates.callmarks import mark_call

# the kinds of text a message carries, each with its own marker pair
CONTENT, REASONING, TOOL_CALLS = 0, 1, 2
# Private-use code points (planes 15 and 16, then the BMP's area): no template writes them, and the
# markers are taken from a stretch the conversation's own text does not use
_PRIVATE_USE = ((0xF0000, 0xFFFFD), (0x100000, 0x10FFFD), (0xE000, 0xF8FF))
# the characters that can be private-use: found by regex, not a loop
_HIGH = re.compile("[\ue000-\U0010ffff]")


@dataclass(frozen=True)
class Markers:
    """The marker alphabet for one conversation: `radix` consecutive private-use code points from
    `base`, and a marker written as `width` of them (a number in base `radix`), so a conversation of
    any length has enough distinct markers (one character each up to about 21,000 messages, two up
    to billions)."""

    base: int = _PRIVATE_USE[0][0]
    radix: int = _PRIVATE_USE[0][1] - _PRIVATE_USE[0][0] + 1
    width: int = 1

    def code(self, message: int, kind: int, is_open: bool) -> str:
        n = 2 * (3 * message + kind) + (0 if is_open else 1)
        digits = []
        for _ in range(self.width):
            n, d = divmod(n, self.radix)
            digits.append(chr(self.base + d))
        return "".join(reversed(digits))

    def pair(self, message: int, kind: int) -> tuple[str, str]:
        return self.code(message, kind, True), self.code(message, kind, False)

    def decode(self, marker: str) -> tuple[int, int, bool]:
        """(message, kind, is_open) of a marker."""
        n = 0
        for ch in marker:
            n = n * self.radix + ord(ch) - self.base
        return n // 6, (n // 2) % 3, n % 2 == 0

    @property
    def pattern(self) -> re.Pattern[str]:
        return _marker_pattern(self.base, self.radix, self.width)


@functools.lru_cache(maxsize=256)
def _marker_pattern(base: int, radix: int, width: int) -> re.Pattern[str]:
    # no `{1}` on one-character markers: sre searches a bare class three times as fast
    return re.compile(f"[{chr(base)}-{chr(base + radix - 1)}]"
                      + (f"{{{width}}}" if width > 1 else ""))


def _free_base(text: str, count: int) -> int | None:
    """The first code point of `count` consecutive private-use code points that `text` does not
    contain."""
    used = sorted(map(ord, set(_HIGH.findall(text))))
    for lo, hi in _PRIVATE_USE:
        base = lo
        for u in used:
            if base <= u < base + count:
                base = u + 1
        if base + count - 1 <= hi:
            return base
    return None


def markers_for(text: str, messages: int) -> Markers | None:
    """Markers for `messages` messages that `text` (the conversation) does not contain: one
    character each where a free run of private-use code points is long enough, else the shortest
    width that fits."""
    count = 6 * messages
    for width in range(1, 5):
        radix = max(2, math.ceil(count ** (1 / width)))
        while radix ** width < count:  # float roots can fall one short
            radix += 1
        base = _free_base(text, radix)
        if base is not None:
            return Markers(base, radix, width)
    return None


def _wrap(text: Any, pair: tuple[str, str]) -> Any:
    """Text with the markers around its non-space core (empty text is left alone: a template's `if
    content` must see what it would see)."""
    if not isinstance(text, str) or not text.strip():
        return text
    lead = len(text) - len(text.lstrip())
    trail = len(text.rstrip())
    return text[:lead] + pair[0] + text[lead:trail] + pair[1] + text[trail:]


def mark_message(message: dict[str, Any], index: int, *, calls: bool = True, ids: bool = False,
                 markers: Markers = Markers()) -> dict[str, Any]:
    """A copy of a template message with its content, reasoning and (with `calls`) tool calls
    wrapped in markers."""
    out = dict(message)
    content = out.get("content")
    pair = markers.pair(index, CONTENT)
    if isinstance(content, list):  # content parts: each text part marked
        out["content"] = [{**p, "text": _wrap(p["text"], pair)}
                          if isinstance(p, dict) and "text" in p else p for p in content]
    else:
        out["content"] = _wrap(content, pair)
    for key in REASONING_KEYS:
        if key in out:
            out[key] = _wrap(out[key], markers.pair(index, REASONING))
    if calls and isinstance(out.get("tool_calls"), list):
        out["tool_calls"] = [mark_call(c, markers.pair(index, TOOL_CALLS), ids)
                             for c in out["tool_calls"]]
    return out
