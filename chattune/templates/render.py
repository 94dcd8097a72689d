"""Render a conversation to token ids and labels, with masks from character spans.

The mask is the product: this is the only place labels are made. An assistant message's span is
found by rendering growing prefixes of the conversation (prompt with generation prompt, then prompt
plus the message), and mapped to tokens through the tokenizer's offsets. No token-sequence search,
so merges across the boundary (BLOOM's `?\\n\\n`) cannot hide it.
"""

from __future__ import annotations

import bisect
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from chattune.data.convert import parse_messages
from chattune.data.schema import ROLES, Conversation, Message
from chattune.errors import TemplateError
from chattune.labels import labels_from_token_ranges, num_trained, trained_ids
from chattune.templates.budget import budgeted_template, render_within_budget
from chattune.templates.builtin import BUILTIN_TEMPLATES
from chattune.templates.spans import assistant_spans

TRAIN_ON = ("all_assistant", "last_assistant", "all")


@dataclass(frozen=True)
class Rendered:
    """Token ids and labels side by side (labels[i] is input_ids[i] where trained, IGNORE_INDEX
    elsewhere)."""

    input_ids: list[int]
    labels: list[int]
    text: str
    # the trained character spans of `text` (None: all of it)
    spans: tuple[tuple[int, int], ...] | None = None

    @property
    def num_trained(self) -> int:
        return num_trained(self.labels)


def resolve_template(tokenizer: Any, template: str | None = None) -> str:
    """The Jinja source to render with: a built-in by name, a Jinja string, or the tokenizer's
    own."""
    if template is None:
        own = getattr(tokenizer, "chat_template", None)
        if not own:
            raise TemplateError("the tokenizer has no chat template; set `template` (e.g. chatml) "
                                "or call chattune.setup_chat_format")
        if isinstance(own, dict):  # several named templates: the default one is what chat uses
            own = own.get("default") or next(iter(own.values()))
        return own
    if template in BUILTIN_TEMPLATES:
        return BUILTIN_TEMPLATES[template].jinja
    if "{{" in template or "{%" in template:
        return template
    raise TemplateError(f"unknown template {template!r}; expected one of "
                        f"{', '.join(BUILTIN_TEMPLATES)} or a Jinja string")


def _as_dicts(messages: Sequence[Message | dict[str, Any]]) -> list[dict[str, Any]]:
    return [m.to_template_dict() if isinstance(m, Message) else dict(m) for m in messages]


try:  # transformers' own compiled, sandboxed template (cached per template string)
    from transformers.utils.chat_template_utils import _compile_jinja_template
except ImportError:  # a transformers without it: every render goes through apply_chat_template
    _compile_jinja_template = None


def _plain_json(value: Any) -> Any:
    """A copy made only of JSON types, so the template can reach no object's methods."""
    return None if value is None else json.loads(json.dumps(value, default=str))


def _is_plain(d: dict[str, Any]) -> bool:
    return all(type(v) is str for v in d.values())


@dataclass(frozen=True)
class TemplateVariables:
    """What a template sees besides the messages and add_generation_prompt, as plain JSON: made once
    per conversation (or batch), not once per render (a conversation is rendered several times to
    find its spans)."""

    tools: Any
    documents: Any
    extra: dict[str, Any]  # the special tokens (bos_token, ...) and the template kwargs


def template_variables(tokenizer: Any, tools: list[dict[str, Any]] | None = None,
                       template_kwargs: dict[str, Any] | None = None,
                       special_tokens_map: dict[str, Any] | None = None) -> TemplateVariables:
    """The variables apply_chat_template passes; `special_tokens_map` is the tokenizer's, when
    already read."""
    kwargs = dict(template_kwargs or {})
    documents = kwargs.pop("documents", None)
    try:
        specials = (tokenizer.special_tokens_map if special_tokens_map is None
                    else special_tokens_map)
        return TemplateVariables(_plain_json(tools), _plain_json(documents),
                                 {**specials, **(_plain_json(kwargs) if kwargs else {})})
    # a value JSON cannot hold (a circular one): the user's to fix, like a failed render
    except Exception as e:
        raise TemplateError(f"the chat template failed to render: {type(e).__name__}: "
                            f"{e}") from None


def render_dicts(tokenizer: Any, messages: list[dict[str, Any]], *, jinja: str,
                 tools: list[dict[str, Any]] | None = None, add_generation_prompt: bool = False,
                 template_kwargs: dict[str, Any] | None = None,
                 variables: TemplateVariables | None = None) -> str:
    """Render template dicts to text with transformers' sandboxed Jinja environment, passing what
    apply_chat_template passes (the special tokens, tools, documents, and `template_kwargs` such as
    enable_thinking; or `variables`, made from them once). Messages of plain strings skip
    apply_chat_template's per-call copying (a fifth of preparation's cost); anything else is made
    plain JSON first. tests/templates/test_template_parity.py holds the two equal. The render has a
    time and size budget (templates.budget)."""
    try:
        if _compile_jinja_template is not None:
            v = variables or template_variables(tokenizer, tools, template_kwargs)
            plain = [d if _is_plain(d) else _plain_json(d) for d in messages]
            # transformers' environment (compiling an empty template gives it), our compile of the
            # template
            template = budgeted_template(jinja, _compile_jinja_template("").environment)
            return render_within_budget(template, messages=plain, tools=v.tools,
                                        documents=v.documents,
                                        add_generation_prompt=add_generation_prompt, **v.extra)
        kwargs = dict(template_kwargs or {})
        documents = kwargs.pop("documents", None)
        return tokenizer.apply_chat_template(messages, chat_template=jinja, tools=tools,
                                             documents=documents, tokenize=False,
                                             add_generation_prompt=add_generation_prompt, **kwargs)
    except TemplateError:  # the budget's: it says which limit
        raise
    except Exception as e:  # jinja raises many types; the template is what the user must fix
        raise TemplateError(f"the chat template failed to render: {type(e).__name__}: "
                            f"{e}") from None


def render_text(tokenizer: Any, messages: Sequence[Message | dict[str, Any]], *, jinja: str,
                tools: list[dict[str, Any]] | None = None, add_generation_prompt: bool = False,
                template_kwargs: dict[str, Any] | None = None) -> str:
    """Render messages (chattune Messages or template dicts) to text; see render_dicts."""
    return render_dicts(tokenizer, _as_dicts(messages), jinja=jinja, tools=tools,
                        add_generation_prompt=add_generation_prompt,
                        template_kwargs=template_kwargs)


def special_strings(tokenizer: Any) -> list[str]:
    specials = set(getattr(tokenizer, "all_special_tokens", []))
    for tok in getattr(tokenizer, "added_tokens_decoder", {}).values():
        if getattr(tok, "special", False):
            specials.add(str(tok))
    return sorted(specials, key=len, reverse=True)


@dataclass(frozen=True)
class TokenizerFacts:
    """What every conversation of a batch reads off the tokenizer: read once (each is a few
    dictionaries built by transformers on every access)."""

    specials: tuple[str, ...]
    special_tokens_map: dict[str, Any]

    @classmethod
    def of(cls, tokenizer: Any) -> TokenizerFacts:
        return cls(tuple(special_strings(tokenizer)), tokenizer.special_tokens_map)


def _trained_messages(messages: Sequence[Message], train_on: str) -> list[int]:
    assistant = [i for i, m in enumerate(messages) if m.role == "assistant"]
    chosen = set(assistant[-1:] if train_on == "last_assistant" else assistant)
    for i, m in enumerate(messages):  # per-message override
        if m.train is True:
            chosen.add(i)
        elif m.train is False:
            chosen.discard(i)
    return sorted(chosen)


PROBE = [Message("user", "Hi"), Message("assistant", "Hello")]


def _renderer(tokenizer: Any, jinja: str, tools, template_kwargs,
              special_tokens_map: dict[str, Any] | None = None) -> Callable[[
                      list[dict[str, Any]], bool], str]:
    variables = template_variables(tokenizer, tools, template_kwargs, special_tokens_map) \
        if _compile_jinja_template is not None else None

    def run(dicts: list[dict[str, Any]], add_generation_prompt: bool) -> str:
        return render_dicts(tokenizer, dicts, jinja=jinja, tools=tools,
                            add_generation_prompt=add_generation_prompt,
                            template_kwargs=template_kwargs, variables=variables)
    return run


def end_of_turn(tokenizer: Any, template: str | None = None,
                template_kwargs: dict[str, Any] | None = None) -> str:
    """The special token that closes an assistant turn (the last of them, where several do), read
    off a probe."""
    jinja = resolve_template(tokenizer, template)
    dicts = _as_dicts(PROBE)
    run = _renderer(tokenizer, jinja, None, template_kwargs)
    text = run(dicts, False)
    specials = tuple(special_strings(tokenizer))
    [span] = assistant_spans(run, dicts, [1], text, specials)
    turn = text[span.start:span.end]
    for s in specials:
        if turn.endswith(s):
            return s
    raise TemplateError("the template does not close an assistant turn with a special token (it "
                        f"ends {turn[-20:]!r}); set `template` or call chattune.setup_chat_format")


class Encoded:
    """One tokenised text: its ids, and the tokens that cover a character span."""

    # spans looked up in the Rust encoding (each lookup scans it); more go through sorted offsets
    LOOKUPS = 8

    def __init__(self, ids: list[int], offsets: list[tuple[int, int]] | None = None,
                 encoding: Any = None):
        self.ids, self._offsets, self._encoding = ids, offsets, encoding
        self._bounds: tuple[list[int], list[int]] | None = None

    def token_ranges(self, spans: Sequence[tuple[int, int]]) -> list[tuple[int, int]]:
        """The token range of each character span: a few through the encoding, many (a long
        conversation's turns) by bisection in offsets materialised once, so the cost stays linear in
        the text."""
        if len(spans) > self.LOOKUPS and self._encoding is not None and self._offsets is None:
            self._offsets = self._encoding.offsets
        return [self.token_range(start, end) for start, end in spans]

    def token_range(self, start: int, end: int) -> tuple[int, int]:
        """[first, stop) of the tokens overlapping characters [start, end): a token merged across
        the span's start carries content. Two lookups in the Rust encoding when every character has
        a token; else by offsets."""
        if self._encoding is not None and self._offsets is None:
            first, last = self._encoding.char_to_token(start), self._encoding.char_to_token(end - 1)
            if first is not None and last is not None:
                return first, last + 1
            self._offsets = self._encoding.offsets
        if self._bounds is None:
            self._bounds = [s for s, _ in self._offsets], [e for _, e in self._offsets]
        starts, ends = self._bounds
        return bisect.bisect_right(ends, start), bisect.bisect_left(starts, end)


def encode_many(tokenizer: Any, texts: list[str]) -> list[Encoded]:
    """Tokenise texts in one call to the Rust tokenizer when there is one (it batches on every core,
    and most of the Python wrapper's cost is per call; offsets are only materialised when a lookup
    needs them)."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        return [Encoded(e.ids, encoding=e)
                for e in backend.encode_batch(texts, add_special_tokens=False)]
    out = []
    for text in texts:
        enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        out.append(Encoded(enc["input_ids"], offsets=enc["offset_mapping"]))
    return out


def render_plain(tokenizer: Any, text: str) -> Rendered:
    """Raw text for plain language modelling: the tokenizer's own special tokens (bos), the text,
    eos; every token trained, as TRL does for text datasets."""
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
                raise TemplateError(f"message {i} ({m.role}): the chat template does not write its "
                                    f"tool call to {name!r}; use a template that renders "
                                    "tool_calls (template: chatml does)")


def _check_roles(messages: Sequence[Message], jinja: str) -> None:
    """A role chattune does not know is accepted when the template names it (ipython, developer,
    function): a template that writes any role it is given would otherwise turn a typo into a
    silently untrained turn."""
    for i, m in enumerate(messages):
        if m.role not in ROLES and f"'{m.role}'" not in jinja and f'"{m.role}"' not in jinja:
            raise TemplateError(f"message {i}: role {m.role!r} is neither one chattune knows "
                                f"({', '.join(ROLES)}) nor one the chat template names")


def _text_and_spans(tokenizer: Any, messages: Sequence[Message | dict[str, Any]], tools,
                    template: str | None, add_generation_prompt: bool, train_on: str,
                    template_kwargs: dict[str, Any] | None = None,
                    facts: TokenizerFacts | None = None) -> tuple[str, Spans]:
    if not all(isinstance(m, Message) for m in messages):
        messages = parse_messages([m.to_template_dict() if isinstance(m, Message) else m
                                   for m in messages])
    if train_on not in TRAIN_ON:
        raise TemplateError(f"train_on must be one of {', '.join(TRAIN_ON)}, got {train_on!r}")
    jinja = resolve_template(tokenizer, template)
    _check_roles(messages, jinja)
    dicts = _as_dicts(messages)
    facts = facts or TokenizerFacts.of(tokenizer)
    run = _renderer(tokenizer, jinja, tools, template_kwargs, facts.special_tokens_map)
    text = run(dicts, add_generation_prompt)
    _check_tool_calls_written(messages, text)
    if add_generation_prompt:
        return text, []
    if train_on == "all":
        return text, None
    spans = assistant_spans(run, dicts, _trained_messages(messages, train_on), text, facts.specials)
    return text, [(s.start, s.end) for s in spans]


def render_many(tokenizer: Any, conversations: Sequence[Conversation], *,
                template: str | None = None, train_on: str = "all_assistant",
                template_kwargs: dict[str, Any] | None = None) -> list[Rendered | TemplateError]:
    """Render many conversations, tokenising them in one batch; a conversation that cannot be
    rendered or masked gets its TemplateError in its place instead of stopping the others."""
    planned: list[tuple[str, Spans] | Rendered | TemplateError] = []
    facts = TokenizerFacts.of(tokenizer)
    for conv in conversations:
        try:
            # the row's win
            kwargs = {**(template_kwargs or {}), **(conv.template_kwargs or {})} or None
            planned.append(render_plain(tokenizer, conv.text) if conv.text is not None else
                           _text_and_spans(tokenizer, conv.messages, conv.tools, template, False,
                                           train_on, kwargs, facts))
        except TemplateError as e:
            planned.append(e)
    texts = [p[0] for p in planned if isinstance(p, tuple)]
    encoded = iter(encode_many(tokenizer, texts))
    out: list[Rendered | TemplateError] = []
    for p in planned:
        if isinstance(p, tuple):
            enc = next(encoded)
            out.append(_rendered(enc, p[0], p[1]))
        else:
            out.append(p)
    return out


def render(tokenizer: Any, messages: Sequence[Message | dict[str, Any]] | Conversation, *,
           tools: list[dict[str, Any]] | None = None, template: str | None = None,
           add_generation_prompt: bool = False, train_on: str = "all_assistant",
           template_kwargs: dict[str, Any] | None = None) -> Rendered:
    """Render a conversation to ids and labels; labels train only what `train_on` selects.

    With `add_generation_prompt=True` the result is a prompt for generation and nothing is trained.
    `template_kwargs` go to the template as apply_chat_template's keyword arguments do
    (enable_thinking=False).
    """
    if isinstance(messages, Conversation):
        if messages.text is not None:
            return render_plain(tokenizer, messages.text)
        tools = tools or messages.tools
        template_kwargs = {**(template_kwargs or {}), **(messages.template_kwargs or {})} or None
        messages = messages.messages
    text, spans = _text_and_spans(tokenizer, messages, tools, template, add_generation_prompt,
                                  train_on, template_kwargs)
    [enc] = encode_many(tokenizer, [text])
    return _rendered(enc, text, spans)


def _rendered(enc: Encoded, text: str, spans: Spans) -> Rendered:
    if spans is None:
        return Rendered(enc.ids, list(enc.ids), text)
    # every token overlapping a span is trained: a token merged across the span's start carries
    # content
    labels = labels_from_token_ranges(enc.ids, enc.token_ranges(spans))
    return Rendered(enc.ids, labels, text, tuple(spans))


def check_rendered(tokenizer: Any, rendered: Rendered, messages: Sequence[Message],
                   train_on: str) -> None:
    """Verify the trained tokens decode to exactly the text of the trained spans, in order: no token
    of the turn left out, none of the prompt taken in (a token merged across a span's edge would
    show here)."""
    if train_on == "all" or rendered.spans is None:
        return
    trained = trained_ids(rendered.labels)
    if not trained:
        raise TemplateError("no token is trained in this example (all labels are masked)")
    backend = getattr(tokenizer, "backend_tokenizer", None)
    decoded = backend.decode(trained, skip_special_tokens=False) if backend is not None else \
        tokenizer.decode(trained, skip_special_tokens=False)
    pos = 0
    # a token merged across a span's start is trained, so allow extra text there
    for start, end in rendered.spans:
        turn = rendered.text[start:end].strip()
        found = decoded.find(turn, pos)
        if found < 0:
            raise TemplateError("trained tokens do not cover an assistant turn: trained text is "
                                f"{decoded[:200]!r}, the turn is {turn[:200]!r}")
        pos = found + len(turn)
