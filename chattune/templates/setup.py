"""Give a model without a chat template one: special tokens, embeddings, eos/pad, the template
itself."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from tokenizers import AddedToken

from chattune.errors import TemplateError
from chattune.templates.builtin import BUILTIN_TEMPLATES
from chattune.templates.render import end_of_turn


@dataclass
class ChatMlSpecialTokens:
    """TRL 0.x's ChatML token set (trl.models.utils), as older scripts read it: the tokens
    setup_chat_format( format="chatml") sets on a tokenizer, and the template."""

    bos_token: str = "<|im_start|>"
    eos_token: str = "<|im_end|>"
    pad_token: str = "<|im_end|>"

    @property
    def system(self) -> str:
        return f"{self.bos_token}system"

    @property
    def user(self) -> str:
        return f"{self.bos_token}user"

    @property
    def assistant(self) -> str:
        return f"{self.bos_token}assistant"

    @property
    def chat_template(self) -> str:
        return BUILTIN_TEMPLATES["chatml"].jinja


def setup_chat_format(model: Any, tokenizer: Any, template: str = "chatml", *,
                      format: str | None = None, resize_to_multiple_of: int | None = None,
                      as_trl: bool = True) -> tuple[Any, Any]:
    """Add the template's missing special tokens, resize embeddings (new rows at the mean of the old
    ones; rounded up to `resize_to_multiple_of`), set eos to the end-of-turn token, and store the
    template on the tokenizer.
    `as_trl`: pad (and ChatML's bos, <|im_start|>) set as TRL 0.x's setup_chat_format sets them;
    otherwise a pad the tokenizer has is kept (chattune's own set-up of a model without a template).
    `format` is TRL's name for `template`."""
    template = format or template
    if template not in BUILTIN_TEMPLATES:
        raise TemplateError(f"unknown template {template!r}; expected one of "
                            f"{', '.join(BUILTIN_TEMPLATES)}")
    spec = BUILTIN_TEMPLATES[template]
    vocab = tokenizer.get_vocab()
    missing = [t for t in spec.special_tokens if t not in vocab]
    if missing:
        tokenizer.add_tokens([AddedToken(t, special=True, normalized=False) for t in missing],
                             special_tokens=True)
    if spec.end_of_turn is not None:
        tokenizer.eos_token = spec.end_of_turn
    if spec.bos_token is not None:
        tokenizer.bos_token = spec.bos_token
    elif as_trl and template == "chatml":
        tokenizer.bos_token = "<|im_start|>"
    if tokenizer.pad_token is None or as_trl:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.chat_template = spec.jinja
    if model is not None:
        if len(tokenizer) > model.get_input_embeddings().weight.shape[0] or resize_to_multiple_of:
            model.resize_token_embeddings(len(tokenizer), pad_to_multiple_of=resize_to_multiple_of,
                                          mean_resizing=True)
        model.config.eos_token_id = tokenizer.eos_token_id
        model.config.bos_token_id = tokenizer.bos_token_id
        model.config.pad_token_id = tokenizer.pad_token_id
        if getattr(model, "generation_config", None) is not None:
            model.generation_config.eos_token_id = tokenizer.eos_token_id
            model.generation_config.pad_token_id = tokenizer.pad_token_id
    return model, tokenizer


def setup_template(model: Any, tokenizer: Any, template: str | None) -> list[int]:
    """Use the configured template: a built-in is set up (tokens, embeddings, eos/pad); a Jinja
    string is stored.

    Returns the ids of tokens it added."""
    before = len(tokenizer)
    if template in BUILTIN_TEMPLATES:
        setup_chat_format(model, tokenizer, template, as_trl=False)
    elif template is not None:
        tokenizer.chat_template = template
    elif not getattr(tokenizer, "chat_template", None):
        setup_chat_format(model, tokenizer, "chatml", as_trl=False)
    return list(range(before, len(tokenizer)))


def clone_chat_template(model: Any, tokenizer: Any, source_tokenizer_path: str,
                        resize_to_multiple_of: int | None = 64) -> tuple[Any, Any, list[int]]:
    """TRL's clone_chat_template: the chat template, added tokens and eos of another tokenizer (a
    hub id or a directory), the model's embeddings resized (rounded up to `resize_to_multiple_of`,
    the rows past the tokenizer filled with <extra_id_N> tokens so both sizes agree). Returns
    (model, tokenizer, ids of the added tokens)."""
    from transformers import AutoTokenizer

    source = AutoTokenizer.from_pretrained(source_tokenizer_path)
    tokenizer.chat_template = source.get_chat_template()
    added = [t for t in source.added_tokens_decoder.values()
             if t.content not in tokenizer.get_vocab()]
    tokenizer.add_tokens(added)
    tokenizer.eos_token = source.eos_token
    model.config.get_text_config().eos_token_id = tokenizer.eos_token_id
    if getattr(model, "generation_config", None) is not None:
        model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.resize_token_embeddings(len(tokenizer.get_vocab()),
                                  pad_to_multiple_of=resize_to_multiple_of, mean_resizing=True)
    filler = 0
    while model.get_input_embeddings().weight.shape[0] > len(tokenizer.get_vocab()):
        token = AddedToken(f"<extra_id_{filler}>")
        if tokenizer.add_tokens(token) == 1:
            added.append(token)
        filler += 1
    return model, tokenizer, tokenizer.convert_tokens_to_ids([t.content for t in added])


# the `<|name|>` markers chat templates delimit turns with
MARKER = re.compile(r"<\|[A-Za-z0-9_.:-]+\|>")


def set_template_file(model: Any, tokenizer: Any, jinja: str) -> list[int]:
    """Use a Jinja template (TRL's chat_template_path file). Its `<|...|>` markers that the
    tokenizer lacks are added as special tokens (embeddings grown, new rows at the mean), so each
    turn ends with one token the model can learn and generation can stop on. Returns the added token
    ids."""
    tokenizer.chat_template = jinja
    missing = sorted({m for m in MARKER.findall(jinja) if m not in tokenizer.get_vocab()})
    if not missing:
        return []
    before = len(tokenizer)
    tokenizer.add_tokens([AddedToken(t, special=True, normalized=False) for t in missing],
                         special_tokens=True)
    if len(tokenizer) > model.get_input_embeddings().weight.shape[0]:
        model.resize_token_embeddings(len(tokenizer), mean_resizing=True)
    return list(range(before, len(tokenizer)))


def stop_token_ids(tokenizer: Any, template: str | None = None) -> list[int]:
    """Token ids that end a reply: the template's end-of-turn token and the tokenizer's eos. A
    tokenizer trained on plain text may have no template (or one whose turns end without a special
    token): eos alone then."""
    ids = set()
    try:
        ids.add(tokenizer.convert_tokens_to_ids(end_of_turn(tokenizer, template)))
    except TemplateError:
        if tokenizer.eos_token_id is None:
            raise
    if tokenizer.eos_token_id is not None:
        ids.add(tokenizer.eos_token_id)
    return sorted(ids)
