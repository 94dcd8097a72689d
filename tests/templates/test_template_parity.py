"""Templates in the style of real models: same ids as apply_chat_template, and exact masks."""

import copy
import json

import pytest
from conftest import ASSETS

from chattune.data.schema import Message
from chattune.templates import IGNORE_INDEX, check_rendered, end_of_turn, render
from chattune.templates.doctor import diagnose

TEMPLATES = ASSETS / "templates"
# special tokens each model's vocabulary has (SmolLM2's tokenizer gets them added for the test)
EXTRA_TOKENS = {"llama3": ["<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"],
                "gemma": ["<start_of_turn>", "<end_of_turn>"],
                "phi3": ["<|system|>", "<|user|>", "<|assistant|>", "<|end|>"],
                "mistral": [], "qwen2_5_tools": [], "smollm2": []}
EOT = {"llama3": "<|eot_id|>", "gemma": "<end_of_turn>", "phi3": "<|end|>", "mistral": "<|im_end|>",
       "qwen2_5_tools": "<|im_end|>", "smollm2": "<|im_end|>"}

CHAT = [Message("user", "What is 2+2?"), Message("assistant", "It is 4."),
        Message("user", "And 3+3?"), Message("assistant", "6")]
WITH_SYSTEM = [Message("system", "Be brief."), *CHAT]
CITY = {"type": "object", "properties": {"city": {"type": "string"}}}
TOOLS = [{"type": "function",
          "function": {"name": "get_weather", "description": "Weather", "parameters": CITY}}]
WEATHER_CALL = {"name": "get_weather", "arguments": {"city": "Paris"}}
TOOL_CHAT = [Message("user", "Weather in Paris?"),
             Message("assistant", "", tool_calls=[{"type": "function", "function": WEATHER_CALL}]),
             Message("tool", json.dumps({"temp_c": 18})),
             Message("assistant", "It is 18 C in Paris.")]


@pytest.fixture(scope="module")
def tokenizers(tokenizer):
    out = {}
    for name, extra in EXTRA_TOKENS.items():
        tok = copy.deepcopy(tokenizer)
        if extra:
            tok.add_tokens(extra, special_tokens=True)
        tok.chat_template = (tokenizer.chat_template if name == "smollm2"
                             else (TEMPLATES / f"{name}.jinja").read_text())
        out[name] = tok
    return out


def trained(tok, r):
    return tok.decode([t for t in r.labels if t != IGNORE_INDEX])


@pytest.mark.parametrize("name,messages", [
    ("llama3", WITH_SYSTEM), ("mistral", CHAT), ("gemma", CHAT), ("phi3", WITH_SYSTEM),
    ("qwen2_5_tools", WITH_SYSTEM), ("smollm2", CHAT),
])
def test_ids_match_apply_chat_template_and_mask_is_exact(tokenizers, name, messages):
    tok = tokenizers[name]
    r = render(tok, messages)
    dicts = [m.to_template_dict() for m in messages]
    assert r.input_ids == list(tok.apply_chat_template(dicts, tokenize=True, return_dict=False))
    eot = EOT[name]
    assert end_of_turn(tok) == eot
    assert trained(tok, r) == f"It is 4.{eot}6{eot}"
    check_rendered(tok, r, messages, "all_assistant")
    prompt = render(tok, messages[:-1], add_generation_prompt=True)
    assert prompt.input_ids == list(tok.apply_chat_template(dicts[:-1], tokenize=True,
                                                            add_generation_prompt=True,
                                                            return_dict=False))


def test_phi3_final_eos_is_not_trained(tokenizers):
    """Phi-3 appends eos after the whole conversation; only <|end|> closes an assistant turn."""
    tok = tokenizers["phi3"]
    r = render(tok, CHAT)
    assert r.text.endswith("<|end|>\n" + tok.eos_token)
    assert trained(tok, r) == "It is 4.<|end|>6<|end|>"


def test_qwen_tools_and_tool_calls(tokenizers):
    tok = tokenizers["qwen2_5_tools"]
    r = render(tok, TOOL_CHAT, tools=TOOLS)
    assert "# Tools" in r.text and "get_weather" in r.text and "<tool_response>" in r.text
    dicts = [m.to_template_dict() for m in TOOL_CHAT]
    assert r.input_ids == list(tok.apply_chat_template(dicts, tools=TOOLS, tokenize=True,
                                                       return_dict=False))
    got = trained(tok, r)
    # the tool call is the assistant's output and is trained; the tool's response is not
    assert (got.startswith("<tool_call>\n{\"name\": \"get_weather\"")
            and got.endswith("It is 18 C in Paris.<|im_end|>"))
    assert "temp_c" not in got


def test_gemma_system_role_is_a_template_error(tokenizers):
    from chattune.errors import TemplateError

    with pytest.raises(TemplateError, match="System role not supported"):
        render(tokenizers["gemma"], WITH_SYSTEM)


@pytest.mark.parametrize("name", ["llama3", "mistral", "gemma", "phi3", "qwen2_5_tools", "smollm2"])
def test_doctor_on_real_templates(tokenizers, name):
    checks = diagnose(tokenizers[name])
    failed = [c.name for c in checks if not c.ok]
    if name == "llama3":
        # SmolLM2's tokenizer encodes the generation prompt's "\n\n" as one token but "\n\nBlue" as
        # "\n", "\nBlue": training and generation would see different tokens, and the doctor says so
        assert failed == ["generation prompt matches training"]
    else:
        assert len(checks) == 8 and not failed, [(c.name, c.detail) for c in checks if not c.ok]


def test_doctor_fails_with_fixes(tokenizer):
    tok = copy.deepcopy(tokenizer)
    tok.chat_template = ("{% for m in messages %}{{ m['role'] + ': ' + m['content'] + '\\n' }}{% "
                         "endfor %}")
    failed = {c.name: c for c in diagnose(tok) if not c.ok}
    assert "exact masks" in failed or "end-of-turn trained" in failed
    assert all(c.fix for c in failed.values())
    tok.chat_template = None
    checks = diagnose(tok)
    assert len(checks) == 1 and not checks[0].ok and "chatml" in checks[0].fix


def test_builtin_chatml_renders_tools_and_tool_calls(tokenizer):
    """The built-in ChatML writes tools and calls as Qwen 2.5 does; OpenAI's string arguments are
    kept as they are, and the rendering equals apply_chat_template's."""
    from chattune import setup_chat_format

    tok = copy.deepcopy(tokenizer)
    setup_chat_format(None, tok, "chatml")
    messages = [Message("system", "Be brief."), *TOOL_CHAT]
    r = render(tok, messages, tools=TOOLS)
    dicts = [m.to_template_dict() for m in messages]
    assert r.input_ids == list(tok.apply_chat_template(dicts, tools=TOOLS, tokenize=True,
                                                       return_dict=False))
    assert (r.text.startswith("<|im_start|>system\nBe brief.\n\n# Tools\n")
            and r.text.count("<|im_start|>system") == 1)
    got = trained(tok, r)
    assert got == ('<tool_call>\n{"name": "get_weather", "arguments": {"city": '
                   '"Paris"}}\n</tool_call><|im_end|>'
                   "It is 18 C in Paris.<|im_end|>")
    call = {"name": "get_weather", "arguments": '{"city": "Paris"}'}
    as_string = [{**d, "tool_calls": [{"type": "function", "function": call}]}
                 if d.get("tool_calls") else d for d in dicts]
    assert tok.apply_chat_template(as_string, tools=TOOLS, tokenize=False) == r.text
    # without tools nothing changes: plain ChatML
    assert render(tok, CHAT).text.startswith("<|im_start|>user\nWhat is 2+2?<|im_end|>\n")
    assert not [c.name for c in diagnose(tok) if not c.ok]


def test_a_template_that_drops_tool_calls_is_an_error(tokenizer):
    from chattune.errors import TemplateError

    tok = copy.deepcopy(tokenizer)
    with pytest.raises(TemplateError,
                       match="message 1 \\(assistant\\): the chat template does not write its tool "
                                            "call to 'get_weather'"):
        render(tok, TOOL_CHAT, tools=TOOLS, template="phi3")
