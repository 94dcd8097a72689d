"""What a chat template does with a conversation's history, in words a user can act on.

Templates differ in ways that change what is trained without any error: Qwen3 drops the reasoning of
earlier assistant turns, Mistral Nemo writes the system prompt into the last user turn, some render
an earlier turn differently once more messages follow, some prompt for generation with text the
training rendering does not have. `chattune doctor` and `chattune render` print these notes; they
come from the same marked rendering the masks are made from (spans.locate), so they describe exactly
what training sees.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from chattune.data.schema import Message
from chattune.errors import TemplateError
from chattune.templates.located import locate
from chattune.templates.markers import CONTENT, REASONING
from chattune.templates.render import _as_dicts, _renderer, resolve_template

# probes for the doctor: two reasoning turns, a system prompt before two user turns
REASONING_PROBE = [Message("user", "What is 2+2?"),
                   Message("assistant", "4.", extra={"reasoning_content": "Add."}),
                   Message("user", "And 3+3?"),
                   Message("assistant", "6.", extra={"reasoning_content": "Add again."})]
SYSTEM_PROBE = [Message("system", "Be brief."), Message("user", "Name a colour."),
                Message("assistant", "Blue."),
                Message("user", "Another?"), Message("assistant", "Green.")]


def _kinds(located, message: int) -> set[int]:
    return {kind for _, kind, _ in located.positions.get(message, [])}


def _reasoning_note(messages: Sequence[Message], located) -> str | None:
    with_reasoning = [i for i, m in enumerate(messages) if m.role == "assistant" and m.reasoning]
    if not with_reasoning:
        return None
    kept = [i for i in with_reasoning if REASONING in _kinds(located, i)]
    if not kept:
        return ("reasoning is not rendered by this template (reasoning_content/thinking are "
                "ignored): it is not trained; put it in the content or use a template that renders "
                "it")
    if len(kept) == len(with_reasoning):
        return "reasoning of every assistant turn is rendered and trained"
    dropped = [i for i in with_reasoning if i not in kept]
    if kept == with_reasoning[-len(kept):]:
        return ("reasoning of earlier assistant turns is dropped by this template (messages "
                f"{dropped}): only the last turn's reasoning is trained (messages {kept})")
    return (f"this template renders the reasoning of messages {kept} and drops that of messages "
            f"{dropped}")


def _system_note(messages: Sequence[Message], located, prompt: str) -> str | None:
    system = [i for i, m in enumerate(messages) if m.role == "system" and m.content.strip()]
    users = [i for i, m in enumerate(messages) if m.role == "user"]
    if not system or not users:
        return None
    s = system[0]
    if located.first(s) is None:
        where = (" (it is written only into generation prompts)"
                 if messages[s].content.strip() in prompt else "")
        return (f"the system message (message {s}) is not in the training rendering of this "
                f"template{where}: the model does not see it in training")
    before = [u for u in users
              if u > s and located.first(u) is not None and located.first(u) < located.first(s)]
    if before:
        return (f"the system prompt is written after user message {max(before)}, not before the "
                "conversation (this template places it there)")
    return None


def _dropped_content_note(messages: Sequence[Message], located) -> str | None:
    dropped = [i for i, m in enumerate(messages)
               if m.role != "system" and isinstance(m.content, str)
               and m.content.strip() and CONTENT not in _kinds(located, i)]
    if dropped:
        return f"the content of messages {dropped} is not rendered by this template"
    return None


def _differs(a: str, b: str) -> int:
    """The first position where a and b differ (the shorter's length when one is a prefix of the
    other)."""
    return next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))


def _rewrite_notes(run, dicts: list[dict[str, Any]], full: str) -> list[str]:
    """Whether each assistant turn renders the same alone as within the whole conversation, and
    whether the generation prompt before it is what the training rendering shows there."""
    notes = []
    assistant = [i for i, d in enumerate(dicts) if d.get("role") == "assistant"]
    changed = [j for j in assistant[:-1] if not full.startswith(run(dicts[:j + 1], False))]
    if changed:
        notes.append("earlier turns render differently once later messages follow (messages "
                     f"{changed}); chattune's masks come from the whole conversation's rendering, "
                     "which is what the model trains on")
    for j in assistant:
        prompt = run(dicts[:j], True)
        if not full.startswith(prompt):
            k = _differs(prompt, full)
            notes.append(f"the generation prompt before message {j} ends with {prompt[k:][:60]!r} "
                         "where the training rendering has "
                         f"{full[k:k + max(20, len(prompt) - k)][:60]!r}: the turn is trained as "
                         "the training rendering shows it, and prompted for differently at "
                         "generation")
            break
    return notes


def history_notes(tokenizer: Any, messages: Sequence[Message], *, template: str | None = None,
                  tools: list[dict[str, Any]] | None = None,
                  template_kwargs: dict[str, Any] | None = None) -> list[str]:
    """Notes on what the template does with this conversation's history (empty when it renders every
    turn as given, in place, the same in every prefix)."""
    jinja = resolve_template(tokenizer, template)
    run = _renderer(tokenizer, jinja, tools, template_kwargs)
    dicts = _as_dicts(messages)
    full = run(dicts, False)
    located = locate(run, dicts, False, full)
    last = max((i for i, m in enumerate(messages) if m.role == "assistant"), default=len(messages))
    prompt = run(dicts[:last], True)
    notes = [_reasoning_note(messages, located), _system_note(messages, located, prompt),
             _dropped_content_note(messages, located)]
    return [n for n in notes if n] + _rewrite_notes(run, dicts, full)


def probe_history(tokenizer: Any, template: str | None = None,
                  template_kwargs: dict[str, Any] | None = None) -> list[str]:
    """History notes on the doctor's probe conversations (a probe the template refuses is
    skipped)."""
    notes: list[str] = []
    for probe, about in ((REASONING_PROBE, ""), (SYSTEM_PROBE, "system")):
        try:
            found = history_notes(tokenizer, probe, template=template,
                                  template_kwargs=template_kwargs)
        except TemplateError:  # the template refuses this probe (Gemma 2 has no system role)
            continue
        # the system probe adds only what it is for; the rest repeats the reasoning probe's notes
        notes += [n for n in found if not about or about in n]
    return notes
