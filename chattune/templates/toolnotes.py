"""What a chat template does with tool calls, in words: where it writes a call and which token ends
the turn.

A probe conversation (the user asks, the assistant calls `multiply`, the tool answers, the assistant
answers) is rendered and masked; the tool-call turn's trained span shows where the call is written
(between which special tokens) and the special token it ends with.
"""

from __future__ import annotations

import json
from typing import Any

from chattune.errors import TemplateError
from chattune.templates.render import render, special_strings

TOOLS = [{"type": "function",
          "function": {"name": "multiply", "description": "Multiply two numbers", "parameters": {
    "type": "object", "properties": {"a": {"type": "number"}, "b": {"type": "number"}},
    "required": ["a", "b"]}}}]


def _probe(content: str | None, arguments: Any) -> list[dict[str, Any]]:
    call = {"id": "call12345", "type": "function",
            "function": {"name": "multiply", "arguments": arguments}}
    return [{"role": "user", "content": "What is 6 times 7?"},
            {"role": "assistant", "content": content, "tool_calls": [call]},
            {"role": "tool", "content": "42", "tool_call_id": "call12345", "name": "multiply"},
            {"role": "assistant", "content": "Forty-two."}]


def _rendered_probe(tokenizer: Any, template: str | None, template_kwargs: dict[str, Any] | None):
    """The probe rendered with the first form of a call the template accepts (arguments as an object
    or as a JSON string, content empty or null), and the last error where it accepts none."""
    error: TemplateError | None = None
    for arguments in ({"a": 6, "b": 7}, json.dumps({"a": 6, "b": 7})):
        for content in ("", None):
            try:
                return render(tokenizer, _probe(content, arguments), tools=TOOLS, template=template,
                              template_kwargs=template_kwargs), None
            except TemplateError as e:
                error = e
    return None, error


def tool_call_note(tokenizer: Any, template: str | None = None,
                   template_kwargs: dict[str, Any] | None = None) -> str:
    """One sentence: where the template writes a tool call and which token ends a tool-call turn, or
    that it does not write tool calls (rows with them are then refused)."""
    r, error = _rendered_probe(tokenizer, template, template_kwargs)
    if r is None:
        reason = str(error) if error is not None else "it renders no probe"
        return f"tool calls cannot be trained with this template: {reason}"
    start, end = r.spans[0]
    turn = r.text[start:end]
    at = next((turn.find(t) for t in ("multiply", "call12345") if t in turn), 0)
    specials = [s for s in special_strings(tokenizer) if s in turn]
    ends = next((s for s in specials if turn.endswith(s)), None)
    before = max(((turn.rfind(s, 0, at), s) for s in specials if turn.rfind(s, 0, at) >= 0),
                 default=None)
    where = f"after {before[1]}" if before else "as text"
    shown = turn if len(turn) <= 120 else turn[:100] + "…" + turn[-19:]
    ending = f"ends with {ends}" if ends else "ends with no special token"
    return f"written in the assistant turn, {where}; the turn is trained as {shown!r} and {ending}"
