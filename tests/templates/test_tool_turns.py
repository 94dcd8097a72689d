"""Tool-call turns on the verbatim real templates (tests/assets/templates/real): the user asks, the
assistant calls `multiply` (content text or null), a tool answers, the assistant answers; once and
with a second tool round.

For every family that writes tool calls: chattune's text and ids equal apply_chat_template's, and
the trained tokens are each assistant turn as the rendering shows it, judged by an oracle that does
not use chattune's span finder: a tool-call turn runs from the end of its header through its call
(name and arguments as written) and its content to the first of the family's end-of-turn tokens
(families.json) after them, and holds nothing of the tool message.
"""

from __future__ import annotations

import json

import pytest
from test_real_templates import (
    FAMILIES,
    NO_FINAL_END,
    family_tokenizer,
    header_token,
    oracle_problems,
    reference,
)

from chattune.data.convert import parse_messages
from chattune.errors import TemplateError
from chattune.labels import trained_ids
from chattune.templates import check_rendered, render
from chattune.templates.markers import TOOL_CALLS

TOOLS = [{"type": "function",
          "function": {"name": "multiply", "description": "Multiply two numbers", "parameters": {
    "type": "object", "properties": {"a": {"type": "number"}, "b": {"type": "number"}},
    "required": ["a", "b"]}}}]
ARGS = {"a": 6, "b": 7}


@pytest.fixture(scope="module")
def family_tokenizers(tokenizer):
    """Each family's test tokenizer, as tests/templates/test_real_templates.py builds it."""
    return {name: family_tokenizer(tokenizer, fam) for name, fam in FAMILIES.items()}


def conversation(content: str | None, rounds: int, args: object) -> list[dict]:
    conv = [{"role": "user", "content": "What is 6 times 7, twice?"}]
    for k in range(rounds):
        call_id = f"call{k}2345"  # nine characters: Mistral's templates require it
        conv += [{"role": "assistant", "content": content, "tool_calls": [
                     {"id": call_id, "type": "function",
                      "function": {"name": "multiply", "arguments": args}}]},
                 {"role": "tool", "content": f"{42 + k}", "tool_call_id": call_id,
                  "name": "multiply"}]
    return conv + [{"role": "assistant", "content": "Six times seven is forty-two."}]


def accepted(tok, content: str | None, rounds: int) -> list[dict] | None:
    """The conversation with arguments as an object, or as a JSON string where the template wants
    one (DeepSeek-R1 concatenates them); None where the template refuses both."""
    for args in (ARGS, json.dumps(ARGS)):
        conv = conversation(content, rounds, args)
        if reference(tok, conv, tools=TOOLS) is not None:
            return conv
    return None


def tool_turn_problems(text: str, span: tuple[int, int], conv: list[dict], i: int,
                       family: dict) -> list[str]:
    """What is wrong with the span of tool-call turn `i`, judged from the rendering's text alone:
    the call (its name or id, the first written after the previous message's text) and the content
    lie in the span, which ends at the first end-of-turn token after them."""
    start, end = span
    turn = text[start:end]
    # the turn's region: after the texts of the messages before it, before those of the messages
    # after it
    region = max([text.rfind(m["content"], 0, start) + len(m["content"]) for m in conv[:i]
                  if m["content"] and m["content"] in text[:start]], default=0)
    content = (conv[i]["content"] or "").strip()
    shown = bool(content) and content in text[region:]
    own = text.find(content, region) + len(content) if shown else region
    after = min([text.find(m["content"], own) for m in conv[i + 1:]
                 if m["content"] and m["content"] in text[own:]], default=len(text))
    call_id = conv[i]["tool_calls"][0]["id"]
    written = [at for at in (text.find("multiply", region, after),
                             text.find(call_id, region, after)) if at >= 0]
    if not written:  # the template drops the call (Granite 3.3, Phi-3.5): the turn is its content
        return ([] if shown
                else [f"turn {i} {turn!r}: nothing of it is written, yet it was not refused"])
    call = min(written)
    if not start <= call < end:
        return [f"turn {i} {turn!r} lacks its call"]
    last = text.find("7", call)  # the arguments' last value, however the template writes them
    if shown:
        if text.find(content, region, after) < start:
            return [f"turn {i} {turn!r} lacks its content"]
        last = max(last, text.find(content, region, after) + len(content) - 1)
    enders = [(text.find(e, last), e) for e in family["end_of_turn"] if text.find(e, last) >= 0]
    if not enders:
        return [f"turn {i}: no end-of-turn token follows the call in {text[start:]!r}"]
    at, eot = min(enders)
    if end != at + len(eot):
        expected = text[start:at + len(eot)]
        return [f"turn {i} {turn!r} does not end at the first end of turn after its call: "
                f"{expected!r}"]
    return []


def problems(r, conv: list[dict], family: dict, header: str) -> list[str]:
    assistant = [i for i, m in enumerate(conv) if m["role"] == "assistant"]
    found = []
    for span, i in zip(r.spans, assistant):
        if conv[i].get("tool_calls"):
            found += tool_turn_problems(r.text, span, conv, i, family)
    # the plain oracle (ends, other messages' texts, header); a call turn's content is judged above
    # (some templates drop it: Llama 3.1, Mistral, Command R7B)
    plain = [{**m, "content": "" if m.get("tool_calls") else m["content"]} for m in conv]
    return found + oracle_problems(r.text, r.spans, plain, family, header)


def refusal_is_due(ref: str, conv: list[dict], error: str) -> bool:
    """A refusal is right only where no exact span exists: the template does not write the call, or
    writes the tool's result inside the assistant turn, before its content (Gemma 4)."""
    user_at = ref.find(conv[0]["content"]) + len(conv[0]["content"])
    region = ref[user_at:ref.find(conv[2]["content"], user_at)]
    if "does not write its tool call" in error or "does not render it" in error:
        return "multiply" not in region and conv[1]["tool_calls"][0]["id"] not in region
    content = conv[1]["content"]
    return ("inside it" in error and bool(content) and ref.find(conv[2]["content"], user_at)
            < ref.rfind(content))


CASES = [(f, c, n) for f in FAMILIES if f not in NO_FINAL_END for c in ("Let me multiply.", None)
         for n in (1, 2)]


@pytest.mark.parametrize("family,content,rounds", CASES)
def test_tool_call_turns_are_trained_exactly(family_tokenizers, family, content, rounds):
    tok, fam = family_tokenizers[family], FAMILIES[family]
    conv = accepted(tok, content, rounds)
    if conv is None:
        pytest.skip("the template itself refuses this conversation")
    ref = reference(tok, conv, tools=TOOLS)
    messages = parse_messages(conv)
    try:
        r = render(tok, messages, tools=TOOLS)
    except TemplateError as e:
        assert refusal_is_due(ref, conv, str(e)), str(e)
        return
    assert r.text == ref
    assert r.input_ids == list(tok.apply_chat_template(conv, tools=TOOLS, tokenize=True,
                                                       return_dict=False))
    assert problems(r, conv, fam, header_token(tok, conv, {"tools": TOOLS})) == []
    check_rendered(tok, r, messages, "all_assistant")
    enc = tok(r.text, add_special_tokens=False, return_offsets_mapping=True)
    expected = [t for t, (a, b) in zip(enc["input_ids"], enc["offset_mapping"])
                # the tokens that overlap the spans, nothing else
                if any(a < e and b > s for s, e in r.spans)]
    assert trained_ids(r.labels) == expected


@pytest.mark.parametrize("family,content,turn", [
    ("deepseek-r1", "Let me multiply.",
     "Let me multiply.<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function"
     "<｜tool▁sep｜>multiply\n```json\n{\"a\": 6, \"b\": "
     "7}\n```<｜tool▁call▁end｜><｜tool▁calls▁end｜><｜end▁of▁sentence｜>"),
    ("minicpm3", None,
     "<|tool_call_start|>\n```python\nmultiply(a=6,b=7)\n```\n<|tool_call_end|>\n<|im_end|>"),
    ("kimi-k2-thinking", None,
     "<think></think><|tool_calls_section_begin|><|tool_call_begin|>call02345"
     "<|tool_call_argument_begin|>{\"a\": 6, \"b\": "
     "7}<|tool_call_end|><|tool_calls_section_end|><|im_end|>"),
    ("gpt-oss", None,
     " to=functions.multiply<|channel|>commentary json<|message|>{\"a\": 6, \"b\": 7}<|call|>"),
    ("mistral-small-3.2", None,
     "[TOOL_CALLS]multiply[CALL_ID]call02345[ARGS]{\"a\": 6, \"b\": 7}</s>"),
])
def test_the_tool_call_turn_as_the_rendering_shows_it(family_tokenizers, family, content, turn):
    """The issue's three templates (DeepSeek-R1 trained `<｜tool▁outputs▁begin｜>`, MiniCPM3 left
    `<|im_end|>` out, Kimi-K2-Thinking was refused) and two whose arguments hold no text (the span
    stopped at the call's name)."""
    tok = family_tokenizers[family]
    r = render(tok, parse_messages(accepted(tok, content, 1)), tools=TOOLS)
    assert r.text[slice(*r.spans[0])] == turn


def test_an_off_by_one_into_the_next_message_is_caught(family_tokenizers, monkeypatch):
    """The oracle is not a mirror of the span finder: a tool-call turn that runs one token into the
    tool message's opening (DeepSeek-R1's `<｜tool▁outputs▁begin｜>`, the bug this guards) fails it,
    as does one that stops a token short."""
    from chattune.templates import toolturns

    tok, fam = family_tokenizers["deepseek-r1"], FAMILIES["deepseek-r1"]
    conv = accepted(tok, "Let me multiply.", 1)
    real = toolturns.tool_turn_end
    for shift in (1, -1):
        def planted(text, last, limit, end, pattern, enders, openers, shift=shift):
            found = real(text, last, limit, end, pattern, enders, openers)
            if shift > 0:
                return pattern.match(text, found).end()
            return max(m.start() for m in pattern.finditer(text, last, found))

        monkeypatch.setattr(toolturns, "tool_turn_end", planted)
        r = render(tok, parse_messages(conv), tools=TOOLS)
        assert problems(r, conv, fam, header_token(tok, conv, {"tools": TOOLS})), shift
    monkeypatch.setattr(toolturns, "tool_turn_end", real)
    r = render(tok, parse_messages(conv), tools=TOOLS)
    assert problems(r, conv, fam, header_token(tok, conv, {"tools": TOOLS})) == []


def test_a_repeated_call_after_its_turn_is_not_the_turn():
    """gpt-oss names the call again in the tool result's header: only a call's first marks are the
    turn's."""
    marks = [(10, TOOL_CALLS, True), (18, TOOL_CALLS, False),
             (60, TOOL_CALLS, True), (68, TOOL_CALLS, False),
             (5, 0, True)]
    from chattune.templates.callmarks import first_calls

    assert first_calls(marks, 1, TOOL_CALLS) == [marks[0], marks[1], marks[4]]
    assert first_calls(marks, 2, TOOL_CALLS) == marks


def test_doctor_and_render_say_what_the_template_does_with_tool_calls(family_tokenizers):
    from chattune.templates.doctor import diagnose
    from chattune.templates.toolnotes import tool_call_note

    note = tool_call_note(family_tokenizers["minicpm3"])
    assert "after <|tool_call_start|>" in note and note.endswith("ends with <|im_end|>")
    assert "ends with <｜end▁of▁sentence｜>" in tool_call_note(family_tokenizers["deepseek-r1"])
    assert "does not write its tool call" in tool_call_note(family_tokenizers["llama-3"])
    masks = next(c for c in diagnose(family_tokenizers["kimi-k2-thinking"])
                 if c.name == "exact masks")
    assert masks.ok and "tool calls: written in the assistant turn" in masks.detail, masks.detail
