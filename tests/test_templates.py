"""Masks: only assistant content and its end-of-turn token are trained, for every built-in template."""

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from chattune.data.schema import Message
from chattune.errors import TemplateError
from chattune.templates import (
    BUILTIN_TEMPLATES,
    IGNORE_INDEX,
    check_rendered,
    end_of_turn,
    render,
    render_text,
    setup_chat_format,
)

MESSAGES = [Message("system", "Be brief."), Message("user", "What is 2+2?"), Message("assistant", "It is 4."),
            Message("user", "And 3+3?"), Message("assistant", "6")]


def trained_text(tok, r):
    return tok.decode([t for t in r.labels if t != IGNORE_INDEX])


def test_smollm2_golden_mask(tokenizer):
    r = render(tokenizer, MESSAGES)
    assert r.text == ("<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nWhat is 2+2?<|im_end|>\n"
                      "<|im_start|>assistant\nIt is 4.<|im_end|>\n<|im_start|>user\nAnd 3+3?<|im_end|>\n"
                      "<|im_start|>assistant\n6<|im_end|>\n")
    assert trained_text(tokenizer, r) == "It is 4.<|im_end|>6<|im_end|>"
    assert r.input_ids == tokenizer(r.text, add_special_tokens=False)["input_ids"]


def test_injected_default_system_prompt_is_not_trained(tokenizer):
    r = render(tokenizer, MESSAGES[1:3])
    assert "You are a helpful AI assistant named SmolLM" in r.text
    assert trained_text(tokenizer, r) == "It is 4.<|im_end|>"


def test_train_on_options(tokenizer):
    last = render(tokenizer, MESSAGES, train_on="last_assistant")
    assert trained_text(tokenizer, last) == "6<|im_end|>"
    everything = render(tokenizer, MESSAGES, train_on="all")
    assert everything.labels == everything.input_ids
    override = [*MESSAGES[:2], Message("assistant", "It is 4.", train=False), *MESSAGES[3:]]
    assert trained_text(tokenizer, render(tokenizer, override)) == "6<|im_end|>"


def test_generation_prompt_matches_training_prefix(tokenizer):
    prompt = render(tokenizer, MESSAGES[:4], add_generation_prompt=True)
    full = render(tokenizer, MESSAGES)
    assert full.input_ids[:len(prompt.input_ids)] == prompt.input_ids
    assert all(label == IGNORE_INDEX for label in prompt.labels)


@pytest.mark.parametrize("name", sorted(BUILTIN_TEMPLATES))
def test_builtin_template_parity_and_mask(tokenizer, name):
    tok = tokenizer.__class__.from_pretrained(tokenizer.name_or_path)
    setup_chat_format(None, tok, name)
    dicts = [m.to_template_dict() for m in MESSAGES]
    assert render_text(tok, MESSAGES, jinja=tok.chat_template) == tok.apply_chat_template(dicts, tokenize=False)
    r = render(tok, MESSAGES)
    eot = end_of_turn(tok)
    got = trained_text(tok, r)
    assert got.replace(" ", "") == f"It is 4.{eot}6{eot}".replace(" ", "")
    check_rendered(tok, r, MESSAGES, "all_assistant")


def test_unclosed_assistant_turn_is_an_error(tokenizer):
    no_eot = "{% for m in messages %}{{ m['role'] + ': ' + m['content'] + '\n' }}{% endfor %}"
    with pytest.raises(TemplateError, match="end-of-turn"):
        render(tokenizer, MESSAGES, template=no_eot)


def test_non_prefix_preserving_template_is_an_error(tokenizer):
    # renders the number of messages first: adding a message changes the start of the text
    shifty = "{{ messages|length }}{% for m in messages %}{{ m['content'] + '<|im_end|>' }}{% endfor %}"
    with pytest.raises(TemplateError, match="not prefix-preserving"):
        render(tokenizer, MESSAGES[1:3], template=shifty)


def test_unknown_template_name(tokenizer):
    with pytest.raises(TemplateError, match="unknown template 'chatmel'"):
        render(tokenizer, MESSAGES, template="chatmel")


text = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), min_size=1, max_size=30)
word_text = text.filter(lambda s: s.strip() and "<" not in s)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(turns=st.lists(st.tuples(word_text, word_text), min_size=1, max_size=3), name=st.sampled_from(
    ["chatml", "zephyr", "alpaca", "human_assistant", "mistral"]))
def test_property_trained_tokens_are_assistant_contents(tokenizer, turns, name):
    """Every character of each assistant content and its end-of-turn token is trained, and every trained
    token touches one of them (a token merged across a boundary, like BLOOM's `?\n\n`, carries content)."""
    tok = tokenizer  # these templates need no new tokens, so the shared tokenizer is not modified
    # a few code points do not survive this tokenizer's byte vocabulary at all; masks are not about those
    assume(all(tok.decode(tok.encode(s, add_special_tokens=False)) == s for turn in turns for s in turn))
    msgs = [m for u, a in turns for m in (Message("user", u), Message("assistant", a))]
    r = render(tok, msgs, template=name)
    jinja = BUILTIN_TEMPLATES[name].jinja
    spans = []
    for i in range(1, len(msgs), 2):
        start = r.text.index(msgs[i].content, len(render_text(tok, msgs[:i], jinja=jinja, add_generation_prompt=True)))
        end = r.text.index("<|im_end|>", start + len(msgs[i].content)) + len("<|im_end|>")
        spans.append((start, end))
    offsets = tok(r.text, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
    trained = [(s, e) for (s, e), label in zip(offsets, r.labels) if label != IGNORE_INDEX]
    covered = {c for s, e in trained for c in range(s, e)}
    assert all(c in covered for s, e in spans for c in range(s, e) if not r.text[c].isspace())
    # whitespace the template puts between generation prompt and content is the model's to generate
    assert all(any(s < se and e > ss for ss, se in spans) or not r.text[s:e].strip() for s, e in trained)


def test_assistant_only_conversation_trains_its_text(tokenizer):
    """Raw `text` rows become one assistant message; the template's injected system prompt stays untrained."""
    r = render(tokenizer, [Message("assistant", "Just some text.")])
    assert trained_text(tokenizer, r) == "Just some text.<|im_end|>"
