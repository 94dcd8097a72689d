"""Built-in chat templates as Jinja strings, rendered exactly as transformers' apply_chat_template renders them.

Each is prefix-preserving (rendering k messages is a prefix of rendering k+1), which exact masks rely on.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class BuiltinTemplate:
    """A named template plus the special tokens it needs and the token that ends an assistant turn."""

    name: str
    jinja: str
    special_tokens: tuple[str, ...]
    end_of_turn: str | None  # None: the tokenizer's eos_token
    bos_token: str | None = None  # set as the tokenizer's bos where the template has its own


# Tools and tool calls as Qwen 2.5 / Hermes write them in ChatML: the tool signatures in the system turn,
# each call as JSON inside <tool_call> tags in the assistant turn (trained with it), results in a `tool` turn.
_CHATML_TOOLS = (
    "{% if tools %}{{ '<|im_start|>system\n' }}{% if messages[0]['role'] == 'system' %}"
    "{{ messages[0]['content'] + '\n\n' }}{% endif %}{{ '# Tools\n\nYou may call one or more functions to assist "
    "with the user query.\n\nYou are provided with function signatures within <tools></tools> XML tags:\n<tools>' }}"
    "{% for tool in tools %}{{ '\n' + tool | tojson }}{% endfor %}{{ '\n</tools>\n\nFor each function call, return "
    "a json object with function name and arguments within <tool_call></tool_call> XML tags:\n<tool_call>\n"
    "{\"name\": <function-name>, \"arguments\": <args-json-object>}\n</tool_call><|im_end|>\n' }}{% endif %}"
)
_CHATML_CALLS = (
    "{% if message['tool_calls'] is defined and message['tool_calls'] %}{% for call in message['tool_calls'] %}"
    "{% set f = call['function'] if call['function'] is defined else call %}"
    "{% if message['content'] or not loop.first %}{{ '\n' }}{% endif %}"
    "{{ '<tool_call>\n{\"name\": \"' + f['name'] + '\", \"arguments\": ' }}"
    "{% if f['arguments'] is string %}{{ f['arguments'] }}{% else %}{{ f['arguments'] | tojson }}{% endif %}"
    "{{ '}\n</tool_call>' }}{% endfor %}{% endif %}"
)
CHATML = BuiltinTemplate(
    "chatml",
    _CHATML_TOOLS + "{% for message in messages %}{% if not (tools and loop.first and message['role'] == 'system') %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + (message['content'] or '') }}" + _CHATML_CALLS +
    "{{ '<|im_end|>' + '\n' }}{% endif %}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}"
    "{% endif %}",
    ("<|im_start|>", "<|im_end|>"),
    "<|im_end|>",
)

LLAMA3 = BuiltinTemplate(
    "llama3",
    "{{ bos_token }}{% for message in messages %}{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>"
    "\n\n' + message['content'] | trim + '<|eot_id|>' }}{% endfor %}{% if add_generation_prompt %}"
    "{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}",
    ("<|begin_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"),
    "<|eot_id|>",
    "<|begin_of_text|>",
)

# Mistral folds a system message into the first user turn, as its own template does.
MISTRAL = BuiltinTemplate(
    "mistral",
    "{{ bos_token }}{% for message in messages %}{% if message['role'] == 'system' %}"
    "{% elif message['role'] == 'user' %}{% if loop.index0 == 1 and messages[0]['role'] == 'system' %}"
    "{{ '[INST] ' + messages[0]['content'] + '\n\n' + message['content'] + ' [/INST]' }}{% else %}"
    "{{ '[INST] ' + message['content'] + ' [/INST]' }}{% endif %}{% elif message['role'] == 'assistant' %}"
    "{{ message['content'] + eos_token }}{% else %}{{ '[INST] ' + message['content'] + ' [/INST]' }}{% endif %}"
    "{% endfor %}",
    (),
    None,
)

GEMMA = BuiltinTemplate(
    "gemma",
    "{{ bos_token }}{% for message in messages %}{% if message['role'] == 'assistant' %}{% set role = 'model' %}"
    "{% else %}{% set role = message['role'] %}{% endif %}{{ '<start_of_turn>' + role + '\n' + "
    "message['content'] | trim + '<end_of_turn>\n' }}{% endfor %}{% if add_generation_prompt %}"
    "{{ '<start_of_turn>model\n' }}{% endif %}",
    ("<start_of_turn>", "<end_of_turn>"),
    "<end_of_turn>",
)

PHI3 = BuiltinTemplate(
    "phi3",
    "{% for message in messages %}{{ '<|' + message['role'] + '|>\n' + message['content'] + '<|end|>\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|assistant|>\n' }}{% endif %}",
    ("<|system|>", "<|user|>", "<|assistant|>", "<|tool|>", "<|end|>"),
    "<|end|>",
)

ZEPHYR = BuiltinTemplate(
    "zephyr",
    "{% for message in messages %}{{ '<|' + message['role'] + '|>\n' + message['content'] + eos_token + '\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|assistant|>\n' }}{% endif %}",
    ("<|system|>", "<|user|>", "<|assistant|>", "<|tool|>"),
    None,
)

ALPACA = BuiltinTemplate(
    "alpaca",
    "{% for message in messages %}{% if message['role'] == 'system' %}{{ message['content'] + '\n\n' }}"
    "{% elif message['role'] == 'assistant' %}{{ '### Response:\n' + message['content'] + eos_token + '\n\n' }}"
    "{% else %}{{ '### Instruction:\n' + message['content'] + '\n\n' }}{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}{{ '### Response:\n' }}{% endif %}",
    (),
    None,
)

# The format of the completion-only masking notebook; its generation prompt ends before the space, so the
# first answer token carries the space, exactly as in training.
HUMAN_ASSISTANT = BuiltinTemplate(
    "human_assistant",
    "{% for message in messages %}{% if message['role'] == 'system' %}{{ message['content'] }}"
    "{% elif message['role'] == 'assistant' %}{{ '\n\n### Assistant: ' + message['content'] + eos_token }}"
    "{% else %}{{ '\n\n### Human: ' + message['content'] }}{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}{{ '\n\n### Assistant:' }}{% endif %}",
    (),
    None,
)

BUILTIN_TEMPLATES: dict[str, BuiltinTemplate] = {
    t.name: t for t in (CHATML, LLAMA3, MISTRAL, GEMMA, PHI3, ZEPHYR, ALPACA, HUMAN_ASSISTANT)
}
