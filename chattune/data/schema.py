"""The one unit every data shape converts to: a Conversation of Messages."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# the roles chattune gives meaning to; templates may accept more
ROLES = ("system", "user", "assistant", "tool")
# the names an assistant's reasoning goes by
REASONING_KEYS = ("reasoning_content", "thinking", "reasoning")


@dataclass(frozen=True)
class Message:
    """One chat message. `train` overrides the conversation's train_on choice for this message;
    `extra` holds every other key the data gave it (tool_call_id, reasoning_content, thinking, ...),
    passed to the template unchanged."""

    role: str
    content: str
    tool_calls: list[dict[str, Any]] | None = None
    name: str | None = None
    train: bool | None = None
    extra: dict[str, Any] | None = None

    @property
    def reasoning(self) -> str | None:
        """The assistant's reasoning, under whichever name the data gave it."""
        return next((self.extra[k] for k in REASONING_KEYS
                     if self.extra and self.extra.get(k) is not None), None)

    def to_template_dict(self) -> dict[str, Any]:
        """The dict a Jinja chat template expects: every key of the message but chattune's own
        `train`.

        Reasoning is given under each name templates read (reasoning_content: Qwen3, GLM; thinking:
        gpt-oss), as transformers' apply_chat_template does."""
        out: dict[str, Any] = {"role": self.role, "content": self.content}
        if self.extra:
            out.update((k, v) for k, v in self.extra.items() if k not in out)
        if self.tool_calls:
            out["tool_calls"] = self.tool_calls
        if self.name:
            out["name"] = self.name
        reasoning = self.reasoning
        if reasoning is not None:
            out = {"thinking": reasoning, **out, "reasoning_content": reasoning}
        return out


@dataclass(frozen=True)
class Conversation:
    """Messages plus where they came from, so any later error can name the file and row.

    A raw-text row has `text` and no messages: it is trained as plain language modelling, without a
    template."""

    messages: list[Message]
    source: str = "<memory>"
    row: int | None = None
    tools: list[dict[str, Any]] | None = field(default=None)
    text: str | None = None
    # this row's options for the template (TRL's chat_template_kwargs)
    template_kwargs: dict[str, Any] | None = None


def validate_messages(messages: list[Message]) -> list[str]:
    """Return every problem in a message list (empty when valid), each naming the message index."""
    problems = []
    if not messages:
        return ["conversation has no messages"]
    for i, m in enumerate(messages):
        if not isinstance(m.role, str) or not m.role.strip():
            problems.append(f"message {i}: role must be a non-empty string (such as "
                            f"{', '.join(ROLES)}), found {m.role!r}")
        if not isinstance(m.content, str):
            problems.append(f"message {i}: content must be text, found {type(m.content).__name__}")
        elif (not m.content.strip() and not m.tool_calls
              and not (m.role == "assistant" and m.reasoning)):
            problems.append(f"message {i} ({m.role}): content is empty")
    if not any(m.role == "assistant" for m in messages):
        problems.append("conversation has no assistant message to train on")
    return problems
