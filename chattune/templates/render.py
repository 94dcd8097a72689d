"""Render a conversation to token ids and labels, with masks from character spans.

The mask is the product: this is the only place labels are made. An assistant message's span is found by
rendering growing prefixes of the conversation (prompt with generation prompt, then prompt plus the message),
and mapped to tokens through the tokenizer's offsets. No token-sequence search, so merges across the
boundary (BLOOM's `?\\n\\n`) cannot hide it.
"""

from __future__ import annotations

import os
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


def render_text(tokenizer: Any, messages: Sequence[Message | dict[str, Any]], *, jinja: str,
                tools: list[dict[str, Any]] | None = None, add_generation_prompt: bool = False) -> str:
    """Render messages to text with transformers' sandboxed Jinja environment."""
    try:
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


def _turn_end(tokenizer: Any, through_msgs: Sequence[Message], jinja: str, tools, through: str,
              continued: str | None, specials: list[str]) -> int:
    """Where the last message of `through` ends: where its rendering and a rendering that continues the
    conversation stop agreeing. Some templates close a whole conversation with an extra token (Phi-3 appends
    eos when there is no generation prompt), so len(through) alone would be wrong."""
    if continued is None:
        continued = render_text(tokenizer, [*through_msgs, FOLLOW_UP], jinja=jinja, tools=tools)
    common = os.path.commonprefix([through, continued])
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
    through = render_text(tokenizer, messages[: i + 1], jinja=jinja, tools=tools)
    if not full.startswith(before) or not through.startswith(before):
        raise TemplateError(f"the template is not prefix-preserving at message {i}: the prompt before it does not "
                            "render as a prefix of the whole conversation, so its mask cannot be found exactly")
    start = len(before)
    end = _turn_end(tokenizer, messages[: i + 1], jinja, tools, through, full if i + 1 < len(messages) else None,
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


def render(tokenizer: Any, messages: Sequence[Message | dict[str, Any]] | Conversation, *,
           tools: list[dict[str, Any]] | None = None, template: str | None = None,
           add_generation_prompt: bool = False, train_on: str = "all_assistant") -> Rendered:
    """Render a conversation to ids and labels; labels train only what `train_on` selects.

    With `add_generation_prompt=True` the result is a prompt for generation and nothing is trained.
    """
    if isinstance(messages, Conversation):
        tools = tools or messages.tools
        messages = messages.messages
    if not all(isinstance(m, Message) for m in messages):
        messages = parse_messages([m.to_template_dict() if isinstance(m, Message) else m for m in messages])
    if train_on not in TRAIN_ON:
        raise TemplateError(f"train_on must be one of {', '.join(TRAIN_ON)}, got {train_on!r}")
    jinja = resolve_template(tokenizer, template)
    text = render_text(tokenizer, messages, jinja=jinja, tools=tools, add_generation_prompt=add_generation_prompt)
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    ids: list[int] = enc["input_ids"]
    if add_generation_prompt:
        return Rendered(ids, [IGNORE_INDEX] * len(ids), text)
    if train_on == "all":
        return Rendered(ids, list(ids), text)
    specials = special_strings(tokenizer)
    spans = [_assistant_span(tokenizer, messages, i, jinja, tools, text, specials)
             for i in _trained_messages(messages, train_on)]
    labels = [IGNORE_INDEX] * len(ids)
    for t, (s, e) in enumerate(enc["offset_mapping"]):
        # a token is trained when it ends inside a span: a token merged across the span's start carries content
        if any(start < e <= end or (start <= s < end) for start, end in spans):
            labels[t] = ids[t]
    return Rendered(ids, labels, text)


def check_rendered(tokenizer: Any, rendered: Rendered, messages: Sequence[Message], train_on: str) -> None:
    """Verify trained tokens decode to the trained assistant contents plus end-of-turn, in order."""
    if train_on == "all":
        return
    trained = [lab for lab in rendered.labels if lab != IGNORE_INDEX]
    if not trained:
        raise TemplateError("no token is trained in this example (all labels are masked)")
    decoded = tokenizer.decode(trained, skip_special_tokens=False)
    pos = 0
    for i in _trained_messages(messages, train_on):
        content = messages[i].content.strip()
        found = decoded.find(content, pos)
        if content and found < 0:
            raise TemplateError(f"trained tokens do not contain message {i}'s content; trained text is "
                                f"{decoded[:200]!r}")
        pos = max(pos, found + len(content))
