"""A newcomer's first runs: paths read against the config file, checks before the model loads,
nothing left behind by a failed run, a finished run never replaced without being asked, a run that
names itself."""

import json

import pytest
import yaml

from chattune.cli import main
from chattune.config import load_config


def write_config(folder, model_dir, data, **extra):
    data = (data if isinstance(data, dict)
            else {"train": data, "columns": {"question": "user", "answer": "assistant"}})
    cfg = {"model": str(model_dir), "data": data,
           "output_dir": str(folder / "out"), "max_steps": 2, "per_device_train_batch_size": 4,
           "logging_steps": 1, "max_length": 256, "merge": False, **extra}
    path = folder / "my.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_config_paths_are_read_against_the_config_folder(tmp_path, tiny_model_dir, gsm8k_small,
                                                         monkeypatch):
    trial = tmp_path / "trial"
    trial.mkdir()
    (trial / "chats.jsonl").write_bytes(gsm8k_small.read_bytes())
    cfg_path = write_config(trial, tiny_model_dir, "chats.jsonl")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert load_config(cfg_path).data.train == str(trial / "chats.jsonl")
    assert main(["train", str(cfg_path)]) == 0
    assert (trial / "out" / "adapter" / "adapter_config.json").is_file()


def test_a_missing_file_is_named_by_its_absolute_path(tmp_path, tiny_model_dir, monkeypatch,
                                                      capsys):
    cfg_path = write_config(tmp_path, tiny_model_dir, "missing.jsonl")
    monkeypatch.chdir(tmp_path.parent)
    assert main(["train", str(cfg_path)]) == 1
    assert str(tmp_path / "missing.jsonl") in capsys.readouterr().err


def test_paths_relative_to_the_current_folder_still_work(tmp_path, tiny_model_dir, gsm8k_small,
                                                         monkeypatch):
    configs = tmp_path / "configs"
    configs.mkdir()
    monkeypatch.chdir(gsm8k_small.parent)
    cfg_path = write_config(configs, tiny_model_dir, gsm8k_small.name)
    assert load_config(cfg_path).data.train == str(gsm8k_small)


def test_hub_ids_stay_hub_ids(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({"model": "gpt2", "data": {"train": "owner/dataset"}}))
    cfg = load_config(path)
    assert cfg.model == "gpt2" and cfg.data.train == "owner/dataset"


@pytest.mark.parametrize("extra, expected", [
    ({"template": ""}, "template"),
    ({"data": {"train": "DATA", "columns": {"question": "user", "answer": "assistant"},
               "truncation": "drop"},
      "max_length": 16}, "no examples left after preparation"),
    ({"data": {"train": "DATA", "columns": {"question": "user", "answer": "nobody"}}},
     "data.columns"),
])
def test_a_failed_run_leaves_nothing_and_loads_no_model(tmp_path, tiny_model_dir, gsm8k_small,
                                                        monkeypatch, capsys, extra, expected):
    def no_model(*a, **k):
        raise AssertionError("the model was loaded before the config and data were checked")
    monkeypatch.setattr("chattune.model.load.load_model", no_model)
    monkeypatch.setattr("chattune.engine.base.load_model", no_model)
    extra = dict(extra)
    data = {**extra.pop("data"), "train": str(gsm8k_small)} if "data" in extra else str(gsm8k_small)
    cfg_path = write_config(tmp_path, tiny_model_dir, data, **extra)
    assert main(["train", str(cfg_path)]) == 1
    assert expected in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_resume_names_what_exists(tmp_path, tiny_model_dir, gsm8k_small, capsys):
    cfg_path = write_config(tmp_path, tiny_model_dir, str(gsm8k_small))
    assert main(["train", str(cfg_path), "--resume"]) == 1
    err = capsys.readouterr().err
    assert "nothing to resume" in err and "does not exist" in err
    assert not (tmp_path / "out").exists()

    assert main(["train", str(cfg_path), "--set", "save_steps=1"]) == 0
    out = tmp_path / "out"
    assert main(["train", str(cfg_path), "--resume", str(out / "checkpoint-7")]) == 1
    err = capsys.readouterr().err
    assert "checkpoint-7 does not exist" in err and f"checkpoints in {out}: checkpoint-1" in err


def test_a_finished_run_is_not_replaced(tmp_path, tiny_model_dir, gsm8k_small, capsys):
    cfg_path = write_config(tmp_path, tiny_model_dir, str(gsm8k_small))
    assert main(["train", str(cfg_path)]) == 0
    out = tmp_path / "out"
    kept = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert out / "report.html" in kept and out / "adapter" / "adapter_model.safetensors" in kept
    capsys.readouterr()
    assert main(["train", str(cfg_path), "--set", "learning_rate=0.1"]) == 1
    err = capsys.readouterr().err
    assert ("holds the outputs of an earlier run (adapter/, report.html" in err
            and "--overwrite_output_dir" in err)
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == kept

    assert main(["train", str(cfg_path), "--set", "learning_rate=0.1",
                 "--overwrite_output_dir"]) == 0
    assert "removing the earlier run's outputs" in capsys.readouterr().out
    assert yaml.safe_load((out / "config.yaml").read_text())["learning_rate"] == 0.1


def test_the_run_names_itself(tmp_path, tiny_model_dir, gsm8k_small, capsys):
    data = {"train": str(gsm8k_small), "columns": {"question": "user", "answer": "assistant"},
            "test_size": 4}
    cfg_path = write_config(tmp_path, tiny_model_dir, data, eval_steps=2, eval_generations=2,
                            eval_max_new_tokens=4)
    assert main(["train", str(cfg_path)]) == 0
    first = capsys.readouterr().out.splitlines()[:8]
    said = "\n".join(first)
    for part in ("chattune ", f"model: {tiny_model_dir}", "method: lora (r ",
                 "template: the tokenizer's own", f"data: {gsm8k_small}",
                 "device: cpu, precision: "):
        assert part in said, (part, first)
    out = tmp_path / "out"
    info = json.loads((out / "run.json").read_text())
    assert info["model"] == str(tiny_model_dir) and info["data"] == [str(gsm8k_small)]
    report = (out / "report.html").read_text()
    assert "<h2>Run</h2>" in report and "the tokenizer&#x27;s own" in report
    assert "{&#x27;" not in report  # no Python reprs of dicts
    answers = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    generations = [g for r in answers if "generations" in r for g in r["generations"]]
    assert generations and all("<|im_start|>" not in g["prompt"]
                               and g["prompt"].startswith(("user: ", "system: "))
                               and g["reference"] for g in generations)
    assert "reference answer" in report


