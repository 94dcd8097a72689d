"""Where each assistant turn lies in the rendering of the whole conversation.

The model trains on one text: the whole conversation rendered once. Templates may rewrite history
(Qwen3 strips the reasoning of earlier turns and writes an empty `<think>` block into the last one),
move text (Mistral Nemo puts the system prompt in the last user turn), or close a turn with several
tokens (Command-R7B), so a turn cannot be found by rendering growing prefixes of the conversation.
Instead the template is run once more with each message's text wrapped in marker characters (Unicode
plane-15 private-use code points, placed inside the text's leading and trailing whitespace so `trim`
behaves the same). Removing the markers must give back the real rendering character for character;
then each marker's position is where that message's text lies in the text the model sees.

An assistant turn's trained span runs from the end of its header (what the generation prompt writes
before the reply, aligned with the rendering; so an injected `<think>` block is trained as the model
would generate it) through its reasoning, tool calls and content, to the end of the special token(s)
that close it. It never reaches into another message's text or the next turn's header.
"""

from __future__ import annotations

import bisect
import functools
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from chattune.errors import TemplateError
from chattune.templates.located import Located, Render, locate

# names of turn headers
_ROLEISH = re.compile(r"user|assistant|system|human|model|bot", re.IGNORECASE)
# names of tokens that close rather than open
_ENDISH = re.compile(r"end|eot|eos|stop|close", re.IGNORECASE)


@functools.lru_cache(maxsize=64)
def specials_pattern(specials: tuple[str, ...]) -> re.Pattern[str] | None:
    """One regex matching any special token, longest first."""
    return re.compile("|".join(map(re.escape, specials))) if specials else None


def _common_prefix_len(a: str, b: str) -> int:
    """Length of the longest common prefix, by bisection on slice equality (C speed, not a per-char
    loop)."""
    if b.startswith(a):
        return len(a)
    lo, hi = 0, min(len(a), len(b))
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if a[:mid] == b[:mid]:
            lo = mid
        else:
            hi = mid - 1
    return lo


@dataclass(frozen=True)
class _Markup:
    """What the template writes between texts: the special tokens that close a message (the first
    one after any message's text) and those that open one (the generation prompt's header; in the
    markup before another message's text, after the last closer, from the first special token
    followed by text:
    `<|im_system|>tool`)."""

    closers: frozenset[str]
    openers: frozenset[str]

    def header(self, gap: str, pattern: re.Pattern[str]) -> str:
        """The part of a gap after its last closer: the next message's header."""
        ends = [m.end() for m in pattern.finditer(gap) if m.group() in self.closers]
        return gap[max(ends, default=0):]


def _after_last_closer(gap: str, closers: set[str] | frozenset[str],
                       pattern: re.Pattern[str]) -> list[re.Match[str]]:
    found = list(pattern.finditer(gap))
    return found[max((k for k, m in enumerate(found) if m.group() in closers), default=-1) + 1:]


def _conversation_markup(full: Located, pattern: re.Pattern[str],
                         assistant: dict[int, bool]) -> _Markup:
    """The closers, and the openers written before the messages' texts: the same for every turn of a
    conversation, so found once (each message's neighbour mark by bisection)."""
    text, marks = full.text, full.all_marks()
    closers = set()
    for message in full.positions:
        last = full.last(message)
        k = bisect.bisect_right(marks, last)
        m = pattern.search(text, last, marks[k] if k < len(marks) else len(text))
        # after a user's or system's text the first special token may be the next header
        # (<｜Assistant｜>)
        if m is not None and (assistant.get(message) or not _ROLEISH.search(m.group())):
            closers.add(m.group())
    openers = set()
    # another message's header starts at its first special token followed by text
    for message in full.positions:
        first = full.first(message)
        k = bisect.bisect_left(marks, first)
        gap = text[marks[k - 1] if k else 0:first]
        found = _after_last_closer(gap, closers, pattern)
        for k, m in enumerate(found):
            following = gap[m.end():found[k + 1].start()] if k + 1 < len(found) else "text"
            if following.strip():
                openers.update(f.group() for f in found[k:])
                break
    return _Markup(frozenset(closers), frozenset(openers))


def _markup(full: Located, prompt_gap: str, pattern: re.Pattern[str], assistant: dict[int, bool],
            conversation: _Markup | None = None) -> _Markup:
    """`conversation`'s markup (found here when not given) with the openers of the generation
    prompt's header: its last token, and those after the previous turn's first closer that are not
    named as ends themselves (<|END_TEXT|><|END_OF_TURN_TOKEN|> close a Cohere turn)."""
    conversation = conversation or _conversation_markup(full, pattern, assistant)
    found = _after_last_closer(prompt_gap, conversation.closers, pattern)
    openers = {m.group() for m in found if not _ENDISH.search(m.group())}
    openers.update(m.group() for m in list(pattern.finditer(prompt_gap))[-1:])
    return _Markup(conversation.closers, frozenset(openers | conversation.openers))


@dataclass(frozen=True)
class TurnSpan:
    """One trained assistant turn: characters [start, end) of the full rendering."""

    message: int
    start: int
    end: int


def _closing_end(text: str, after: int, limit: int, pattern: re.Pattern[str],
                 openers: set[str]) -> int | None:
    """End of the special token(s) closing a turn whose text ends at `after`: the first special
    token before `limit`, and any special tokens directly after it that do not open a turn
    (<|END_RESPONSE|><|END_OF_TURN|>)."""
    first = pattern.search(text, after, limit)
    if first is None:
        return None
    end = first.end()
    while (nxt := pattern.match(text, end, limit)) is not None and nxt.group() not in openers:
        end = nxt.end()
    return end


def prompt_gap(render: Render, messages: list[dict[str, Any]], upto: int) -> str:
    """What the generation prompt writes after the last text of messages[:upto]: the previous turn's
    closing and the assistant header (with anything the template adds for a reply to begin, such as
    `<think>\\n`)."""
    if upto == 0:
        try:
            return render([], True)
        except TemplateError:
            return ""
    prompt = locate(render, messages[:upto], True)
    marks = [p for ms in prompt.positions.values() for p, _, _ in ms]
    return prompt.text[max(marks, default=0):]


EXACT_TURNS = 8  # conversations with up to this many trained turns render every turn's prompt


def _surroundings(full: Located, messages: list[dict[str, Any]], j: int) -> tuple[Any, ...]:
    """What a turn's prompt gap can be shared on: the rendering between the previous message's text
    and the turn's own, and the previous message's role."""
    first = full.first(j)
    before = full.before(j, first)
    return full.text[before or 0:first], messages[j - 1].get("role") if j else None


def prompt_gaps(render: Render, messages: list[dict[str, Any]], trained: Sequence[int],
                full: Located) -> dict[int, str]:
    """Each trained turn's prompt gap. Rendering the prompt before every turn costs O(n^2) in the
    conversation's length, so a long conversation's turns with the same surroundings share one gap.
    Sharing is checked, not assumed: the gap is rendered exactly at the 1st, 2nd, 4th, 8th... turn
    of each kind and at the last turn (prompts of geometrically growing length: about two renderings
    of the whole conversation in all), and a template whose gap differs after all renders every
    turn's."""
    if len(trained) <= EXACT_TURNS:
        return {j: prompt_gap(render, messages, j) for j in trained}
    shared: dict[tuple[Any, ...], str] = {}
    seen: dict[tuple[Any, ...], int] = {}
    gaps = {}
    for j in trained:
        if full.first(j) is None:
            gaps[j] = ""  # not rendered: assistant_spans says so
            continue
        key = _surroundings(full, messages, j)
        seen[key] = seen.get(key, 0) + 1
        if key not in shared or seen[key] & (seen[key] - 1) == 0 or j == trained[-1]:
            exact = prompt_gap(render, messages, j)
            # the template's prompt depends on more than this
            if shared.setdefault(key, exact) != exact:
                return {j: prompt_gap(render, messages, j) for j in trained}
        gaps[j] = shared[key]
    return gaps


def _snap_out_of_special(text: str, pos: int, pattern: re.Pattern[str], floor: int) -> int:
    """`pos`, moved back to the start of a special token it falls inside (alignment can stop at
    `<|START_`)."""
    for m in pattern.finditer(text, max(floor, pos - 64), pos + 64):
        if m.start() < pos < m.end():
            return m.start()
    return pos


def _snap_back(text: str, pos: int, floor: int, pattern: re.Pattern[str] | None) -> int:
    """`pos`, moved back to just after a space or a special token: two texts can agree on part of a
    word (`<t` of `<think>` and `<tool_call>`), and the turn must not start inside it."""
    if pos <= floor or text[pos - 1].isspace():
        return pos
    ends = [floor] + [k + 1 for k in range(pos - 1, floor - 1, -1) if text[k].isspace()][:1]
    if pattern is not None:
        ends += [m.end() for m in pattern.finditer(text, floor, pos) if m.end() <= pos]
    return max(ends)


def _turn_start(full: Located, j: int, gap: str, markup: _Markup | None,
                pattern: re.Pattern[str] | None) -> int:
    """Where assistant turn j's trained text starts: after its header. The header is what the
    generation prompt writes after its last closer, found right before the turn; where the template
    renders the turn's header differently (Qwen3.5 writes `<think>` in the prompt only), the
    prompt's tail is aligned with the rendering and the turn starts where they stop agreeing."""
    first = full.first(j)
    previous = full.before(j, first)
    earlier, before = previous is not None, previous or 0
    header = markup.header(gap, pattern) if markup is not None and pattern is not None else gap
    found = full.text.rfind(header, before, first) if header.strip() else -1
    if found >= 0:
        start = found + len(header)
    elif earlier:
        start = _snap_back(full.text, before + _common_prefix_len(gap, full.text[before:first]),
                           before, pattern)
    # nothing before this turn but what the template adds itself, and no header to find: its own
    # text
    else:
        start = first
    return start if pattern is None else _snap_out_of_special(full.text, start, pattern, before)


def assistant_spans(render: Render, messages: list[dict[str, Any]], trained: Sequence[int],
                    full_text: str, specials: tuple[str, ...]) -> list[TurnSpan]:
    """The trained span of each message in `trained` (assistant turns), found in the whole
    rendering."""
    from chattune.templates import toolturns  # it builds on this module

    pattern = specials_pattern(specials)
    full = locate(render, messages, False, full_text)
    calling = [j for j in trained if messages[j].get("tool_calls")]
    if calling:
        full = toolturns.with_call_ids(render, messages, trained, full, full_text)
        toolturns.mark_argument_ends(render, messages, full)
    assistant = {i: m.get("role") == "assistant" for i, m in enumerate(messages)}
    conversation = None if pattern is None else _conversation_markup(full, pattern, assistant)
    enders = None if pattern is None or conversation is None or not calling else \
        toolturns.turn_enders(render, messages, full, pattern, conversation.openers)
    gaps = prompt_gaps(render, messages, trained, full)
    spans = []
    for j in trained:
        role = messages[j].get("role")
        first, last = full.first(j), full.last(j)
        if first is None or last is None:
            raise TemplateError(f"message {j} ({role}): the template does not render it, so there "
                                "is nothing to train")
        if full.interleaved(j, first, last):
            raise TemplateError(f"message {j} ({role}): the template writes another message's text "
                                "inside it, so its tokens cannot be trained alone")
        gap = gaps[j]
        markup = None if pattern is None else _markup(full, gap, pattern, assistant, conversation)
        start = _turn_start(full, j, gap, markup, pattern)
        limit = next_mark if (next_mark := full.after(j, last)) is not None else len(full.text)
        end = None if pattern is None or markup is None else \
            _closing_end(full.text, last, limit, pattern, set(markup.openers))
        if end is not None and enders and j in calling:
            end = toolturns.tool_turn_end(full.text, last, limit, end, pattern, enders,
                                          markup.openers)
        if end is None:
            raise TemplateError(f"message {j} ({role}) is not followed by an end-of-turn special "
                                "token in this template (it is followed by "
                                f"{full.text[last:limit][:30]!r}); the model would never learn to "
                                "stop")
        spans.append(TurnSpan(j, start, end))
    return spans
