"""Render a conversation to token ids and labels, with masks from character spans.

The mask is the product: this is the only place labels are made. An assistant message's span is found by
rendering growing prefixes of the conversation (prompt with generation prompt, then prompt plus the message),
and mapped to tokens through the tokenizer's offsets. No token-sequence search, so merges across the
boundary (BLOOM's `?\\n\\n`) cannot hide it.
"""

from __future__ import annotations

import bisect
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from chattune.data.convert import parse_messages
from chattune.data.schema import Conversation, Message
from chattune.errors import TemplateError
from chattune.templates.builtin import BUILTIN_TEMPLATES

IGNORE_INDEX = -100  # the one label value that means "not trained"
TRAIN_ON = ("all_assistant", "last_assistant", "all")


@dataclass(frozen=True)
class Rendered:
    """Token ids and labels side by side (labels[i] is input_ids[i] where trained, IGNORE_INDEX elsewhere)."""

    input_ids: list[int]
    labels: list[int]
    text: str

    @property
    def num_trained(self) -> int:
        return sum(label != IGNORE_INDEX for label in self.labels)


def resolve_template(tokenizer: Any, template: str | None = None) -> str:
    """The Jinja source to render with: a built-in by name, a Jinja string, or the tokenizer's own."""
    if template is None:
        own = getattr(tokenizer, "chat_template", None)
        if not own:
            raise TemplateError("the tokenizer has no chat template; set `template` (e.g. chatml) or call "
                                "chattune.setup_chat_format")
        if isinstance(own, dict):  # several named templates: the default one is what chat uses
            own = own.get("default") or next(iter(own.values()))
        return own
    if template in BUILTIN_TEMPLATES:
        return BUILTIN_TEMPLATES[template].jinja
    if "{{" in template or "{%" in template:
        return template
    raise TemplateError(f"unknown template {template!r}; expected one of {', '.join(BUILTIN_TEMPLATES)} "
                        "or a Jinja string")


def _as_dicts(messages: Sequence[Message | dict[str, Any]]) -> list[dict[str, Any]]:
    return [m.to_template_dict() if isinstance(m, Message) else dict(m) for m in messages]


try:  # transformers' own compiled, sandboxed template (cached per template string)
    from transformers.utils.chat_template_utils import _compile_jinja_template
except ImportError:  # a transformers without it: every render goes through apply_chat_template
    _compile_jinja_template = None


def _plain_json(value: Any) -> Any:
    """A copy made only of JSON types, so the template can reach no object's methods."""
    return None if value is None else json.loads(json.dumps(value))


def render_text(tokenizer: Any, messages: Sequence[Message | dict[str, Any]], *, jinja: str,
                tools: list[dict[str, Any]] | None = None, add_generation_prompt: bool = False) -> str:
    """Render messages to text with transformers' sandboxed Jinja environment.

    Messages that are all chattune Messages (plain strings, and tool calls parsed from JSON) go straight to
    transformers' compiled template with what apply_chat_template passes it (the special tokens and the
    messages without None keys), skipping its per-call copying of arbitrary inputs, a fifth of preparation's
    cost; anything else takes apply_chat_template. tests/test_template_parity.py holds the two equal."""
    try:
        if _compile_jinja_template is not None and all(isinstance(m, Message) for m in messages):
            plain = [_plain_json(d) if "tool_calls" in d else d for d in _as_dicts(messages)]
            return _compile_jinja_template(jinja).render(
                messages=plain, tools=_plain_json(tools), documents=None, add_generation_prompt=add_generation_prompt,
                **tokenizer.special_tokens_map)
        return tokenizer.apply_chat_template(_as_dicts(messages), chat_template=jinja, tools=tools, tokenize=False,
                                             add_generation_prompt=add_generation_prompt)
    except Exception as e:  # jinja raises many types; the template is what the user must fix
        raise TemplateError(f"the chat template failed to render: {type(e).__name__}: {e}") from None


def special_strings(tokenizer: Any) -> list[str]:
    specials = set(getattr(tokenizer, "all_special_tokens", []))
    for tok in getattr(tokenizer, "added_tokens_decoder", {}).values():
        if getattr(tok, "special", False):
            specials.add(str(tok))
    return sorted(specials, key=len, reverse=True)


def _trained_messages(messages: Sequence[Message], train_on: str) -> list[int]:
    assistant = [i for i, m in enumerate(messages) if m.role == "assistant"]
    chosen = set(assistant[-1:] if train_on == "last_assistant" else assistant)
    for i, m in enumerate(messages):  # per-message override
        if m.train is True:
            chosen.add(i)
        elif m.train is False:
            chosen.discard(i)
    return sorted(chosen)


FOLLOW_UP = Message("user", "Go on.")


def _common_prefix_len(a: str, b: str) -> int:
    """Length of the longest common prefix, by bisection on slice equality (C speed, not a per-char loop)."""
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


def _turn_end(tokenizer: Any, through_msgs: Sequence[Message], jinja: str, tools, through: str,
              continued: str | None, specials: list[str]) -> int:
    """Where the last message of `through` ends: where its rendering and a rendering that continues the
    conversation stop agreeing. Some templates close a whole conversation with an extra token (Phi-3 appends
    eos when there is no generation prompt), so len(through) alone would be wrong."""
    if continued is None:
        continued = render_text(tokenizer, [*through_msgs, FOLLOW_UP], jinja=jinja, tools=tools)
    common = through[:_common_prefix_len(through, continued)]
    # the two may agree on a few characters past the turn ("<|" of two different tokens): end the turn at the
    # last special token that lies wholly in the common part
    ends = [common.rfind(s) + len(s) for s in specials if s in common]
    return max(ends) if ends else len(common.rstrip())


def _assistant_span(tokenizer: Any, messages: Sequence[Message], i: int, jinja: str, tools, full: str,
                    specials: list[str]) -> tuple[int, int]:
    """Character span of message i's content and end-of-turn token in `full`."""
    if i == 0:  # nothing before it to render: the prompt is whatever the template writes ahead of the content
        found = full.find(messages[0].content.strip())
        if found < 0:
            raise TemplateError("message 0 (assistant): its content does not appear in the rendering")
        before = full[:found]
    else:
        before = render_text(tokenizer, messages[:i], jinja=jinja, tools=tools, add_generation_prompt=True)
    last = i + 1 == len(messages)  # the conversation through its last message is `full` itself
    through = full if last else render_text(tokenizer, messages[: i + 1], jinja=jinja, tools=tools)
    if not full.startswith(before) or not through.startswith(before):
        raise TemplateError(f"the template is not prefix-preserving at message {i}: the prompt before it does not "
                            "render as a prefix of the whole conversation, so its mask cannot be found exactly")
    start = len(before)
    end = _turn_end(tokenizer, messages[: i + 1], jinja, tools, through, None if last else full,
                    specials)
    turn = full[start:end]
    if end <= start or not any(turn.endswith(s) for s in specials):
        raise TemplateError(f"message {i} (assistant) does not end with an end-of-turn special token in this "
                            f"template (it ends {turn[-20:]!r}); the model would never learn to stop")
    return start, end


def end_of_turn(tokenizer: Any, template: str | None = None) -> str:
    """The special token that closes an assistant turn, read off a probe rendering."""
    jinja = resolve_template(tokenizer, template)
    probe = [Message("user", "Hi"), Message("assistant", "Hello")]
    through = render_text(tokenizer, probe, jinja=jinja)
    text = through[:_turn_end(tokenizer, probe, jinja, None, through, None, special_strings(tokenizer))]
    for s in special_strings(tokenizer):
        if text.endswith(s):
            return s
    raise TemplateError(f"the template does not close an assistant turn with a special token (it ends "
                        f"{text[-20:]!r}); set `template` or call chattune.setup_chat_format")


class Encoded:
    """One tokenised text: its ids, and the tokens that cover a character span."""

    def __init__(self, ids: list[int], offsets: list[tuple[int, int]] | None = None, encoding: Any = None):
        self.ids, self._offsets, self._encoding = ids, offsets, encoding

    def token_range(self, start: int, end: int) -> tuple[int, int]:
        """[first, stop) of the tokens overlapping characters [start, end): a token merged across the span's start
        carries content. Two lookups in the Rust encoding when every character has a token; else by offsets."""
        if self._encoding is not None:
            first, last = self._encoding.char_to_token(start), self._encoding.char_to_token(end - 1)
            if first is not None and last is not None:
                return first, last + 1
            self._offsets = self._encoding.offsets
        ends = [e for _, e in self._offsets]
        starts = [s for s, _ in self._offsets]
        return bisect.bisect_right(ends, start), bisect.bisect_left(starts, end)


def encode_many(tokenizer: Any, texts: list[str]) -> list[Encoded]:
    """Tokenise texts in one call to the Rust tokenizer when there is one (it batches on every core, and most of
    the Python wrapper's cost is per call; offsets are only materialised when a lookup needs them)."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        return [Encoded(e.ids, encoding=e) for e in backend.encode_batch(texts, add_special_tokens=False)]
    out = []
    for text in texts:
        enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        out.append(Encoded(enc["input_ids"], offsets=enc["offset_mapping"]))
    return out


def render_plain(tokenizer: Any, text: str) -> Rendered:
    """Raw text for plain language modelling: the tokenizer's own special tokens (bos), the text, eos; every
    token trained, as TRL does for text datasets."""
    ids = list(tokenizer(text, add_special_tokens=True)["input_ids"])
    if tokenizer.eos_token_id is not None and (not ids or ids[-1] != tokenizer.eos_token_id):
        ids.append(tokenizer.eos_token_id)
    return Rendered(ids, list(ids), text)


Spans = list[tuple[int, int]] | None  # character spans to train; None trains every token


def _check_tool_calls_written(messages: Sequence[Message], text: str) -> None:
    """A template that ignores tool_calls would train an empty assistant turn: say so instead."""
    for i, m in enumerate(messages):
        for call in m.tool_calls or []:
            name = (call.get("function") or call).get("name", "")
            if name and name not in text:
                raise TemplateError(f"message {i} ({m.role}): the chat template does not write its tool call to "
                                    f"{name!r}; use a template that renders tool_calls (template: chatml does)")


def _text_and_spans(tokenizer: Any, messages: Sequence[Message | dict[str, Any]], tools, template: str | None,
                    add_generation_prompt: bool, train_on: str) -> tuple[str, Spans]:
    if not all(isinstance(m, Message) for m in messages):
        messages = parse_messages([m.to_template_dict() if isinstance(m, Message) else m for m in messages])
    if train_on not in TRAIN_ON:
        raise TemplateError(f"train_on must be one of {', '.join(TRAIN_ON)}, got {train_on!r}")
    jinja = resolve_template(tokenizer, template)
    text = render_text(tokenizer, messages, jinja=jinja, tools=tools, add_generation_prompt=add_generation_prompt)
    _check_tool_calls_written(messages, text)
    if add_generation_prompt:
        return text, []
    if train_on == "all":
        return text, None
    specials = special_strings(tokenizer)
    return text, [_assistant_span(tokenizer, messages, i, jinja, tools, text, specials)
                  for i in _trained_messages(messages, train_on)]


def render_many(tokenizer: Any, conversations: Sequence[Conversation], *, template: str | None = None,
                train_on: str = "all_assistant") -> list[Rendered | TemplateError]:
    """Render many conversations, tokenising them in one batch; a conversation that cannot be rendered or
    masked gets its TemplateError in its place instead of stopping the others."""
    planned: list[tuple[str, Spans] | Rendered | TemplateError] = []
    for conv in conversations:
        try:
            planned.append(render_plain(tokenizer, conv.text) if conv.text is not None else
                           _text_and_spans(tokenizer, conv.messages, conv.tools, template, False, train_on))
        except TemplateError as e:
            planned.append(e)
    texts = [p[0] for p in planned if isinstance(p, tuple)]
    encoded = iter(encode_many(tokenizer, texts))
    out: list[Rendered | TemplateError] = []
    for p in planned:
        if isinstance(p, tuple):
            enc = next(encoded)
            out.append(Rendered(enc.ids, list(enc.ids) if p[1] is None else _span_labels(enc, p[1]), p[0]))
        else:
            out.append(p)
    return out


def render(tokenizer: Any, messages: Sequence[Message | dict[str, Any]] | Conversation, *,
           tools: list[dict[str, Any]] | None = None, template: str | None = None,
           add_generation_prompt: bool = False, train_on: str = "all_assistant") -> Rendered:
    """Render a conversation to ids and labels; labels train only what `train_on` selects.

    With `add_generation_prompt=True` the result is a prompt for generation and nothing is trained.
    """
    if isinstance(messages, Conversation):
        if messages.text is not None:
            return render_plain(tokenizer, messages.text)
        tools = tools or messages.tools
        messages = messages.messages
    text, spans = _text_and_spans(tokenizer, messages, tools, template, add_generation_prompt, train_on)
    [enc] = encode_many(tokenizer, [text])
    return Rendered(enc.ids, list(enc.ids) if spans is None else _span_labels(enc, spans), text)


def _span_labels(enc: Encoded, spans: list[tuple[int, int]]) -> list[int]:
    """Labels that train every token overlapping a span, IGNORE_INDEX elsewhere."""
    ids = enc.ids
    labels = [IGNORE_INDEX] * len(ids)
    for start, end in spans:
        first, stop = enc.token_range(start, end)
        labels[first:stop] = ids[first:stop]
    return labels


def check_rendered(tokenizer: Any, rendered: Rendered, messages: Sequence[Message], train_on: str) -> None:
    """Verify trained tokens decode to the trained assistant contents plus end-of-turn, in order."""
    if train_on == "all":
        return
    trained = [lab for lab in rendered.labels if lab != IGNORE_INDEX]
    if not trained:
        raise TemplateError("no token is trained in this example (all labels are masked)")
    backend = getattr(tokenizer, "backend_tokenizer", None)
    decoded = backend.decode(trained, skip_special_tokens=False) if backend is not None else \
        tokenizer.decode(trained, skip_special_tokens=False)
    pos = 0
    for i in _trained_messages(messages, train_on):
        content = messages[i].content.strip()
        found = decoded.find(content, pos)
        if content and found < 0:
            raise TemplateError(f"trained tokens do not contain message {i}'s content; trained text is "
                                f"{decoded[:200]!r}")
        pos = max(pos, found + len(content))
