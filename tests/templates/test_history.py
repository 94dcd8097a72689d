"""What templates do with history, said in words (doctor, render), and the built-ins that rewrite
it: qwen3's reasoning kept only after the last user message, llama3's JSON tool calls in `ipython`
turns."""

from __future__ import annotations

import copy

import pytest

from chattune.data.schema import Message
from chattune.templates import render, setup_chat_format
from chattune.templates.doctor import diagnose
from chattune.templates.history import history_notes

REASONING = [Message("user", "2+2?"),
             Message("assistant", "4.", extra={"reasoning_content": "Two and two."}),
             Message("user", "3+3?"),
             Message("assistant", "6.", extra={"reasoning_content": "Three and three."})]
CALL = {"id": "call1", "type": "function",
        "function": {"name": "get_weather", "arguments": {"city": "Paris"}}}
CITY = {"type": "object", "properties": {"city": {"type": "string"}}}
TOOLS = [{"type": "function",
          "function": {"name": "get_weather", "description": "Weather", "parameters": CITY}}]
TOOL_CHAT = [Message("user", "Weather in Paris?"), Message("assistant", "", tool_calls=[CALL]),
             Message("tool", '{"temp_c": 18}', extra={"tool_call_id": "call1"}),
             Message("assistant", "It is 18 C.")]
# Mistral Nemo's rule: the system prompt is written only into the last user turn of a prompt
SYSTEM_LAST = ("{% set sys = messages[0]['content'] if messages[0]['role'] == 'system' else '' %}"
               "{% set loop_messages = messages[1:] if sys else messages %}{% for m in "
               "loop_messages %}{% if m['role'] == 'user' %}{{ '[INST]' + ((sys + '\\n\\n') if "
               "loop.last and sys else '') + m['content'] + '[/INST]' }}{% else %}{{ m['content'] "
               "+ '<|im_end|>' }}{% endif %}{% endfor %}")


@pytest.fixture(scope="module")
def builtin(tokenizer):
    def make(name: str):
        tok = copy.deepcopy(tokenizer)
        setup_chat_format(None, tok, name)
        return tok
    return make


def trained_text(tok, r) -> str:
    return tok.decode([t for t in r.labels if t != -100])


def test_qwen3_keeps_only_the_last_turns_reasoning_and_says_so(builtin):
    tok = builtin("qwen3")
    r = render(tok, REASONING)
    assert "Two and two." not in r.text and "<think>\nThree and three.\n</think>\n\n6." in r.text
    assert trained_text(tok, r) == "4.<|im_end|><think>\nThree and three.\n</think>\n\n6.<|im_end|>"
    assert r.input_ids == tok.apply_chat_template([m.to_template_dict() for m in REASONING],
                                                  return_dict=False)
    notes = history_notes(tok, REASONING)
    assert any("reasoning of earlier assistant turns is dropped by this template (messages [1])"
               in n and "only the last turn's reasoning is trained (messages [3])" in n
               for n in notes), notes
    assert any("earlier turns render differently" in n for n in notes)
    checks = {c.name: c for c in diagnose(tok)}
    assert (checks["history"].ok and "reasoning of earlier assistant turns is dropped"
            in checks["history"].detail)


def test_qwen3_enable_thinking_false_writes_an_empty_think_block(builtin):
    tok = builtin("qwen3")
    prompt = render(tok, REASONING[:3], add_generation_prompt=True,
                    template_kwargs={"enable_thinking": False})
    assert prompt.text.endswith("<|im_start|>assistant\n<think>\n\n</think>\n\n")
    dicts = [m.to_template_dict() for m in REASONING[:3]]
    assert prompt.text == tok.apply_chat_template(dicts, tokenize=False, add_generation_prompt=True,
                                                  enable_thinking=False)
    assert render(tok, REASONING[:3],
                  add_generation_prompt=True).text.endswith("<|im_start|>assistant\n")


def test_chatml_trains_every_turns_reasoning(builtin):
    tok = builtin("chatml")
    r = render(tok, REASONING)
    assert trained_text(tok, r) == ("<think>\nTwo and two.\n</think>\n\n4.<|im_end|>"
                                    "<think>\nThree and three.\n</think>\n\n6.<|im_end|>")
    assert history_notes(tok,
                         REASONING) == ["reasoning of every assistant turn is rendered and trained"]
    assert history_notes(tok, [Message("user", "Hi"), Message("assistant", "Hello")]) == []


@pytest.mark.parametrize("name", ["qwen3", "llama3"])
def test_builtin_tool_calls_are_trained_and_equal_apply_chat_template(builtin, name):
    tok = builtin(name)
    messages = [Message("system", "Be brief."), *TOOL_CHAT]
    r = render(tok, messages, tools=TOOLS)
    dicts = [m.to_template_dict() for m in messages]
    assert r.input_ids == list(tok.apply_chat_template(dicts, tools=TOOLS, return_dict=False))
    got = trained_text(tok, r)
    if name == "llama3":
        assert (got
                == '{"name": "get_weather", "parameters": {"city": "Paris"}}<|eot_id|>It is 18 '
                   'C.<|eot_id|>')
        assert "<|start_header_id|>ipython<|end_header_id|>\n\n{\"temp_c\": 18}<|eot_id|>" in r.text
        assert (r.text.count("<|start_header_id|>system") == 1
                and '"name": "get_weather"' in r.text.split("user")[0])
    else:
        assert got == ('<tool_call>\n{"name": "get_weather", "arguments": {"city": '
                       '"Paris"}}\n</tool_call><|im_end|>'
                       "<think>\n\n</think>\n\nIt is 18 C.<|im_end|>")
        assert ("<|im_start|>user\n<tool_response>\n{\"temp_c\": "
                "18}\n</tool_response><|im_end|>") in r.text


def test_llama3_accepts_the_ipython_role(builtin):
    tok = builtin("llama3")
    messages = [*TOOL_CHAT[:2], Message("ipython", '{"temp_c": 18}'), TOOL_CHAT[3]]
    assert render(tok, messages, tools=TOOLS).text == render(tok, TOOL_CHAT, tools=TOOLS).text


def test_a_system_prompt_written_only_into_prompts_is_named(tokenizer):
    messages = [Message("system", "Be brief."), *REASONING]
    notes = history_notes(tokenizer, messages, template=SYSTEM_LAST)
    assert any("the system message (message 0) is not in the training rendering" in n
               and "only into generation prompts" in n for n in notes), notes
    assert any("the generation prompt before message" in n for n in notes)
    assert any("reasoning is not rendered by this template" in n for n in notes)


def test_render_command_explains_history(tmp_path, tiny_model_dir, capsys):
    import json

    from chattune.cli import main

    data = tmp_path / "r.jsonl"
    data.write_text(json.dumps({"messages": [m.to_template_dict() for m in REASONING]}) + "\n")
    assert main(["render", "--model", str(tiny_model_dir), "--data", str(data), "--template",
                 "qwen3", "--template-kwargs", '{"enable_thinking": true}']) == 0
    out = capsys.readouterr().out
    assert "reasoning of earlier assistant turns is dropped" in out
    assert main(["render", "--model", str(tiny_model_dir), "--data", str(data), "--line", "1"]) == 0
    assert main(["render", "--model", str(tiny_model_dir), "--data", str(data), "--line", "2"]) == 1
    assert "no row starts on line 2" in capsys.readouterr().err
    assert main(["render", "--model", str(tiny_model_dir), "--data", str(data), "--template-kwargs",
                 "[1]"]) == 1
    assert "--template-kwargs expects a JSON object" in capsys.readouterr().err


def test_template_kwargs_reach_generation_prompts(builtin):
    from chattune.generate import _prompt_ids

    tok = builtin("qwen3")
    off = tok.decode(_prompt_ids(tok, REASONING[:3], None, {"enable_thinking": False}))
    assert off.endswith("<|im_start|>assistant\n<think>\n\n</think>\n\n")
    assert tok.decode(_prompt_ids(tok, REASONING[:3], None)).endswith("<|im_start|>assistant\n")
