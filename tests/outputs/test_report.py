"""report.html: written after training, self-contained, and whole when a real headless browser
renders it."""

import importlib.util
import shutil

import pytest
from conftest import ROOT

import chattune

COLUMNS = {"question": "user", "answer": "assistant"}


def test_report_after_training(tmp_path, tiny_model_dir, gsm8k_small):
    compare = {"data": str(gsm8k_small), "columns": COLUMNS, "num_samples": 2, "max_new_tokens": 4,
               "batch_size": 2}
    cfg = chattune.build_config({"model": str(tiny_model_dir), "output_dir": str(tmp_path / "out"),
                                 "merge": False, "data": {"train": str(gsm8k_small),
                                                          "columns": COLUMNS, "test_size": 2},
                                 "max_steps": 3, "eval_steps": 3, "per_device_train_batch_size": 2,
                                 "compare": compare, "eval_generations": 1,
                                 "eval_max_new_tokens": 4})
    chattune.run_training(cfg)
    out = tmp_path / "out"
    page = (out / "report.html").read_text()
    for section in ("Summary", "Curves", "Eval metrics", "Eval answers during training",
                    "Before / after", "Data", "Timings", "Resolved config"):
        assert f"<h2>{section}</h2>" in page, section
    assert page.count('src="data:image/png;base64,') == 3 and "http" not in page.split("<body>")[1]
    for png in ("loss.png", "learning_rate.png", "grad_norm.png"):
        assert (out / png).stat().st_size > 1000

    if not any(shutil.which(b) for b in ("chromium", "chromium-browser", "google-chrome")):
        pytest.skip("no Chromium here (Debian: apt-get install chromium); scripts/check_report.py "
                    "does the same")
    spec = importlib.util.spec_from_file_location("check_report",
                                                  ROOT / "scripts" / "check_report.py")
    check = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(check)
    assert check.rendered_images(out / "report.html") == (3, 3)


def test_tensorboard_receives_the_metrics(tmp_path, tiny_model_dir, gsm8k_small):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    cfg = chattune.build_config({"model": str(tiny_model_dir), "output_dir": str(tmp_path / "out"),
                                 "merge": False, "data": {"train": str(gsm8k_small),
                                                          "columns": COLUMNS, "test_size": 2},
                                 "max_steps": 2, "eval_steps": 2, "per_device_train_batch_size": 2,
                                 "eval_generations": 0, "report_to": ["tensorboard"]})
    result = chattune.run_training(cfg)
    events = EventAccumulator(str(tmp_path / "out" / "tensorboard"))
    events.Reload()
    losses = [e.value for e in events.Scalars("train/loss")]
    assert losses == pytest.approx([r["loss"] for r in result.records if "loss" in r])
    assert [e.step for e in events.Scalars("eval/loss")] == [2]
