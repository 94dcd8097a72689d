"""Chat templates: one conversation rendered with SmolLM2's own template (with and without the
generation prompt, as text and as token ids), the same messages under Mistral, ChatML (Qwen) and
Llama 3, a system message, several turns, and a tool call; trained tokens are marked [[like
this]]."""

from __future__ import annotations

import json

from common import ROOT, parse

from chattune import BUILTIN_TEMPLATES, Message, render
from chattune.outputs.show import marked_text
from chattune.templates.render import render_text

CHAT = [Message("system", "You are a helpful assistant."), Message("user", "Hi! What is 2+2?"),
        Message("assistant", "2+2 is 4."), Message("user", "And 3+3?"),
        Message("assistant", "3+3 is 6.")]
WEATHER = {"type": "function",
           "function": {"name": "get_weather", "description": "Current weather in a city",
                        "parameters": {"type": "object",
                                       "properties": {"city": {"type": "string"}}}}}
TOOL_CHAT = [Message("user", "How warm is it in Paris?"),
             Message("assistant", "", tool_calls=[{"type": "function", "function": {
                 "name": "get_weather", "arguments": {"city": "Paris"}}}]),
             Message("tool", json.dumps({"temp_c": 18})),
             Message("assistant", "It is 18 degrees C in Paris.")]


def main(argv: list[str] | None = None) -> None:
    parse(__doc__.split("\n")[0], argv)  # --fast changes nothing here: only a tokenizer is needed
    from chattune.config import DEFAULT_MODEL
    from chattune.model.load import load_tokenizer, resolve_model_path

    tokenizer = load_tokenizer(resolve_model_path(DEFAULT_MODEL))
    prompt = render(tokenizer, CHAT[:2], add_generation_prompt=True)
    print("== SmolLM2's template, generation prompt added (what the model sees before answering):")
    print(prompt.text)
    print("token ids:", prompt.input_ids)
    print("\n== SmolLM2's template, whole conversation, trained tokens [[marked]]:")
    print(marked_text(tokenizer, render(tokenizer, CHAT), color=False))
    for name in ("mistral", "chatml", "llama3"):
        # as text: training with one of these on SmolLM2 first adds its special tokens
        # (setup_chat_format)
        print(f"\n== built-in {name} template, same messages (as text):")
        print(render_text(tokenizer, CHAT, jinja=BUILTIN_TEMPLATES[name].jinja))
    # Qwen 2.5's template (ChatML with tool calls as <tool_call> JSON); SmolLM2's own has no tool
    # syntax
    qwen = (ROOT / "tests" / "assets" / "templates"
            / "qwen2_5_tools.jinja").read_text(encoding="utf-8")
    print("\n== a tool call under Qwen 2.5's template, trained tokens [[marked]]:")
    print(marked_text(tokenizer, render(tokenizer, TOOL_CHAT, tools=[WEATHER], template=qwen),
                      color=False))


if __name__ == "__main__":
    main()
