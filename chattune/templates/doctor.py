"""Check a tokenizer's chat template for the problems that silently ruin fine-tunes, each with its
fix."""

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

PROBE = [Message("system", "You are terse."), Message("user", "Name a colour."),
         Message("assistant", "Blue."), Message("user", "Another?"), Message("assistant", "Green.")]


@dataclass(frozen=True)
class Check:
    """One doctor check: what was checked, whether it passed, what was seen, and how to fix a
    failure."""

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
    """The probe conversation, without its system message for templates that reject one (Gemma,
    Mistral)."""
    try:
        render(tokenizer, PROBE, template=template)
        return PROBE
    except TemplateError:
        return PROBE[1:]


@dataclass
class _Checks:
    """The doctor's checks of one tokenizer and template on the probe conversation (and the user's
    rows)."""

    tokenizer: Any
    template: str | None
    probe: list[Message]
    template_kwargs: dict[str, Any] | None
    conversations: Sequence[Sequence[Message]]

    def _render(self, conv: Sequence[Message], **kw: Any) -> Any:
        return render(self.tokenizer, conv, template=self.template, **kw)

    def exact_masks(self) -> str:
        r = self._render(self.probe)
        check_rendered(self.tokenizer, r, self.probe, "all_assistant")
        return (f"each of {len(r.spans or ())} assistant turns is found in the whole rendering and "
                "trained exactly; tool calls: "
                f"{tool_call_note(self.tokenizer, self.template, self.template_kwargs)}")

    def history(self) -> str:
        notes = probe_history(self.tokenizer, self.template, self.template_kwargs)
        return ("; ".join(notes)
                or "every turn renders as given, in place, the same whatever follows it")

    def eot_trained(self) -> str:
        eot = end_of_turn(self.tokenizer, self.template)
        ids = self.tokenizer.encode(eot, add_special_tokens=False)
        if len(ids) != 1:
            raise AssertionError(f"end-of-turn {eot!r} encodes to {len(ids)} ids, expected 1")
        trained = trained_ids(self._render(self.probe).labels)
        if not trained or trained[-1] != ids[0]:
            raise AssertionError(f"the last trained token is not the end-of-turn token {eot!r}")
        return f"{eot!r} is one special token and is trained"

    def single_bos(self) -> str:
        bos = self.tokenizer.bos_token_id
        # as a tool that adds special tokens would
        ids = self.tokenizer(self._render(self.probe).text)["input_ids"]
        if bos is not None and ids[:2] == [bos, bos]:
            raise AssertionError("the template writes a BOS and the tokenizer adds another")
        return "no doubled BOS"

    def pad_set(self) -> str:
        if self.tokenizer.pad_token_id is None:
            raise AssertionError("the tokenizer has no pad token")
        return f"pad is {self.tokenizer.pad_token!r}"

    def gen_prompt(self) -> str:
        prompt = self._render(self.probe[:-1], add_generation_prompt=True).input_ids
        full = self._render(self.probe).input_ids
        if full[:len(prompt)] != prompt:
            raise AssertionError("the generation prompt's tokens are not a prefix of the training "
                                 "rendering")
        return "generation prompt tokens are a prefix of the training rendering"

    def specials_single(self) -> str:
        text = self._render(self.probe).text
        used = [s for s in special_strings(self.tokenizer) if s in text]
        bad = [s for s in used if len(self.tokenizer.encode(s, add_special_tokens=False)) != 1]
        if bad:
            raise AssertionError(f"these special tokens split into several ids: {bad}")
        return f"{len(used)} special tokens, each one id"

    def data_rows(self) -> str:
        for k, conv in enumerate(self.conversations, start=1):
            r = self._render(conv, template_kwargs=self.template_kwargs)
            check_rendered(self.tokenizer, r, list(conv), "all_assistant")
            if r.num_trained == 0:
                raise AssertionError(f"row {k}: no trained token")
        return f"{len(self.conversations)} rows render with a verified mask"


def diagnose(tokenizer: Any, template: str | None = None,
             conversations: Sequence[Sequence[Message]] = (), *,
             template_kwargs: dict[str, Any] | None = None) -> list[Check]:
    """Run every check on the probe conversation (and on `conversations`, where given);
    `template_kwargs` go to the template where rendering is about the user's data (history notes,
    data rows)."""
    checks = [_try("template present", lambda: resolve_template(tokenizer, template) and "found",
                   "set `template: chatml` (or another built-in) in the config, or call "
                   "chattune.setup_chat_format")]
    if not checks[0].ok:
        return checks
    fix_template = "use a built-in template (`template: chatml`) or fix the Jinja template"
    c = _Checks(tokenizer, template, _probe_for(tokenizer, template), template_kwargs,
                conversations)
    checks += [
        _try("exact masks", c.exact_masks, fix_template),
        _try("history", c.history, fix_template),
        _try("end-of-turn trained", c.eot_trained,
             "use a template that ends each assistant turn with a special "
             "token (chattune.setup_chat_format adds one)"),
        _try("no doubled BOS", c.single_bos,
             "remove `{{ bos_token }}` from the template or stop adding special "
             "tokens"),
        _try("pad token set", c.pad_set,
             "set tokenizer.pad_token (chattune uses eos when it is missing)"),
        _try("generation prompt matches training", c.gen_prompt, fix_template),
        _try("special tokens are single ids", c.specials_single,
             "add them with chattune.setup_chat_format"),
    ]
    if conversations:
        checks.append(_try("data rows", c.data_rows,
                           "see the row named; `chattune render` shows its mask"))
    return checks
