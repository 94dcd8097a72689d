"""TRL 0.x's `get_formatting_func_from_dataset`: a formatting function for a chat or
prompt/completion Dataset.

Old TRL scripts pass its result as SFTTrainer(formatting_func=...). The text it returns is rendered
by chattune's renderer with the tokenizer's own template (equal to apply_chat_template's,
tests/templates/test_template_parity.py).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from chattune.templates.render import render_text, resolve_template


def _chat_feature() -> Any:
    from datasets import List, Value

    return List({"content": Value("string"), "role": Value("string")})


def _instruction_features() -> dict[str, Any]:
    from datasets import Value

    return {"completion": Value("string"), "prompt": Value("string")}


def _one_or_many(render_one: Callable[[Any, int | None], str],
                 field: str) -> Callable[[dict[str, Any]], Any]:
    """A function of one row (returns its text) or of a batch of rows, `dataset[a:b]` (returns a
    list of texts)."""
    def format_rows(rows: dict[str, Any]) -> str | list[str]:
        value = rows[field]
        # one chat is a list of messages, a batch a list of chats; one prompt is a string, a batch a
        # list
        batched = isinstance(value,
                             list) and (field == "prompt" or bool(value)
                                        and isinstance(value[0], list))
        return ([render_one(rows, i) for i in range(len(value))] if batched
                else render_one(rows, None))
    return format_rows


def get_formatting_func_from_dataset(dataset: Any, tokenizer: Any,
                                     tools: list[dict[str, Any]] | None = None) -> Callable | None:
    """A function rendering rows of `dataset` with the tokenizer's chat template when the dataset
    holds chats (`messages` or `conversations` of role/content strings) or `prompt`/`completion`
    strings; None otherwise."""
    from datasets import Dataset

    if not isinstance(dataset, Dataset):
        return None
    jinja = resolve_template(tokenizer)
    for field in ("messages", "conversations"):
        if dataset.features.get(field) == _chat_feature():
            def chat(rows: dict[str, Any], i: int | None, field: str = field) -> str:
                messages = rows[field] if i is None else rows[field][i]
                return render_text(tokenizer, messages, jinja=jinja, tools=tools)
            return _one_or_many(chat, field)
    if dict(dataset.features) == _instruction_features():
        def instruction(rows: dict[str, Any], i: int | None) -> str:
            prompt, completion = (rows["prompt"], rows["completion"]) if i is None else \
                (rows["prompt"][i], rows["completion"][i])
            return render_text(tokenizer, [{"role": "user", "content": prompt},
                                           {"role": "assistant", "content": completion}],
                               jinja=jinja)
        return _one_or_many(instruction, "prompt")
    return None
