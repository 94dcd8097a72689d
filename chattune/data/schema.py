"""The one unit every data shape converts to: a Conversation of Messages."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

ROLES = ("system", "user", "assistant", "tool")


@dataclass(frozen=True)
class Message:
    """One chat message. `train` overrides the conversation's train_on choice for this message."""

    role: str
    content: str
    tool_calls: list[dict[str, Any]] | None = None
    name: str | None = None
    train: bool | None = None

    def to_template_dict(self) -> dict[str, Any]:
        """The dict a Jinja chat template expects (chattune-only keys left out)."""
        out: dict[str, Any] = {"role": self.role, "content": self.content}
        if self.tool_calls:
            out["tool_calls"] = self.tool_calls
        if self.name:
            out["name"] = self.name
        return out


@dataclass(frozen=True)
class Conversation:
    """Messages plus where they came from, so any later error can name the file and row.

    A raw-text row has `text` and no messages: it is trained as plain language modelling, without a template."""

    messages: list[Message]
    source: str = "<memory>"
    row: int | None = None
    tools: list[dict[str, Any]] | None = field(default=None)
    text: str | None = None


def validate_messages(messages: list[Message]) -> list[str]:
    """Return every problem in a message list (empty when valid), each naming the message index."""
    problems = []
    if not messages:
        return ["conversation has no messages"]
    for i, m in enumerate(messages):
        if m.role not in ROLES:
            problems.append(f"message {i}: role must be one of {', '.join(ROLES)}, found {m.role!r}")
        if not isinstance(m.content, str):
            problems.append(f"message {i}: content must be text, found {type(m.content).__name__}")
        elif not m.content.strip() and not m.tool_calls:
            problems.append(f"message {i} ({m.role}): content is empty")
        if m.role == "system" and i > 0:
            problems.append(f"message {i}: a system message must come first")
    if not any(m.role == "assistant" for m in messages):
        problems.append("conversation has no assistant message to train on")
    return problems
