"""CLI smoke tests on a tiny model: every subcommand runs, errors are messages with exit code 1."""

import json
import re

import pytest
import yaml
from conftest import ROOT

from chattune.cli import build_parser, main


def test_help_for_every_subcommand(capsys):
    parser = build_parser()
    commands = parser._subparsers._group_actions[0].choices
    assert {"train", "chat", "merge", "render"} <= set(commands)
    for name in [None, *commands]:
        with pytest.raises(SystemExit) as e:
            main([name, "--help"] if name else ["--help"])
        assert e.value.code == 0
        out = capsys.readouterr().out
        assert "usage: chattune" in out


def write_config(tmp_path, model_dir, data, **extra):
    columns = {"question": "user", "answer": "assistant"}
    cfg = {"model": str(model_dir), "data": {"train": str(data), "columns": columns},
           "finetuning": "lora", "output_dir": str(tmp_path / "out"), "max_steps": 4,
           "per_device_train_batch_size": 4, "logging_steps": 1, "learning_rate": 1e-3,
           "max_length": 256, **extra}
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_train_chat_merge_render(tmp_path, tiny_model_dir, gsm8k_small, capsys):
    compare = {"data": str(gsm8k_small), "columns": {"question": "user", "answer": "assistant"},
               "num_samples": 3, "max_new_tokens": 8, "batch_size": 3, "show": 1}
    cfg = write_config(tmp_path, tiny_model_dir, gsm8k_small, compare=compare)
    assert main(["train", str(cfg), "--set", "max_steps=3"]) == 0
    out = tmp_path / "out"
    for name in ("metrics.jsonl", "loss.png", "config.yaml", "compare.json", "compare.jsonl",
                 "timings.json", "adapter/adapter_config.json", "adapter/adapter_model.safetensors",
                 "adapter/chat_template.jinja", "merged/model.safetensors", "merged/config.json"):
        assert (out / name).is_file(), name
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [1, 2, 3]
    summary = json.loads((out / "compare.json").read_text())
    assert set(summary) == {"base", "tuned"} and summary["base"]["n"] == 3
    assert "format compliance" in capsys.readouterr().out

    assert main(["chat", str(tiny_model_dir), "--adapter", str(out / "adapter"), "--prompt", "Hi",
                 "--max-new-tokens", "5"]) == 0
    assert main(["merge", str(tiny_model_dir), str(out / "adapter"),
                 str(tmp_path / "merged2")]) == 0
    assert "max logit difference" in capsys.readouterr().out
    assert (tmp_path / "merged2" / "model.safetensors").is_file()

    assert main(["render", str(tiny_model_dir), "--data", str(gsm8k_small), "--row", "2",
                 "--columns", "question=user", "answer=assistant"]) == 0
    shown = capsys.readouterr().out
    assert "[[" in shown and "<|im_end|>]]" in shown and "trained" in shown


def test_chat_interactive_keeps_conversation(tiny_model_dir, monkeypatch, capsys):
    lines = iter(["Hello", "/reset", "Again", "/exit"])
    monkeypatch.setattr("builtins.input", lambda prompt="": next(lines))
    assert main(["chat", str(tiny_model_dir), "--max-new-tokens", "3", "--system",
                 "Be brief."]) == 0
    assert capsys.readouterr().out.count("assistant>") == 2


def test_config_errors_are_listed_not_raised(tmp_path, tiny_model_dir, gsm8k_small, capsys):
    cfg = write_config(tmp_path, tiny_model_dir, gsm8k_small, learning_rate=-1, bogus_key=1)
    assert main(["train", str(cfg), "--set", "lora.r=0"]) == 1
    err = capsys.readouterr().err
    assert "learning_rate" in err and "bogus_key: unknown key" in err and "lora.r" in err
    assert "Traceback" not in err
    assert not (tmp_path / "out").exists()  # rejected before any work


def test_bad_data_row_is_named(tmp_path, tiny_model_dir, capsys):
    data = tmp_path / "d.jsonl"
    data.write_text('{"question": "q", "answer": "a"}\n{"question": "q2"}\n')
    cfg = write_config(tmp_path, tiny_model_dir, data)
    assert main(["train", str(cfg)]) == 1
    err = capsys.readouterr().err
    assert "d.jsonl, line 2" in err and "answer" in err


def test_missing_model_is_a_message(tmp_path, capsys):
    assert main(["chat", str(tmp_path / "nope.gguf"), "--prompt", "hi"]) == 1
    assert "GGUF file not found" in capsys.readouterr().err


def test_demo_config_names_shipped_files():
    cfg = yaml.safe_load((ROOT / "configs" / "gsm8k-demo.yaml").read_text())
    assert (ROOT / cfg["data"]["train"]).is_file() and (ROOT / cfg["compare"]["data"]).is_file()
    assert (ROOT / "data" / "gsm8k" / "LICENSE").is_file()


def test_full_finetuning_saves_a_model(tmp_path, tiny_model_dir, gsm8k_small):
    cfg = write_config(tmp_path, tiny_model_dir, gsm8k_small, finetuning="full", save_steps=2,
                       lr_scheduler_type="linear")
    assert main(["train", str(cfg)]) == 0
    out = tmp_path / "out"
    assert ((out / "model" / "model.safetensors").is_file()
            and (out / "model" / "chat_template.jinja").is_file())
    assert (out / "checkpoint-2" / "model.safetensors").is_file()
    assert not (out / "merged").exists() and not (out / "adapter").exists()
    assert main(["chat", str(out / "model"), "--prompt", "Hi", "--max-new-tokens", "3"]) == 0


def test_doctor_command(tmp_path, tiny_model_dir, gsm8k_small, capsys):
    assert main(["doctor", str(tiny_model_dir), "--data", str(gsm8k_small),
                 "--columns", "question=user", "answer=assistant"]) == 0
    out = capsys.readouterr().out
    assert "exact masks" in out and "end-of-turn trained" in out and "FAIL" not in out
    flat = re.sub(r"[\s│]", "", out)  # the table folds long details over lines
    assert "history" in out and "reasoningisnotrenderedbythistemplate" in flat
    assert main(["doctor", str(tiny_model_dir), "--template",
                 "{% for m in messages %}{{ m['content'] }}{% endfor %}"]) == 1
    assert "FAIL" in capsys.readouterr().out


def test_builtin_template_from_config_is_saved_with_the_adapter(
        tmp_path, tiny_model_dir, gsm8k_small):
    cfg = write_config(tmp_path, tiny_model_dir, gsm8k_small, template="llama3", max_steps=2)
    assert main(["train", str(cfg)]) == 0
    from chattune.model.load import load_tokenizer
    from chattune.templates import BUILTIN_TEMPLATES, end_of_turn

    tok = load_tokenizer(tmp_path / "out" / "adapter")
    assert (tok.chat_template == BUILTIN_TEMPLATES["llama3"].jinja
            and end_of_turn(tok) == "<|eot_id|>")
    assert main(["chat", str(tiny_model_dir), "--adapter", str(tmp_path / "out" / "adapter"),
                 "--prompt", "Hi", "--max-new-tokens", "3"]) == 0


def test_eval_and_generate_commands(tmp_path, tiny_model_dir, gsm8k_small, capsys):
    cols = ["--columns", "question=user", "answer=assistant"]
    out_json = tmp_path / "eval.json"
    assert main(["eval", str(tiny_model_dir), "--data", str(gsm8k_small), *cols, "--num-samples",
                 "4", "--max-new-tokens", "6", "--out", str(out_json)]) == 0
    results = json.loads(out_json.read_text())
    m = results["metrics"]
    assert m["rows"] == 4 and m["eval_loss"] > 5 and m["eval_perplexity"] > 100  # a random model
    assert 0 <= m["format_compliance"] <= 1 and len(results["generations"]) == 4
    assert "eval_loss" in capsys.readouterr().out
    gen = tmp_path / "gen.jsonl"
    assert main(["generate", str(tiny_model_dir), "--data", str(gsm8k_small), *cols,
                 "--num-samples", "3", "--max-new-tokens", "4", "--out", str(gen)]) == 0
    rows = [json.loads(line) for line in gen.read_text().splitlines()]
    assert len(rows) == 3 and rows[0]["messages"][-1]["role"] == "user" and "generation" in rows[0]


@pytest.fixture
def saved_adapter(tmp_path, tokenizer):
    from chattune.config import build_config
    from chattune.model.lora import apply_lora
    from chattune.model.tiny import make_tiny_model

    path = tmp_path / "adapter"
    apply_lora(make_tiny_model(tokenizer),
               build_config({"data": {"train": "x"}}).lora).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def test_merge_refuses_a_non_empty_out_unless_overwrite(tmp_path, tiny_model_dir, saved_adapter,
                                                        capsys):
    out = tmp_path / "merged"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    assert main(["merge", str(tiny_model_dir), str(saved_adapter), str(out)]) == 1
    err = capsys.readouterr().err
    assert "is not empty" in err and "--overwrite" in err and "Traceback" not in err
    assert ((out / "notes.txt").read_text() == "mine"
            and sorted(p.name for p in out.iterdir()) == ["notes.txt"])

    assert main(["merge", str(tiny_model_dir), str(saved_adapter), str(saved_adapter),
                 "--overwrite"]) == 1
    assert "would replace the input" in capsys.readouterr().err
    assert (saved_adapter / "adapter_config.json").is_file()

    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["merge", str(tiny_model_dir), str(saved_adapter), str(empty)]) == 0
    assert (empty / "model.safetensors").is_file()
    assert main(["merge", str(tiny_model_dir), str(saved_adapter), str(out), "--overwrite"]) == 0
    assert (out / "model.safetensors").is_file() and not (out / "notes.txt").exists()
