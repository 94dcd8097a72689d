"""Masks on the verbatim chat templates of 63 models (tests/assets/templates/real, sources in its
README).

For each template and conversation the template accepts: chattune's text and ids equal
apply_chat_template's, the generation prompt equals apply_chat_template's, and each trained span is
checked against an oracle that does not use chattune's span finder: it holds the turn's own text as
the rendering shows it, ends with one of the family's end-of-turn tokens (families.json), and holds
no other message's text and no assistant header.
"""

from __future__ import annotations

import copy
import json
import re

import pytest
from conftest import ASSETS

import chattune.templates.markers as markers_module
import chattune.templates.spans as spans_module
from chattune.data.convert import parse_messages
from chattune.errors import TemplateError
from chattune.templates import render

REAL = ASSETS / "templates" / "real"
FAMILIES = {f["family"]: f for f in json.loads((REAL / "families.json").read_text())}
# special tokens as these templates write them (the test tokenizer is SmolLM2's with them added)
SPECIAL = re.compile(r"<\|[^|<>\s'\"]{1,40}\|>|<｜[^｜]{1,40}｜>|\[/?[A-Z_]{3,30}\]|</?s>|<start_of"
                     r"_turn>|<end_of_turn>|<\|?turn\|?>|<\|[a-z_]+>|<[a-z_]+\|>|<BOS_TOKEN>|<bos>|<eos>")
CALL = {"id": "call12345", "type": "function",
        "function": {"name": "get_weather", "arguments": {"city": "Paris"}}}
TOOLS = [{"type": "function",
          "function": {"name": "get_weather", "description": "Weather in a city", "parameters": {
    "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]
CONVERSATIONS = {
    "three_turns": [{"role": "system", "content": "Be brief."},
                    {"role": "user", "content": "What is 2+2?"},
                    {"role": "assistant", "content": "It is 4."},
                    {"role": "user", "content": "And 3+3?"},
                    {"role": "assistant", "content": "6."},
                    {"role": "user", "content": "Zut, 5×5 ?"},
                    {"role": "assistant", "content": "25, naïve café ✓ 二十五."}],
    "no_system": [{"role": "user", "content": "Name a colour."},
                  {"role": "assistant", "content": "Blue."}],
    "reasoning": [{"role": "user", "content": "2+2?"},
                  {"role": "assistant", "content": "4.", "reasoning_content": "Two plus two."},
                  {"role": "user", "content": "3+3?"},
                  {"role": "assistant", "content": "6.", "reasoning_content": "Three plus three."}],
    "tools": [{"role": "user", "content": "Weather in Paris?"},
              {"role": "assistant", "content": "", "tool_calls": [CALL]},
              {"role": "tool", "content": "{\"temp_c\": 18}", "tool_call_id": "call12345",
               "name": "get_weather"},
              {"role": "assistant", "content": "It is 18 C in Paris."}],
}


def family_tokenizer(tokenizer, fam):
    """The test tokenizer with a family's template, its special tokens and its bos/eos."""
    jinja = (REAL / fam["file"]).read_text()
    tok = copy.deepcopy(tokenizer)
    plain = set(fam.get("plain_text", []))  # markup the model's own tokenizer has as plain text
    tok.add_tokens(sorted(set(SPECIAL.findall(jinja)) - plain), special_tokens=True)
    tok.add_special_tokens({k: v for k, v in (("bos_token", fam["bos"]), ("eos_token", fam["eos"]))
                            if v})
    tok.chat_template = jinja
    return tok


@pytest.fixture(scope="module")
def family_tokenizers(tokenizer):
    return {name: family_tokenizer(tokenizer, fam) for name, fam in FAMILIES.items()}


def reference(tok, conv, **kw):
    """apply_chat_template's text, or None where the template itself refuses the conversation."""
    try:
        return tok.apply_chat_template(conv, tokenize=False, **kw)
    # the template's own refusal (Gemma 2: no system role; Mistral: 9-character call ids)
    except Exception:
        return None


def oracle_problems(text: str, spans, conv: list[dict], family: dict, header: str) -> list[str]:
    """What is wrong with trained spans, judged without chattune's span finder."""
    problems = []
    assistant = [i for i, m in enumerate(conv) if m["role"] == "assistant"]
    if len(spans) != len(assistant):
        return [f"{len(spans)} spans for {len(assistant)} assistant turns"]
    others = [m["content"].strip() for m in conv
              if m["role"] != "assistant" and m["content"].strip()]
    for (start, end), i in zip(spans, assistant):
        turn = text[start:end]
        content = conv[i]["content"].strip()
        if content and content not in turn:
            problems.append(f"turn {i} {turn!r} lacks its content {content!r}")
        if not any(turn.endswith(e) for e in family["end_of_turn"]):
            problems.append(f"turn {i} {turn!r} does not end with one of {family['end_of_turn']}")
        if any(o in turn for o in others):
            problems.append(f"turn {i} {turn!r} holds another message's text")
        if header and turn.startswith(header):
            problems.append(f"turn {i} {turn!r} starts with the assistant header {header!r}")
    return problems


def header_token(tok, conv, kw) -> str:
    """The last special token of the generation prompt: the assistant header's end, never
    trained."""
    prompt = reference(tok, conv[:1], add_generation_prompt=True, **kw) or ""
    found = SPECIAL.findall(prompt[len(reference(tok, conv[:1], **kw) or ""):])
    return found[-1] if found else ""


# templates that write no end-of-turn token after the final assistant turn (GLM-4.6 and Qwen1.5
# close a turn only when another follows, Falcon never): there is no exact stop to train, so they
# are refused
NO_FINAL_END = {"glm-4.6", "qwen1.5", "falcon"}
CASES = [(f, c) for f in FAMILIES if f not in NO_FINAL_END for c in CONVERSATIONS]


@pytest.mark.parametrize("family,conv_name", CASES)
def test_real_template_parity_and_mask(family_tokenizers, family, conv_name):
    tok, fam = family_tokenizers[family], FAMILIES[family]
    conv = CONVERSATIONS[conv_name]
    kw = {"tools": TOOLS} if conv_name == "tools" else {}
    ref = reference(tok, conv, **kw)
    if ref is None:
        pytest.skip("the template itself refuses this conversation")
    messages = parse_messages(conv)
    try:
        r = render(tok, messages, tools=kw.get("tools"))
    except TemplateError as e:
        # a template that ignores tool calls or drops the turn is refused with the reason, never
        # mis-masked
        assert conv_name == "tools" and ("tool call" in str(e)
                                         or "does not render it" in str(e)), str(e)
        return
    assert r.text == ref
    assert r.input_ids == list(tok.apply_chat_template(conv, tokenize=True, return_dict=False,
                                                       **kw))
    assert oracle_problems(r.text, r.spans, conv, fam, header_token(tok, conv, kw)) == []
    prompt = render(tok, messages[:-1], tools=kw.get("tools"), add_generation_prompt=True)
    assert prompt.text == reference(tok, conv[:-1], add_generation_prompt=True, **kw)


def test_at_least_thirty_families_mask_every_conversation(family_tokenizers):
    clean = set()
    for family, fam in FAMILIES.items():
        tok = family_tokenizers[family]
        conv = CONVERSATIONS["three_turns"] if reference(tok, CONVERSATIONS["three_turns"]) else \
            CONVERSATIONS["reasoning"]
        try:
            r = render(tok, parse_messages(conv))
        except TemplateError:
            continue
        if r.text == reference(tok, conv) and not oracle_problems(r.text, r.spans, conv, fam, ""):
            clean.add(family)
    assert len(clean) >= 30, sorted(set(FAMILIES) - clean)


def test_qwen3_trains_the_reasoning_the_rendering_keeps(family_tokenizers):
    """Qwen3 drops the reasoning of turns before the last user message and writes a <think> block
    into the last turn: earlier turns train their answer only, the last its reasoning and answer."""
    tok = family_tokenizers["qwen3"]
    r = render(tok, parse_messages(CONVERSATIONS["reasoning"]))
    first, last = (r.text[s:e] for s, e in r.spans)
    assert first == "4.<|im_end|>" and "Two plus two" not in r.text
    assert last == "<think>\nThree plus three.\n</think>\n\n6.<|im_end|>"
    no_reasoning = render(tok, parse_messages(CONVERSATIONS["three_turns"]))
    assert no_reasoning.text[slice(*no_reasoning.spans[-1])].startswith("<think>\n\n</think>\n\n")


def test_template_kwargs_reach_the_template(family_tokenizers):
    tok = family_tokenizers["qwen3"]
    conv = parse_messages(CONVERSATIONS["no_system"])
    off = render(tok, conv[:1], add_generation_prompt=True,
                 template_kwargs={"enable_thinking": False})
    assert off.text.endswith("<|im_start|>assistant\n<think>\n\n</think>\n\n")
    assert not render(tok, conv[:1], add_generation_prompt=True).text.endswith("</think>\n\n")


def test_command_r7b_trains_both_closing_tokens_not_the_next_header(family_tokenizers):
    tok = family_tokenizers["command-r7b"]
    r = render(tok, parse_messages(CONVERSATIONS["three_turns"]))
    assert [r.text[s:e] for s, e
            in r.spans][0] == "<|START_RESPONSE|>It is 4.<|END_RESPONSE|><|END_OF_TURN_TOKEN|>"


def test_gpt_oss_harmony_channels(family_tokenizers):
    tok = family_tokenizers["gpt-oss"]
    r = render(tok, parse_messages(CONVERSATIONS["reasoning"]))
    assert [r.text[s:e] for s, e in r.spans] == [
        "<|channel|>final<|message|>4.<|end|>",
        "<|channel|>analysis<|message|>Three plus three.<|end|><|start|>assistant"
        "<|channel|>final<|message|>6.<|return|>"]


def test_glm_final_turn_without_end_is_a_clear_error(family_tokenizers):
    """GLM-4.6 ends an assistant turn only by the next turn's header: the last turn has no end to
    train."""
    with pytest.raises(TemplateError,
                       match=r"message 3 \(assistant\) is not followed by an end-of-turn"):
        render(family_tokenizers["glm-4.6"], parse_messages(CONVERSATIONS["reasoning"]))


@pytest.mark.parametrize("family,conv_name",
                         [(f, c) for f in sorted(NO_FINAL_END) for c in CONVERSATIONS])
def test_a_final_turn_without_end_is_refused(family_tokenizers, family, conv_name):
    tok, conv = family_tokenizers[family], CONVERSATIONS[conv_name]
    kw = {"tools": TOOLS} if conv_name == "tools" else {}
    if reference(tok, conv, **kw) is None:
        pytest.skip("the template itself refuses this conversation")
    with pytest.raises(TemplateError,
                       match=r"is not followed by an end-of-turn|does not write its tool call"):
        render(tok, parse_messages(conv), tools=kw.get("tools"))


def test_plain_text_markup_stays_plain(family_tokenizers):
    """Llama 2 and the first Mistral tokenizers have no [INST] token, Zephyr no <|user|>: the test
    tokenizer neither."""
    for family in ("llama-2", "mistral-v0.1", "mixtral-8x7b", "zephyr"):
        tok = family_tokenizers[family]
        assert not set(FAMILIES[family]["plain_text"]) & set(tok.get_added_vocab()), family
    r = render(family_tokenizers["llama-2"], parse_messages(CONVERSATIONS["three_turns"]))
    assert [r.text[s:e] for s, e in r.spans][0] == " It is 4. </s>"


def test_a_planted_mask_bug_is_caught(family_tokenizers, monkeypatch):
    """The oracle is not a mirror of the span finder: a closing that runs one special token too far
    fails it."""
    real = spans_module._closing_end

    def one_too_far(text, after, limit, pattern, openers):
        end = real(text, after, limit, pattern, openers)
        nxt = pattern.search(text, end)
        return nxt.end() if end is not None and nxt is not None else end

    monkeypatch.setattr(spans_module, "_closing_end", one_too_far)
    tok, conv = family_tokenizers["llama-3.1"], CONVERSATIONS["three_turns"]
    r = render(tok, parse_messages(conv))
    assert oracle_problems(r.text, r.spans, conv, FAMILIES["llama-3.1"],
                           header_token(tok, conv, {}))


def long_conversation(pairs: int, *, reasoning: bool = False) -> list[dict]:
    conv = [{"role": "system", "content": "Be brief."}]
    for i in range(pairs):
        reply = {"role": "assistant", "content": f"Answer {i}."}
        if reasoning:
            reply["reasoning_content"] = f"Thinking {i}."
        conv += [{"role": "user", "content": f"Question {i}?"}, reply]
    return conv


@pytest.mark.parametrize("family", [f for f in FAMILIES if f not in NO_FINAL_END])
def test_shared_prompt_gaps_give_every_turn_its_exact_span(family_tokenizers, family, monkeypatch):
    """A long conversation's turns share prompt gaps (spans.prompt_gaps): on every real template the
    spans are the ones rendering each turn's own prompt gives."""
    tok = family_tokenizers[family]
    conv = long_conversation(3 * spans_module.EXACT_TURNS,
                             reasoning="think" in (tok.chat_template or ""))
    if reference(tok, conv) is None:
        conv = conv[1:]  # a template without a system role
        if reference(tok, conv) is None:
            pytest.skip("the template itself refuses this conversation")
    messages = parse_messages(conv)
    try:
        shared = render(tok, messages)
    except TemplateError as e:
        with monkeypatch.context() as m:
            m.setattr(spans_module, "EXACT_TURNS", 10**9)
            with pytest.raises(TemplateError, match=re.escape(str(e)[:40])):
                render(tok, messages)
        return
    with monkeypatch.context() as m:
        m.setattr(spans_module, "EXACT_TURNS", 10**9)
        exact = render(tok, messages)
    assert shared.spans == exact.spans and shared.labels == exact.labels


def test_a_prompt_that_depends_on_the_whole_history_falls_back_to_every_turns_own(
        tokenizer, monkeypatch):
    """A template whose generation prompt changes after 20 messages (its header loses `assistant`):
    shared gaps would be wrong for the later turns, a check sees it and every turn's own prompt is
    rendered."""
    jinja = ("{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% "
             "endfor %}{% if add_generation_prompt %}<|im_start|>{% if messages|length <= 20 "
             "%}assistant\n{% endif %}{% endif %}")
    messages = parse_messages(long_conversation(30)[1:])
    renders = []
    exact_gap = spans_module.prompt_gap
    monkeypatch.setattr(spans_module, "prompt_gap",
                        lambda *a: renders.append(a[2]) or exact_gap(*a))
    shared = render(tokenizer, messages, template=jinja)
    assert len(renders) > 30  # fell back: every turn's own
    turns = [shared.text[s:e] for s, e in shared.spans]
    assert turns[0] == "Answer 0.<|im_end|>" and turns[-1] == "assistant\nAnswer 29.<|im_end|>"
    monkeypatch.setattr(spans_module, "EXACT_TURNS", 10**9)
    assert shared.spans == render(tokenizer, messages, template=jinja).spans


def test_a_long_conversation_is_masked_in_linear_time(tokenizer):
    """Messages rendered to find every turn's span grow linearly with the conversation (counted, not
    timed): 100,000 messages need two-character markers and at most a few renderings of the whole
    conversation."""
    from chattune.templates.render import _as_dicts, _renderer, resolve_template, special_strings

    rendered_messages = []
    run = _renderer(tokenizer, resolve_template(tokenizer), None, None)

    def counting(dicts, add_generation_prompt):
        rendered_messages.append(len(dicts))
        return run(dicts, add_generation_prompt)

    for pairs in (1_000, 50_000):
        dicts = _as_dicts(parse_messages(long_conversation(pairs)))
        rendered_messages.clear()
        text = run(dicts, False)
        trained = [i for i, d in enumerate(dicts) if d["role"] == "assistant"]
        found = spans_module.assistant_spans(counting, dicts, trained, text,
                                             tuple(special_strings(tokenizer)))
        assert len(found) == pairs
        assert all(text[s.start:s.end] == f"Answer {k}.<|im_end|>" for k, s in enumerate(found))
        assert sum(rendered_messages) <= 5 * len(dicts), (pairs, len(rendered_messages),
                                                          sum(rendered_messages))


def test_markers_widen_when_one_character_each_would_run_out():
    one = markers_module.markers_for("text", 1_000)
    assert one.width == 1
    wide = markers_module.markers_for("text", 100_000)
    assert wide.width == 2 and wide.radix ** 2 >= 600_000
    for message, kind, is_open in ((0, 0, True), (99_999, 2, False), (54_321, 1, True)):
        code = wide.code(message, kind, is_open)
        assert (len(code) == 2 and wide.pattern.fullmatch(code)
                and wide.decode(code) == (message, kind, is_open))
    # the text uses the first 500 code points
    crowded = "".join(chr(c) for c in range(0xF0000, 0xF0000 + 500))
    assert markers_module.markers_for(crowded, 1_000).base >= 0xF0000 + 500
