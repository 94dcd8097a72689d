"""The fault and bad-input corpus of issue 19, through the CLI: each case ends in exit code 1 (130 on Ctrl-C) with
a message naming the cause, no traceback, and nothing already written is lost."""


import yaml

from chattune.cli import main

COLUMNS = {"question": "user", "answer": "assistant"}


def config_file(tmp_path, model_dir, data, name="run", **extra):
    """A tiny run's config; `data`: a file, or the whole data section."""
    data = data if isinstance(data, dict) else {"train": str(data), "columns": COLUMNS}
    cfg = {"model": str(model_dir), "data": data, "finetuning": "lora",
           "output_dir": str(tmp_path / name), "max_steps": 4, "per_device_train_batch_size": 2, "logging_steps": 1,
           "learning_rate": 1e-3, "max_length": 256, "merge": False, **extra}
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def failed(capsys, argv: list[str], code: int = 1) -> str:
    """Run the CLI, expect exit `code` and a message without a traceback; return stderr."""
    assert main(argv) == code
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return err


# -- no training data after preparation: an error before the loop, not an endless one


def test_every_row_dropped_by_truncation_is_an_error(tmp_path, tiny_model_dir, gsm8k_small, capsys):
    data = {"train": str(gsm8k_small), "columns": COLUMNS, "truncation": "drop"}
    cfg = config_file(tmp_path, tiny_model_dir, data, max_length=8)
    err = failed(capsys, ["train", str(cfg)])
    assert "data.train: no examples left after preparation: 12 rows read" in err
    assert "12 dropped (truncation: drop, max_length 8)" in err and "too_long" in err


def test_every_row_bad_and_skipped_is_an_error(tmp_path, tiny_model_dir, capsys):
    data = tmp_path / "bad.jsonl"
    data.write_text('{"question": "q"}\n{"question": "q2"}\n')
    cfg = config_file(tmp_path, tiny_model_dir, {"train": str(data), "columns": COLUMNS, "on_bad_row": "skip"})
    err = failed(capsys, ["train", str(cfg)])
    assert "data.train: no examples left after preparation: 2 rows read, 2 bad and skipped" in err
    assert not (tmp_path / "run" / "metrics.jsonl").exists()
