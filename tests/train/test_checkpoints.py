"""Training you can leave running: kill and resume, NaN guard, failed saves, Ctrl-C, checkpoint
limits, trackers."""

import importlib.util
import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
import yaml
from conftest import ROOT, make_tiny_model

import chattune
from chattune.cli import main
from chattune.config import build_config
from chattune.errors import ConfigError, TrainingError, TrainingInterrupted
from chattune.outputs.checkpoint import Checkpointer, checkpoints, load_state
from chattune.prepare.examples import examples_from_file
from chattune.train.loop import train

COLUMNS = {"question": "user", "answer": "assistant"}


def losses(out_dir):
    records = [json.loads(line) for line in (out_dir / "metrics.jsonl").read_text().splitlines()]
    return {r["step"]: r["loss"] for r in records if "loss" in r}


def config_file(tmp_path, name, model_dir, data, **extra):
    cfg = {"model": str(model_dir), "data": {"train": str(data), "columns": COLUMNS},
           "output_dir": str(tmp_path / name), "max_steps": 40, "per_device_train_batch_size": 2,
           "logging_steps": 1, "learning_rate": 1e-3,
           "max_length": 256, "save_steps": 2, "lora": {"dropout": 0.1}, "merge": False,
           # fp32 whatever the CPU: resumed losses are compared at fp32 tolerances
           "bf16": False, **extra}
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_killed_run_resumes_with_the_same_losses(tmp_path, tiny_model_dir, gsm8k_small):
    uninterrupted = config_file(tmp_path, "a", tiny_model_dir, gsm8k_small)
    assert main(["train", str(uninterrupted)]) == 0
    expected = losses(tmp_path / "a")

    killed = config_file(tmp_path, "b", tiny_model_dir, gsm8k_small)
    env = {**os.environ, "CHATTUNE_CACHE": str(tmp_path / "cache"), "HF_HUB_OFFLINE": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "chattune", "train", str(killed)], cwd=ROOT,
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while not checkpoints(tmp_path / "b") and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    time.sleep(0.3)  # into a later step
    assert proc.poll() is None, "the run ended before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    saved = checkpoints(tmp_path / "b")
    assert saved and load_state(saved[-1]).step < 40

    assert main(["train", str(killed), "--resume"]) == 0
    resumed = losses(tmp_path / "b")
    assert sorted(resumed) == list(range(1, 41))
    for step, loss in expected.items():
        assert resumed[step] == pytest.approx(loss, rel=1e-5, abs=1e-6), step


def tiny_run(tmp_path, tokenizer, gsm8k_small, **extra):
    model = make_tiny_model(tokenizer)
    examples, _ = examples_from_file(str(gsm8k_small), tokenizer, columns=COLUMNS, max_length=256)
    cfg = build_config({"data": {"train": str(gsm8k_small)}, "finetuning": "full", "max_steps": 6,
                        "save_steps": 2, "per_device_train_batch_size": 2, "learning_rate": 1e-3,
                        "output_dir": str(tmp_path), **extra}).train_args()
    saver = Checkpointer(tmp_path, model, tokenizer, [tokenizer.eos_token_id],
                         limit=cfg.save_total_limit, keep_best=False)
    return model, examples, cfg, saver


def test_nan_loss_stops_before_the_weights_change(tmp_path, tokenizer, gsm8k_small):
    model, examples, cfg, saver = tiny_run(tmp_path, tokenizer, gsm8k_small)
    calls = {"n": 0}

    # from the third forward (step 3: one micro-batch per step) on: NaN
    def poison(module, args, output):
        calls["n"] += 1
        if calls["n"] <= 2:
            return None
        return ((output[0] * float("nan"), *output[1:]) if isinstance(output, tuple)
                else output * float("nan"))

    model.model.layers[0].register_forward_hook(poison)
    with pytest.raises(TrainingError) as e:
        train(model, examples, cfg, pad_id=tokenizer.pad_token_id, device=torch.device("cpu"),
              on_save=saver)
    message = str(e.value)
    assert ("training stopped at step 3" in message and "nan" in message
            and "checkpoint-2" in message)
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_failed_save_keeps_the_previous_checkpoint(tmp_path, tokenizer, gsm8k_small, monkeypatch):
    model, examples, cfg, saver = tiny_run(tmp_path, tokenizer, gsm8k_small)
    real_save = torch.save

    def full_disk(obj, path, *a, **k):
        if "checkpoint-4" in str(path) or ".checkpoint-4" in str(path):
            raise OSError(28, "No space left on device")
        return real_save(obj, path, *a, **k)

    monkeypatch.setattr("chattune.outputs.checkpoint.torch.save", full_disk)
    with pytest.raises(TrainingError,
                       match=r"step 4 .*No space left on device.*checkpoint-2 is intact"):
        train(model, examples, cfg, pad_id=tokenizer.pad_token_id, device=torch.device("cpu"),
              on_save=saver)
    assert [p.name for p in checkpoints(tmp_path)] == ["checkpoint-2"]
    assert load_state(tmp_path / "checkpoint-2").step == 2
    # no half-written directory left
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_ctrl_c_saves_a_checkpoint(tmp_path, tokenizer, gsm8k_small):
    model, examples, cfg, saver = tiny_run(tmp_path, tokenizer, gsm8k_small, save_steps=None)

    def press_ctrl_c(rec):
        if rec.get("step") == 3:
            raise KeyboardInterrupt

    with pytest.raises(TrainingInterrupted,
                       match="interrupted after step 3; checkpoint .*checkpoint-3"):
        train(model, examples, cfg, pad_id=tokenizer.pad_token_id, device=torch.device("cpu"),
              on_save=saver, on_log=press_ctrl_c)
    assert load_state(tmp_path / "checkpoint-3").micro_batches == 3


def test_checkpoint_limit_keeps_the_best(tmp_path, tiny_model_dir, gsm8k_small):
    cfg = build_config({"model": str(tiny_model_dir), "output_dir": str(tmp_path / "out"),
                        "merge": False, "data": {"train": str(gsm8k_small), "columns": COLUMNS,
                                                 "test_size": 3},
                        "max_steps": 6, "save_steps": 1, "eval_steps": 1, "save_total_limit": 2,
                        "load_best_model_at_end": True, "per_device_train_batch_size": 2,
                        "learning_rate": 5e-2, "eval_generations": 2, "eval_max_new_tokens": 4})
    result = chattune.run_training(cfg)
    evals = {r["step"]: r["eval_loss"] for r in result.records if "eval_loss" in r}
    best = min(list(evals)[:-1], key=evals.get)  # checkpoints are written for steps 1-5
    kept = [p.name for p in checkpoints(tmp_path / "out")]
    assert f"checkpoint-{best}" in kept and len(kept) <= 3 and "checkpoint-5" in kept
    generations = [json.loads(line)
                   for line in (tmp_path / "out" / "metrics.jsonl").read_text().splitlines()
                   if "generations" in line]
    assert len(generations) == 6 and len(generations[0]["generations"]) == 2


@pytest.mark.skipif(importlib.util.find_spec("wandb") is not None, reason="wandb is installed here")
def test_missing_tracker_is_a_config_error(tmp_path, tiny_model_dir, gsm8k_small):
    cfg = build_config({"model": str(tiny_model_dir), "output_dir": str(tmp_path / "out"),
                        "report_to": ["wandb"],
                        "data": {"train": str(gsm8k_small), "columns": COLUMNS}})
    with pytest.raises(ConfigError,
                       match=r"report_to: wandb is asked for but not installed; pip install "
                                          r"'chattune\[wandb\]'"):
        chattune.run_training(cfg)
