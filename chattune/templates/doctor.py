"""Check a tokenizer's chat template for the problems that silently ruin fine-tunes, each with its fix."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from chattune.data.schema import Message
from chattune.errors import TemplateError
from chattune.labels import trained_ids
from chattune.templates.history import probe_history
from chattune.templates.render import (
    check_rendered,
    end_of_turn,
    render,
    resolve_template,
    special_strings,
)
from chattune.templates.toolnotes import tool_call_note

PROBE = [Message("system", "You are terse."), Message("user", "Name a colour."), Message("assistant", "Blue."),
         Message("user", "Another?"), Message("assistant", "Green.")]


@dataclass(frozen=True)
class Check:
    """One doctor check: what was checked, whether it passed, what was seen, and how to fix a failure."""

    name: str
    ok: bool
    detail: str
    fix: str = ""


def _try(name: str, fn, fix: str) -> Check:
    try:
        detail = fn()
        return Check(name, True, detail or "ok")
    except (TemplateError, AssertionError, ValueError) as e:
        return Check(name, False, str(e), fix)


def _probe_for(tokenizer: Any, template: str | None) -> list[Message]:
    """The probe conversation, without its system message for templates that reject one (Gemma, Mistral)."""
    try:
        render(tokenizer, PROBE, template=template)
        return PROBE
    except TemplateError:
        return PROBE[1:]


def diagnose(tokenizer: Any, template: str | None = None,
             conversations: Sequence[Sequence[Message]] = (), *,
             template_kwargs: dict[str, Any] | None = None) -> list[Check]:
    """Run every check on the probe conversation (and on `conversations`, where given); `template_kwargs` go to
    the template where rendering is about the user's data (history notes, data rows)."""
    checks = [_try("template present", lambda: resolve_template(tokenizer, template) and "found",
                   "set `template: chatml` (or another built-in) in the config, or call chattune.setup_chat_format")]
    if not checks[0].ok:
        return checks
    fix_template = "use a built-in template (`template: chatml`) or fix the Jinja template"
    probe = _probe_for(tokenizer, template)

    def exact_masks() -> str:
        r = render(tokenizer, probe, template=template)
        check_rendered(tokenizer, r, probe, "all_assistant")
        return (f"each of {len(r.spans or ())} assistant turns is found in the whole rendering and trained exactly; "
                f"tool calls: {tool_call_note(tokenizer, template, template_kwargs)}")

    def history() -> str:
        notes = probe_history(tokenizer, template, template_kwargs)
        return "; ".join(notes) or "every turn renders as given, in place, the same whatever follows it"

    def eot_trained() -> str:
        eot = end_of_turn(tokenizer, template)
        ids = tokenizer.encode(eot, add_special_tokens=False)
        if len(ids) != 1:
            raise AssertionError(f"end-of-turn {eot!r} encodes to {len(ids)} ids, expected 1")
        r = render(tokenizer, probe, template=template)
        trained = trained_ids(r.labels)
        if not trained or trained[-1] != ids[0]:
            raise AssertionError(f"the last trained token is not the end-of-turn token {eot!r}")
        return f"{eot!r} is one special token and is trained"

    def single_bos() -> str:
        bos = tokenizer.bos_token_id
        r = render(tokenizer, probe, template=template)
        ids = tokenizer(r.text)["input_ids"]  # as a tool that adds special tokens would
        if bos is not None and ids[:2] == [bos, bos]:
            raise AssertionError("the template writes a BOS and the tokenizer adds another")
        return "no doubled BOS"

    def pad_set() -> str:
        if tokenizer.pad_token_id is None:
            raise AssertionError("the tokenizer has no pad token")
        return f"pad is {tokenizer.pad_token!r}"

    def gen_prompt() -> str:
        prompt = render(tokenizer, probe[:-1], template=template, add_generation_prompt=True).input_ids
        full = render(tokenizer, probe, template=template).input_ids
        if full[:len(prompt)] != prompt:
            raise AssertionError("the generation prompt's tokens are not a prefix of the training rendering")
        return "generation prompt tokens are a prefix of the training rendering"

    def specials_single() -> str:
        text = render(tokenizer, probe, template=template).text
        used = [s for s in special_strings(tokenizer) if s in text]
        bad = [s for s in used if len(tokenizer.encode(s, add_special_tokens=False)) != 1]
        if bad:
            raise AssertionError(f"these special tokens split into several ids: {bad}")
        return f"{len(used)} special tokens, each one id"

    def data_rows() -> str:
        for k, conv in enumerate(conversations, start=1):
            r = render(tokenizer, conv, template=template, template_kwargs=template_kwargs)
            check_rendered(tokenizer, r, list(conv), "all_assistant")
            if r.num_trained == 0:
                raise AssertionError(f"row {k}: no trained token")
        return f"{len(conversations)} rows render with a verified mask"

    checks += [
        _try("exact masks", exact_masks, fix_template),
        _try("history", history, fix_template),
        _try("end-of-turn trained", eot_trained, "use a template that ends each assistant turn with a special token "
             "(chattune.setup_chat_format adds one)"),
        _try("no doubled BOS", single_bos, "remove `{{ bos_token }}` from the template or stop adding special tokens"),
        _try("pad token set", pad_set, "set tokenizer.pad_token (chattune uses eos when it is missing)"),
        _try("generation prompt matches training", gen_prompt, fix_template),
        _try("special tokens are single ids", specials_single, "add them with chattune.setup_chat_format"),
    ]
    if conversations:
        checks.append(_try("data rows", data_rows, "see the row named; `chattune render` shows its mask"))
    return checks
