"""Masks: only assistant content and its end-of-turn token are trained, for every built-in
template."""

import copy

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

MESSAGES = [Message("system", "Be brief."), Message("user", "What is 2+2?"),
            Message("assistant", "It is 4."),
            Message("user", "And 3+3?"), Message("assistant", "6")]


def trained_text(tok, r):
    return tok.decode([t for t in r.labels if t != IGNORE_INDEX])


def test_smollm2_golden_mask(tokenizer):
    r = render(tokenizer, MESSAGES)
    assert r.text == ("<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nWhat is "
                      "2+2?<|im_end|>\n<|im_start|>assistant\nIt is "
                      "4.<|im_end|>\n<|im_start|>user\nAnd "
                      "3+3?<|im_end|>\n<|im_start|>assistant\n6<|im_end|>\n")
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
    assert (render_text(tok, MESSAGES, jinja=tok.chat_template)
            == tok.apply_chat_template(dicts, tokenize=False))
    r = render(tok, MESSAGES)
    eot = end_of_turn(tok)
    # qwen3's empty block in the last turn
    got = trained_text(tok, r).replace("<think>\n\n</think>\n\n", "")
    assert got.replace(" ", "") == f"It is 4.{eot}6{eot}".replace(" ", "")
    check_rendered(tok, r, MESSAGES, "all_assistant")


def test_unclosed_assistant_turn_is_an_error(tokenizer):
    no_eot = "{% for m in messages %}{{ m['role'] + ': ' + m['content'] + '\n' }}{% endfor %}"
    with pytest.raises(TemplateError, match="end-of-turn"):
        render(tokenizer, MESSAGES, template=no_eot)


def test_non_prefix_preserving_template_is_masked_from_the_whole_rendering(tokenizer):
    # renders the number of messages first: adding a message changes the start of the text, yet the
    # turns of the whole conversation are where they are
    shifty = ("{{ messages|length }}{% for m in messages %}{{ m['content'] + '<|im_end|>' }}{% "
              "endfor %}")
    r = render(tokenizer, MESSAGES[1:3], template=shifty)
    assert r.text.startswith("2")
    assert (tokenizer.decode([t for t in r.labels if t != IGNORE_INDEX])
            == MESSAGES[2].content + "<|im_end|>")


def test_a_template_that_drops_the_turn_is_an_error(tokenizer):
    drops = ("{% for m in messages %}{% if m.role != 'assistant' %}{{ m['content'] + '<|im_end|>' "
             "}}{% endif %}{% endfor %}")
    with pytest.raises(TemplateError, match="does not render it"):
        render(tokenizer, MESSAGES[1:3], template=drops)


def test_unknown_template_name(tokenizer):
    with pytest.raises(TemplateError, match="unknown template 'chatmel'"):
        render(tokenizer, MESSAGES, template="chatmel")


text = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), min_size=1,
               max_size=30)
word_text = text.filter(lambda s: s.strip() and "<" not in s)


@pytest.fixture(scope="module")
def builtin_tokenizers(tokenizer):
    out = {}
    for name in BUILTIN_TEMPLATES:
        tok = copy.deepcopy(tokenizer)
        setup_chat_format(None, tok, name)
        out[name] = tok
    return out


@settings(max_examples=60, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(turns=st.lists(st.tuples(word_text, word_text), min_size=1, max_size=3),
       name=st.sampled_from(sorted(BUILTIN_TEMPLATES)))
def test_property_trained_tokens_are_assistant_contents(builtin_tokenizers, turns, name):
    """Every character of each assistant content and its end-of-turn token is trained, and every
    trained token touches one of them (a token merged across a boundary, like BLOOM's `?\n\n`,
    carries content)."""
    tok = builtin_tokenizers[name]
    # a few code points do not survive this tokenizer's byte vocabulary at all; masks are not about
    # those
    assume(all(tok.decode(tok.encode(s, add_special_tokens=False)) == s for turn in turns
               for s in turn))
    msgs = [m for u, a in turns for m in (Message("user", u), Message("assistant", a))]
    r = render(tok, msgs)
    eot = end_of_turn(tok)
    spans = []
    for i in range(1, len(msgs), 2):
        content = msgs[i].content.strip()  # llama3 and gemma trim contents
        prompt = render_text(tok, msgs[:i], jinja=tok.chat_template, add_generation_prompt=True)
        start = r.text.index(content, len(prompt))
        # what follows the generation prompt is the model's to generate (qwen3's empty <think> block
        # included)
        spans.append((len(prompt), r.text.index(eot, start + len(content)) + len(eot)))
    offsets = tok(r.text, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
    trained = [(s, e) for (s, e), label in zip(offsets, r.labels) if label != IGNORE_INDEX]
    covered = {c for s, e in trained for c in range(s, e)}
    assert all(c in covered for s, e in spans for c in range(s, e) if not r.text[c].isspace())
    # whitespace the template puts between generation prompt and content is the model's to generate
    assert all(any(s < se and e > ss for ss, se in spans) or not r.text[s:e].strip()
               for s, e in trained)


def test_assistant_only_conversation_trains_its_text(tokenizer):
    """Raw `text` rows become one assistant message; the template's injected system prompt stays
    untrained."""
    r = render(tokenizer, [Message("assistant", "Just some text.")])
    assert trained_text(tokenizer, r) == "Just some text.<|im_end|>"


def test_malformed_messages_name_their_index(tokenizer):
    from chattune.errors import DataError

    with pytest.raises(DataError, match=r"messages\[1\].*missing 'role'"):
        render(tokenizer, [{"role": "user", "content": "hi"}, {"content": "no role"}])
    with pytest.raises(TemplateError, match=r"message 1: role 'bot' is neither one chattune knows"):
        render(tokenizer, [{"role": "user", "content": "hi"}, {"role": "bot", "content": "x"}])
    # a role the template names is passed through (Llama 3.1's ipython)
    ipython = ("{% for m in messages %}{% if m.role == 'ipython' %}IPY{% endif %}{{ m.content "
               "}}<|im_end|>{% endfor %}")
    r = render(tokenizer, [{"role": "ipython", "content": "out"},
                           {"role": "assistant", "content": "ok"}],
               template=ipython)
    assert r.text.startswith("IPYout<|im_end|>") and trained_text(tokenizer, r) == "ok<|im_end|>"
    with pytest.raises(DataError, match=r"messages\[0\].content.*found int"):
        render(tokenizer, [{"role": "user", "content": 3}])
    parts = [{"role": "user",
              "content": [{"type": "text", "text": "Hi "}, {"type": "text", "text": "there"}]},
             {"role": "assistant", "content": "Hello"}]
    assert "Hi there" in render(tokenizer, parts).text


def test_setup_chat_format_adds_tokens_and_mean_initialises(tokenizer):
    from conftest import make_tiny_model

    tok = copy.deepcopy(tokenizer)
    model = make_tiny_model(tok)
    old = model.get_input_embeddings().weight.detach().clone()
    setup_chat_format(model, tok, "llama3")
    new = model.get_input_embeddings().weight.detach()
    added = ["<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>", "<|begin_of_text|>"]
    ids = [tok.convert_tokens_to_ids(t) for t in added]
    assert new.shape[0] == len(tok) == old.shape[0] + 4
    assert all(len(tok.encode(t, add_special_tokens=False)) == 1 for t in added)
    mean = old.mean(0)
    for i in ids:  # new rows start near the mean of the old ones (transformers samples around it)
        assert (new[i] - mean).norm() < 0.5 * (old - mean).norm(dim=1).mean()
    assert (tok.eos_token == "<|eot_id|>" and model.config.eos_token_id
            == tok.convert_tokens_to_ids("<|eot_id|>"))
    assert tok.chat_template == BUILTIN_TEMPLATES["llama3"].jinja
    assert end_of_turn(tok) == "<|eot_id|>"


# The rendering of MESSAGES under each built-in, trained tokens in [[ ]] (SmolLM2's tokenizer, whose
# eos is <|im_end|>, after setup_chat_format). Changing a template or the masking shows up here
# first.
GOLDEN = {
    "alpaca": "Be brief.\n\n### Instruction:\nWhat is 2+2?\n\n### Response:\n[[It is "
              "4.<|im_end|>]]\n\n### Instruction:\nAnd 3+3?\n\n### Response:\n[[6<|im_end|>]]\n\n",
    "chatml": "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nWhat is 2+2?<|im_end|>\n"
              "<|im_start|>assistant\n[[It is 4.<|im_end|>]]\n<|im_start|>user\nAnd "
              "3+3?<|im_end|>\n<|im_start|>assistant\n[[6<|im_end|>]]\n",
    "gemma": "<|im_start|><start_of_turn>system\nBe brief.<end_of_turn>\n<start_of_turn>user\nWhat "
             "is 2+2?<end_of_turn>\n<start_of_turn>model\n[[It is "
             "4.<end_of_turn>]]\n<start_of_turn>user\nAnd "
             "3+3?<end_of_turn>\n<start_of_turn>model\n[[6<end_of_turn>]]\n",
    "human_assistant": "Be brief.\n\n### Human: What is 2+2?\n\n### Assistant:[[ It is "
                       "4.<|im_end|>]]\n\n### Human: And 3+3?\n\n### Assistant:[[ 6<|im_end|>]]",
    "llama3": "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nBe "
              "brief.<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nWhat is "
              "2+2?<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n[[It is "
              "4.<|eot_id|>]]<|start_header_id|>user<|end_header_id|>\n\nAnd "
              "3+3?<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n[[6<|eot_id|>]]",
    "mistral": "<|im_start|>[INST] Be brief.\n\nWhat is 2+2? [/INST][[It is 4.<|im_end|>]][INST] "
               "And 3+3? [/INST][[6<|im_end|>]]",
    "phi3": "<|system|>\nBe brief.<|end|>\n<|user|>\nWhat is 2+2?<|end|>\n<|assistant|>\n[[It is "
            "4.<|end|>]]\n<|user|>\nAnd 3+3?<|end|>\n<|assistant|>\n[[6<|end|>]]\n",
    "qwen3": "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nWhat is 2+2?<|im_end|>\n"
             "<|im_start|>assistant\n[[It is 4.<|im_end|>]]\n<|im_start|>user\nAnd 3+3?<|im_end|>\n"
             "<|im_start|>assistant\n[[<think>\n\n</think>\n\n6<|im_end|>]]\n",
    "zephyr": "<|system|>\nBe brief.<|im_end|>\n<|user|>\nWhat is "
              "2+2?<|im_end|>\n<|assistant|>\n[[It is 4.<|im_end|>]]\n<|user|>\nAnd "
              "3+3?<|im_end|>\n<|assistant|>\n[[6<|im_end|>]]\n",
}


@pytest.mark.parametrize("name", sorted(BUILTIN_TEMPLATES))
def test_builtin_golden_text_and_mask(builtin_tokenizers, name):
    from chattune.outputs.show import marked_text

    tok = builtin_tokenizers[name]
    assert set(GOLDEN) == set(BUILTIN_TEMPLATES)
    assert marked_text(tok, render(tok, MESSAGES), color=False).plain == GOLDEN[name]


def test_a_rows_chat_template_kwargs_reach_the_template(tokenizer):
    """TRL's per-row `chat_template_kwargs` column: the row's options win over the config's."""
    from chattune.data.convert import to_conversation
    from chattune.errors import DataError
    from chattune.templates.render import render_many

    jinja = ("{% for m in messages %}{{ '<|im_start|>' + (m['role'].upper() if shout else "
             "m['role']) + '\\n' + m['content'] + '<|im_end|>\\n' }}{% endfor %}{% if "
             "add_generation_prompt %}{{ '<|im_start|>' + ('ASSISTANT' if shout else 'assistant') "
             "+ '\\n' }}{% endif %}")
    row = {"messages": [{"role": "user", "content": "Hi"},
                        {"role": "assistant", "content": "Hello"}],
           "chat_template_kwargs": {"shout": True}}
    conv = to_conversation(row)
    assert conv.template_kwargs == {"shout": True}
    assert render(tokenizer, conv, template=jinja,
                  template_kwargs={"shout": False}).text.startswith(
        "<|im_start|>USER\nHi")
    [many] = render_many(tokenizer, [conv], template=jinja, template_kwargs={"shout": False})
    assert many.text.startswith("<|im_start|>USER") and tokenizer.decode(
        [t for t in many.labels if t != IGNORE_INDEX]) == "Hello<|im_end|>"
    with pytest.raises(DataError, match="field 'chat_template_kwargs': expected an object"):
        to_conversation({**row, "chat_template_kwargs": "shout"})
