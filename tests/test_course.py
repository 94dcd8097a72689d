"""The course's code, with `from trl import` changed to `from chattune import`, runs as written.

tests/assets/course/exercises.md is the course's exercise page and sft_notebook.txt its SFT notebook
(huggingface/smol-course, Apache-2.0). Every code block or cell runs in order in one namespace,
except the `login()` block (it asks a person for a token).
The hub ids it names resolve to local stand-ins: transformers and datasets load a local directory
with the same relative path before asking the hub, so the test runs from a directory holding
`HuggingFaceTB/SmolLM2-135M` (a tiny model with SmolLM2's real tokenizer), `HuggingFaceTB/smoltalk`
and `openai/gsm8k`. The upload at the end reaches a recording stand-in for the hub's two API calls.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import json
import re
from pathlib import Path

import pytest
from conftest import ASSETS, ROOT, make_tiny_model

COURSE = ASSETS / "course"


def python_blocks(markdown: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", markdown, flags=re.S)


def notebook_cells(text: str) -> list[str]:
    """Code cells of a notebook exported as text: each follows an `In [None]:` line and runs to a
    blank line that is followed by prose (a blank line followed by a comment or a statement stays in
    the cell)."""
    cells = []
    for part in text.split("In [None]:\n")[1:]:
        lines = part.split("\n")
        end = next((i for i, line in enumerate(lines) if line == "" and not re.match(
            r"# |    |[A-Za-z_][\w.]*\s*(=|\()", lines[i + 1] if i + 1 < len(lines) else "")),
                   len(lines))
        cells.append("\n".join(lines[:end]))
    return cells


def run_as_chattune(blocks: list[str], source: str) -> tuple[dict, str]:
    """Run the blocks in order in one namespace, as a notebook does; returns the namespace and what
    printed."""
    namespace: dict = {"__name__": "__course__"}
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        for block in blocks:
            exec(compile(as_chattune(block), source, "exec"), namespace)  # noqa: S102 - the course's code
    return namespace, printed.getvalue()


def shown_outputs(markdown: str) -> list[str]:
    return [o.strip() for o in re.findall(r"\*\*Output:\*\*\n```\n(.*?)```", markdown, flags=re.S)]


def as_chattune(code: str) -> str:
    """The one change a TRL user makes."""
    return code.replace("from trl import", "from chattune import")


def write_hub_dataset(root: Path, configs: dict[str, dict[str, list[dict]]]) -> None:
    """A dataset directory laid out as on the hub: data files per config and split, named in
    README.md."""
    lines = ["---", "configs:"]
    for name, splits in configs.items():
        lines += [f"- config_name: {name}", "  data_files:"]
        for split, rows in splits.items():
            path = root / "data" / name / f"{split}.jsonl"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
            lines += [f"  - split: {split}", f"    path: data/{name}/{split}.jsonl"]
    (root / "README.md").write_text("\n".join([*lines, "---", ""]), encoding="utf-8")


def everyday_conversations(n: int) -> list[dict]:
    """smoltalk's everyday-conversations shape: a topic and a multi-turn `messages` chat."""
    words = [("dog", "perro"), ("water", "agua"), ("mother", "madre"), ("hello", "hola"),
             ("tree", "árbol")]
    rows = []
    for i in range(n):
        en, es = words[i % len(words)]
        rows.append({"full_topic": f"Language/Spanish/{en}", "messages": [
            {"role": "user", "content": "Hi there"},
            {"role": "assistant", "content": "Hello! How can I help you today?"},
            {"role": "user", "content": f"How do you say {en} in Spanish?"},
            {"role": "assistant", "content": f"{en.capitalize()} is '{es}' in Spanish."}]})
    return rows


@pytest.fixture
def course_dir(tmp_path, tokenizer, monkeypatch) -> Path:
    """A working directory where the course's hub ids name local stand-ins."""
    model_dir = tmp_path / "HuggingFaceTB" / "SmolLM2-135M"
    make_tiny_model(tokenizer).save_pretrained(model_dir, safe_serialization=True)
    tokenizer.save_pretrained(model_dir)
    chats = everyday_conversations(48)
    write_hub_dataset(tmp_path / "HuggingFaceTB" / "smoltalk", {
        "everyday-conversations": {"train": chats[:40], "test": chats[40:]},
        "all": {"train": chats[:40], "test": chats[40:]}})
    with gzip.open(ROOT / "data" / "gsm8k" / "train.jsonl.gz", "rt", encoding="utf-8") as f:
        gsm8k = [json.loads(line) for _, line in zip(range(12), f)]
    write_hub_dataset(tmp_path / "openai" / "gsm8k",
                      {"main": {"train": gsm8k[:8], "test": gsm8k[8:]}})
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "datasets-cache"))
    return tmp_path


@pytest.fixture
def hub_uploads(monkeypatch) -> list[dict]:
    """Record what would be sent to the hub (create_repo, upload_folder) instead of sending it."""
    from huggingface_hub import HfApi

    sent: list[dict] = []

    def create_repo(self, repo_id, **kwargs):
        sent.append({"call": "create_repo", "repo_id": repo_id, **kwargs})
        return type("RepoUrl", (), {"repo_id": repo_id})()

    def upload_folder(self, *, repo_id, folder_path, **kwargs):
        files = sorted(p.name for p in Path(folder_path).iterdir())
        card = (Path(folder_path) / "README.md").read_text(encoding="utf-8")
        sent.append({"call": "upload_folder", "repo_id": repo_id, "files": files, "card": card,
                     **kwargs})
        return f"https://huggingface.co/{repo_id}/commit/0"

    monkeypatch.setattr(HfApi, "create_repo", create_repo)
    monkeypatch.setattr(HfApi, "upload_folder", upload_folder)
    return sent


@pytest.mark.slow
def test_course_exercises_run_as_written(course_dir, hub_uploads):
    page = (COURSE / "exercises.md").read_text(encoding="utf-8")
    blocks = [b for b in python_blocks(page) if "login()" not in b]
    assert len(blocks) == 15 and sum("from trl import" in b for b in blocks) == 2
    namespace, out = run_as_chattune(blocks, "exercises.md")

    # the chat-template part prints what the course shows, token ids included (transformers 5
    # returns them in a dict, `{'input_ids': [...], ...}`, where the course's version printed the
    # bare list)
    for shown in shown_outputs(page):
        assert shown.removeprefix("Conversation tokenized: ") in out, shown
    # the SFT part: trained as configured (max_steps=1000, checkpoints every 100), saved, and
    # uploaded
    trainer = namespace["trainer"]
    assert trainer.records[-1]["step"] == 1000
    assert sum(1 for r in trainer.records if "eval_loss" in r) == 20
    saved = {p.name for p in Path("sft_output").glob("checkpoint-*")}
    assert saved == {f"checkpoint-{step}" for step in range(100, 1001, 100)}
    losses = [r["loss"] for r in trainer.records if "loss" in r]
    assert losses[-1] < 0.8 * losses[0]
    assert (Path("SmolLM2-FT-MyDataset") / "model.safetensors").is_file()
    upload = hub_uploads[-1]
    assert upload["repo_id"] == "SmolLM2-FT-MyDataset" and "model.safetensors" in upload["files"]
    assert "- smol-course" in upload["card"] and "- module_1" in upload["card"]
    assert "Before training:" in out


def expected_device() -> str:
    """What the notebook's own device cell chooses on this machine."""
    import torch

    return ("cuda" if torch.cuda.is_available() else "mps"
            if torch.backends.mps.is_available() else "cpu")


@pytest.mark.slow
def test_course_sft_notebook_runs_as_written(course_dir):
    cells = notebook_cells((COURSE / "sft_notebook.txt").read_text(encoding="utf-8"))
    assert (len(cells) == 11
            and cells[0].count("from trl import SFTConfig, SFTTrainer, setup_chat_format") == 1)
    assert (cells[3].endswith('finetune_name = "SmolLM2-FT-MyDataset"')
            and cells[-1].endswith("(finetune_name)"))
    namespace, out = run_as_chattune(cells, "sft_notebook.txt")
    # the notebook picks its own device (cuda, else mps, else cpu); the trainer trains where the
    # model is
    assert f"Using device: {expected_device()}" in out
    assert "'full_topic': 'Language/Spanish/dog'" in out and "Before training:" in out
    trainer = namespace["trainer"]
    assert trainer.records[-1]["step"] == 1000 and sum(1 for r in trainer.records
                                                       if "eval_loss" in r) == 20
    assert (Path("SmolLM2-FT-MyDataset") / "model.safetensors").is_file()
    assert len(list(Path("sft_output").glob("checkpoint-*"))) == 10
