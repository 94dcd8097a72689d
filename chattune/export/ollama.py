"""An Ollama Modelfile beside a GGUF: FROM, the chat template in Go's text/template (Ollama's
template language), the default system prompt, and a stop for each end-of-turn string. Chat
templates are Jinja; the built-in formats (ChatML, Llama 3, Mistral, Gemma, Phi-3, Zephyr, Alpaca,
`### Human:`) have exact Go equivalents for text turns, and a model's own template is recognised as
one of them by rendering probe conversations through both."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from chattune.data.schema import Message
from chattune.templates.builtin import BUILTIN_TEMPLATES
from chattune.templates.render import render_text
from chattune.templates.setup import stop_token_ids

# Go text/template over Ollama's .Messages (each .Role, .Content); EOS stands for the tokenizer's
# eos text. A dash ({{- ...) trims the literal text before it, so none stands after text that must
# keep its newlines. Jinja's `| trim` has no Go counterpart: Llama 3 and Gemma contents are taken as
# written.
GO_TEMPLATES = {
    "chatml": "{{- range .Messages }}<|im_start|>{{ .Role }}\n{{ .Content }}<|im_end|>\n{{ end }}"
              "<|im_start|>assistant\n",
    "llama3": "{{- range .Messages }}<|start_header_id|>{{ .Role }}<|end_header_id|>\n\n{{ "
              ".Content }}<|eot_id|>{{ end }}<|start_header_id|>assistant<|end_header_id|>\n\n",
    "mistral": '{{- $system := "" }}{{- range $i, $m := .Messages }}{{- if eq .Role "system" }}'
               "{{- if eq $i 0 }}{{ $system = .Content }}{{ end }}"
               '{{- else if eq .Role "assistant" }}{{ .Content }}EOS'
               "{{- else if and (eq $i 1) $system }}[INST] {{ $system }}\n\n{{ .Content }} [/INST]"
               "{{- else }}[INST] {{ .Content }} [/INST]{{- end }}{{- end }}",
    "gemma": '{{- range .Messages }}<start_of_turn>{{ if eq .Role "assistant" }}model{{ else }}{{ '
             '.Role }}{{ end }}\n'
             "{{ .Content }}<end_of_turn>\n{{ end }}<start_of_turn>model\n",
    "phi3": "{{- range .Messages }}<|{{ .Role }}|>\n{{ .Content }}<|end|>\n{{ end "
            "}}<|assistant|>\n",
    "zephyr": "{{- range .Messages }}<|{{ .Role }}|>\n{{ .Content }}EOS\n{{ end }}<|assistant|>\n",
    "alpaca": '{{- range .Messages }}{{ if eq .Role "system" }}{{ .Content }}\n\n'
              '{{ else if eq .Role "assistant" }}### Response:\n{{ .Content }}EOS\n\n'
              "{{ else }}### Instruction:\n{{ .Content }}\n\n{{ end }}{{ end }}### Response:\n",
    "human_assistant": '{{- range .Messages }}{{- if eq .Role "system" }}{{ .Content }}'
                       '{{- else if eq .Role "assistant" }}\n\n### Assistant: {{ .Content }}EOS'
                       "{{- else }}\n\n### Human: {{ .Content }}{{- end }}{{- end }}\n\n### "
                       "Assistant:",
}
# Mistral's format has no generation prompt: Ollama's prompt ends with the last [/INST]
NO_GENERATION_PROMPT = {"mistral"}
PROBES = [
    [Message("user", "Hi there")],
    [Message("system", "Be brief."), Message("user", "Name a colour."),
     Message("assistant", "Blue."), Message("user", "Another?")],
    [Message("user", "2+2?"), Message("assistant", "4"), Message("user", "3+3?")],
]
SYSTEM_MARK = "\u2063SYSTEM\u2063"


def _builtin_text(name: str, tokenizer: Any, messages: list[Message]) -> str:
    return render_text(tokenizer, messages, jinja=BUILTIN_TEMPLATES[name].jinja,
                       add_generation_prompt=True)


def _own_text(tokenizer: Any, messages: list[Message]) -> str:
    return render_text(tokenizer, messages, jinja=tokenizer.chat_template,
                       add_generation_prompt=True)


def _default_system(name: str, tokenizer: Any) -> str | None:
    """The system prompt the model's template inserts when a conversation has none (SmolLM2's), if
    any."""
    probe = [Message("user", "Hi there")]
    mine = _own_text(tokenizer, probe)
    marked = _builtin_text(name, tokenizer, [Message("system", SYSTEM_MARK), *probe])
    before, _, after = marked.partition(SYSTEM_MARK)
    if mine.startswith(before) and after in mine[len(before):]:
        system = mine[len(before):mine.index(after, len(before))]
        return system if system else None
    return None


def recognise(tokenizer: Any) -> tuple[str, str | None] | None:
    """(built-in name, default system prompt or None) whose rendering equals the model's own on
    every probe."""
    bos = tokenizer.bos_token or ""
    for name in GO_TEMPLATES:
        system = _default_system(name, tokenizer)
        ok = True
        for probe in PROBES:
            mine = _own_text(tokenizer, probe)
            with_system = (probe if probe[0].role == "system" or system is None
                           else [Message("system", system), *probe])
            theirs = _builtin_text(name, tokenizer, with_system)
            ok &= mine == theirs or (bos and mine.removeprefix(bos) == theirs.removeprefix(bos))
        if ok:
            return name, system
    return None


def adds_bos(tokenizer: Any) -> bool:
    """Whether tokenising adds BOS by itself (llama.cpp then adds it too, from the GGUF's
    add_bos_token)."""
    return (tokenizer.bos_token_id is not None and tokenizer("x").input_ids[:1]
            == [tokenizer.bos_token_id])


def go_template(name: str, tokenizer: Any) -> str:
    """The built-in format's Go template with the tokenizer's eos text, and its BOS text where the
    Jinja template writes one and tokenising does not add it."""
    bos = (tokenizer.bos_token
           if "bos_token" in BUILTIN_TEMPLATES[name].jinja and tokenizer.bos_token and
           not adds_bos(tokenizer) else "")
    return bos + GO_TEMPLATES[name].replace("EOS", tokenizer.eos_token or "")


def modelfile(gguf: Path, tokenizer: Any) -> tuple[str, str | None]:
    """(the Modelfile's text, a note where the model's template could not be translated)."""
    stops = [tokenizer.convert_ids_to_tokens(i) for i in stop_token_ids(tokenizer)]
    lines = [f"FROM ./{gguf.name}"]
    found = recognise(tokenizer)
    note = None
    if found:
        name, system = found
        lines.append(f'TEMPLATE """{go_template(name, tokenizer)}"""')
        if system:
            lines.append(f'SYSTEM """{system}"""')
    else:
        note = ("the model's chat template is not one of the built-in formats, so it has no Go "
                "translation here: Ollama will use the template it detects from the GGUF (check it "
                "with `ollama show --template`)")
        lines.append(f"# {note}")
    lines += [f'PARAMETER stop "{s}"' for s in stops]
    return "\n".join(lines) + "\n", note


def write_modelfile(gguf: Path, tokenizer: Any) -> tuple[Path, str | None]:
    """OUT.Modelfile beside OUT.gguf (`ollama create NAME -f OUT.Modelfile`)."""
    text, note = modelfile(gguf, tokenizer)
    path = gguf.with_suffix(".Modelfile")
    path.write_text(text, encoding="utf-8")
    return path, note
