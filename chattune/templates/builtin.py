"""Built-in chat templates as Jinja strings, rendered exactly as transformers' apply_chat_template
renders them.

All but `qwen3` are prefix-preserving (rendering k messages is a prefix of rendering k+1); `qwen3`
rewrites history as Qwen3 does (the reasoning of turns before the last user message is dropped).
Masks do not depend on either: they come from the whole conversation's rendering (spans.py).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class BuiltinTemplate:
    """A named template plus the special tokens it needs and the token that ends an assistant
    turn."""

    name: str
    jinja: str
    special_tokens: tuple[str, ...]
    end_of_turn: str | None  # None: the tokenizer's eos_token
    bos_token: str | None = None  # set as the tokenizer's bos where the template has its own


# Tools and tool calls as Qwen 2.5 / Hermes write them in ChatML: the tool signatures in the system
# turn, each call as JSON inside <tool_call> tags in the assistant turn (trained with it), results
# in a `tool` turn.
_CHATML_TOOLS = (
    "{% if tools %}{{ '<|im_start|>system\n' }}{% if messages[0]['role'] == 'system' %}"
    "{{ messages[0]['content'] + '\n\n' }}{% endif %}{{ '# Tools\n\nYou may call one or more "
    "functions to assist with the user query.\n\nYou are provided with function signatures within "
    "<tools></tools> XML tags:\n<tools>' }}{% for tool in tools %}{{ '\n' + tool | tojson }}{% "
    "endfor %}{{ '\n</tools>\n\nFor each function call, return a json object with function name "
    "and arguments within <tool_call></tool_call> XML tags:\n<tool_call>\n{\"name\": "
    "<function-name>, \"arguments\": <args-json-object>}\n</tool_call><|im_end|>\n' }}{% endif %}"
)
_CHATML_CALLS = (
    "{% if message['tool_calls'] is defined and message['tool_calls'] %}{% for call in "
    "message['tool_calls'] %}{% set f = call['function'] if call['function'] is defined else call "
    "%}{% if message['content'] or not loop.first %}{{ '\n' }}{% endif %}"
    "{{ '<tool_call>\n{\"name\": \"' + f['name'] + '\", \"arguments\": ' }}"
    "{% if f['arguments'] is string %}{{ f['arguments'] }}{% else %}{{ f['arguments'] | tojson "
    "}}{% endif %}{{ '}\n</tool_call>' }}{% endfor %}{% endif %}"
)
# An assistant's reasoning (reasoning_content; chattune gives `thinking` and `reasoning` under that
# name too) in a <think> block before its content, as Qwen3 and DeepSeek-R1 write it
_THINK = (
    "{% set reasoning = message['reasoning_content'] if message['reasoning_content'] is string "
    "else '' %}"
)
CHATML = BuiltinTemplate(
    "chatml",
    _CHATML_TOOLS + "{% for message in messages %}{% if not (tools and loop.first and "
    "message['role'] == 'system') %}{{ '<|im_start|>' + message['role'] + '\n' }}" + _THINK +
    "{% if message['role'] == 'assistant' and reasoning %}{{ '<think>\n' + reasoning.strip('\n') + "
    "'\n</think>\n\n' }}{% endif %}{{ message['content'] or '' }}" + _CHATML_CALLS +
    "{{ '<|im_end|>' + '\n' }}{% endif %}{% endfor %}{% if add_generation_prompt %}{{ "
    "'<|im_start|>assistant\n' }}{% endif %}",
    ("<|im_start|>", "<|im_end|>"),
    "<|im_end|>",
)

# Qwen3: ChatML with tools, reasoning in <think> blocks kept only after the last user message (the
# last assistant turn always gets one, empty without reasoning), tool results as <tool_response> in
# a user turn, and `enable_thinking: false` writing an empty <think> block into the generation
# prompt
QWEN3 = BuiltinTemplate(
    "qwen3",
    _CHATML_TOOLS + "{% set ns = namespace(last_query=-1) %}{% for message in messages %}"
    "{% if message['role'] == 'user' %}{% set ns.last_query = loop.index0 %}{% endif %}{% endfor %}"
    "{% for message in messages %}{% if tools and loop.first and message['role'] == 'system' %}"
    "{% elif message['role'] == 'assistant' %}{{ '<|im_start|>assistant\n' }}" + _THINK +
    "{% if loop.index0 > ns.last_query and (loop.last or reasoning) %}"
    "{{ '<think>\n' + reasoning.strip('\n') + '\n</think>\n\n' }}{% endif %}{{ message['content'] "
    "or '' }}"
    + _CHATML_CALLS + "{{ '<|im_end|>\n' }}"
    "{% elif message['role'] == 'tool' %}{% if loop.first or messages[loop.index0 - 1]['role'] != "
    "'tool' %}{{ '<|im_start|>user' }}{% endif %}{{ '\n<tool_response>\n' + message['content'] + "
    "'\n</tool_response>' }}{% if loop.last or messages[loop.index0 + 1]['role'] != 'tool' %}{{ "
    "'<|im_end|>\n' }}{% endif %}{% else %}{{ '<|im_start|>' + message['role'] + '\n' + "
    "(message['content'] or '') + '<|im_end|>\n' }}{% endif %}{% endfor %}{% if "
    "add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% if enable_thinking is defined and "
    "enable_thinking is false %}{{ '<think>\n\n</think>\n\n' }}{% endif %}{% endif %}",
    ("<|im_start|>", "<|im_end|>"),
    "<|im_end|>",
)

# Llama 3.x with JSON tool calls as Llama 3.1/3.2 write them: the functions in the system turn, each
# call as {"name": ..., "parameters": ...} in the assistant turn, results in an `ipython` turn (role
# tool or ipython)
_LLAMA3_TOOLS = (
    "{% if tools %}{{ '<|start_header_id|>system<|end_header_id|>\n\n' }}{% if messages[0]['role'] "
    "== 'system' %}{{ messages[0]['content'] | trim + '\n\n' }}{% endif %}{{ 'You have access to "
    "the following functions. To call a function, respond with JSON for a function call in the "
    "form {\"name\": function name, \"parameters\": dictionary of argument name and its value}. Do "
    "not use variables.\n\n' }}{% for tool in tools %}{{ tool | tojson(indent=4) + '\n\n' }}{% "
    "endfor %}{{ '<|eot_id|>' }}{% endif %}"
)
_LLAMA3_CALLS = (
    "{% if message['tool_calls'] is defined and message['tool_calls'] %}{% for call in "
    "message['tool_calls'] %}{% set f = call['function'] if call['function'] is defined else call "
    "%}{% if message['content'] or not loop.first %}{{ '\n' }}{% endif %}"
    "{{ '{\"name\": \"' + f['name'] + '\", \"parameters\": ' }}"
    "{% if f['arguments'] is string %}{{ f['arguments'] }}{% else %}{{ f['arguments'] | tojson "
    "}}{% endif %}{{ '}' }}{% endfor %}{% endif %}"
)
LLAMA3 = BuiltinTemplate(
    "llama3",
    "{{ bos_token }}" + _LLAMA3_TOOLS + "{% for message in messages %}"
    "{% if not (tools and loop.first and message['role'] == 'system') %}"
    "{% set role = 'ipython' if message['role'] == 'tool' else message['role'] %}"
    "{{ '<|start_header_id|>' + role + '<|end_header_id|>\n\n' + (message['content'] or '') | trim "
    "}}"
    + _LLAMA3_CALLS + "{{ '<|eot_id|>' }}{% endif %}{% endfor %}{% if add_generation_prompt %}"
    "{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}",
    ("<|begin_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"),
    "<|eot_id|>",
    "<|begin_of_text|>",
)

# Mistral folds a system message into the first user turn, as its own template does.
MISTRAL = BuiltinTemplate(
    "mistral",
    "{{ bos_token }}{% for message in messages %}{% if message['role'] == 'system' %}"
    "{% elif message['role'] == 'user' %}{% if loop.index0 == 1 and messages[0]['role'] == "
    "'system' %}{{ '[INST] ' + messages[0]['content'] + '\n\n' + message['content'] + ' [/INST]' "
    "}}{% else %}{{ '[INST] ' + message['content'] + ' [/INST]' }}{% endif %}{% elif "
    "message['role'] == 'assistant' %}{{ message['content'] + eos_token }}{% else %}{{ '[INST] ' + "
    "message['content'] + ' [/INST]' }}{% endif %}{% endfor %}",
    (),
    None,
)

GEMMA = BuiltinTemplate(
    "gemma",
    "{{ bos_token }}{% for message in messages %}{% if message['role'] == 'assistant' %}{% set "
    "role = 'model' %}{% else %}{% set role = message['role'] %}{% endif %}{{ '<start_of_turn>' + "
    "role + '\n' + message['content'] | trim + '<end_of_turn>\n' }}{% endfor %}{% if "
    "add_generation_prompt %}{{ '<start_of_turn>model\n' }}{% endif %}",
    ("<start_of_turn>", "<end_of_turn>"),
    "<end_of_turn>",
)

PHI3 = BuiltinTemplate(
    "phi3",
    "{% for message in messages %}{{ '<|' + message['role'] + '|>\n' + message['content'] + "
    "'<|end|>\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|assistant|>\n' }}{% endif %}",
    ("<|system|>", "<|user|>", "<|assistant|>", "<|tool|>", "<|end|>"),
    "<|end|>",
)

ZEPHYR = BuiltinTemplate(
    "zephyr",
    "{% for message in messages %}{{ '<|' + message['role'] + '|>\n' + message['content'] + "
    "eos_token + '\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|assistant|>\n' }}{% endif "
    "%}",
    ("<|system|>", "<|user|>", "<|assistant|>", "<|tool|>"),
    None,
)

ALPACA = BuiltinTemplate(
    "alpaca",
    "{% for message in messages %}{% if message['role'] == 'system' %}{{ message['content'] + "
    "'\n\n' }}{% elif message['role'] == 'assistant' %}{{ '### Response:\n' + message['content'] + "
    "eos_token + '\n\n' }}{% else %}{{ '### Instruction:\n' + message['content'] + '\n\n' }}{% "
    "endif %}{% endfor %}{% if add_generation_prompt %}{{ '### Response:\n' }}{% endif %}",
    (),
    None,
)

# The format of the completion-only masking notebook; its generation prompt ends before the space,
# so the first answer token carries the space, exactly as in training.
HUMAN_ASSISTANT = BuiltinTemplate(
    "human_assistant",
    "{% for message in messages %}{% if message['role'] == 'system' %}{{ message['content'] }}"
    "{% elif message['role'] == 'assistant' %}{{ '\n\n### Assistant: ' + message['content'] + "
    "eos_token }}{% else %}{{ '\n\n### Human: ' + message['content'] }}{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}{{ '\n\n### Assistant:' }}{% endif %}",
    (),
    None,
)

BUILTIN_TEMPLATES: dict[str, BuiltinTemplate] = {
    t.name: t for t in (CHATML, QWEN3, LLAMA3, MISTRAL, GEMMA, PHI3, ZEPHYR, ALPACA,
                        HUMAN_ASSISTANT)
}
