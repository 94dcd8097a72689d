"""The fault and bad-input corpus of issue 19, through the CLI: each case ends in exit code 1 (130
on Ctrl-C) with a message naming the cause, no traceback, and nothing already written is lost."""


import errno
import os
import shutil
import time

import pytest
import torch
import yaml
from conftest import make_tiny_model
from safetensors import SafetensorError
from safetensors.torch import load_file

from chattune.cli import main
from chattune.config import build_config
from chattune.errors import TrainingError
from chattune.outputs.checkpoint import Checkpointer, checkpoints
from chattune.prepare.examples import examples_from_file
from chattune.train.health import Guard, Unhealthy
from chattune.train.loop import train

COLUMNS = {"question": "user", "answer": "assistant"}


def config_file(tmp_path, model_dir, data, name="run", **extra):
    """A tiny run's config; `data`: a file, or the whole data section."""
    data = data if isinstance(data, dict) else {"train": str(data), "columns": COLUMNS}
    cfg = {"model": str(model_dir), "data": data, "finetuning": "lora",
           "output_dir": str(tmp_path / name), "max_steps": 4, "per_device_train_batch_size": 2,
           "logging_steps": 1, "learning_rate": 1e-3, "max_length": 256, "merge": False, **extra}
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
    cfg = config_file(tmp_path, tiny_model_dir,
                      {"train": str(data), "columns": COLUMNS, "on_bad_row": "skip"})
    err = failed(capsys, ["train", str(cfg)])
    assert "data.train: no examples left after preparation: 2 rows read, 2 bad and skipped" in err
    assert not (tmp_path / "run" / "metrics.jsonl").exists()


# -- another run's checkpoints in output_dir: refused unless resumed or overwritten; a resume checks
# the config


def test_a_new_run_over_another_runs_checkpoints_is_refused(tmp_path, tiny_model_dir, gsm8k_small,
                                                            capsys):
    cfg = config_file(tmp_path, tiny_model_dir, gsm8k_small, max_steps=6, save_steps=2)
    assert main(["train", str(cfg)]) == 0
    before = {p.name: (p / "records.json").read_text() for p in checkpoints(tmp_path / "run")}
    assert set(before) == {"checkpoint-2", "checkpoint-4"}
    assert (tmp_path / "run" / "checkpoint-4" / "train_config.yaml").is_file()

    err = failed(capsys, ["train", str(cfg), "--set", "max_steps=2"])
    assert ("holds the checkpoints and outputs of an earlier run (checkpoint-2/, checkpoint-4/, "
            "adapter/") in err
    assert "nothing was changed" in err
    assert "--resume" in err and "--overwrite_output_dir" in err
    assert {p.name: (p / "records.json").read_text()
            for p in checkpoints(tmp_path / "run")} == before

    assert main(["train", str(cfg), "--set", "max_steps=2", "--overwrite_output_dir"]) == 0
    assert "removing the earlier run's outputs in" in (said := capsys.readouterr().out)
    assert "checkpoint-2/, checkpoint-4/, adapter/" in said
    # two steps with save_steps 2: the last step is the final model
    assert checkpoints(tmp_path / "run") == []


def test_resume_under_a_changed_config_lists_what_differs(tmp_path, tiny_model_dir, gsm8k_small,
                                                          capsys):
    cfg = config_file(tmp_path, tiny_model_dir, gsm8k_small, max_steps=4, save_steps=2)
    assert main(["train", str(cfg)]) == 0
    metrics = (tmp_path / "run" / "metrics.jsonl").read_text()

    err = failed(capsys, ["train", str(cfg), "--resume", "--set", "learning_rate=0.002", "--set",
                          "lora.r=4"])
    assert "the config differs from the one that wrote" in err and "checkpoint-2" in err
    assert ("learning_rate: checkpoint 0.001, now 0.002" in err
            and "lora.r: checkpoint 16, now 4" in err)
    assert "--allow-config-changes" in err
    assert (tmp_path / "run" / "metrics.jsonl").read_text() == metrics  # nothing written

    # what does not change the training (how long, how often it logs or saves) resumes as it is
    assert main(["train", str(cfg), "--resume", "--set", "max_steps=6", "--set",
                 "logging_steps=2"]) == 0
    capsys.readouterr()
    assert main(["train", str(cfg), "--resume", "--set", "max_steps=8", "--set",
                 "learning_rate=0.002", "--allow-config-changes"]) == 0
    assert ("resuming with config changes (--allow-config-changes): learning_rate"
            in capsys.readouterr().out)


def test_resume_compares_with_the_config_beside_an_older_checkpoint(
        tmp_path, tiny_model_dir, gsm8k_small, capsys):
    cfg = config_file(tmp_path, tiny_model_dir, gsm8k_small, max_steps=4, save_steps=2)
    assert main(["train", str(cfg)]) == 0
    # as checkpoints before it was saved
    (tmp_path / "run" / "checkpoint-2" / "train_config.yaml").unlink()
    err = failed(capsys, ["train", str(cfg), "--resume", "--set", "seed=7"])
    assert "seed: checkpoint 42, now 7" in err and "config.yaml" in err


# -- a full disk or a path that cannot be written: a message, and the trained weights are kept


def full_disk(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


def test_a_failed_final_save_names_the_checkpoint_that_holds_the_weights(
        tmp_path, tiny_model_dir, gsm8k_small, capsys, monkeypatch):
    # no save_steps: the last step is checkpointed first
    cfg = config_file(tmp_path, tiny_model_dir, gsm8k_small)
    with monkeypatch.context() as m:
        m.setattr("chattune.outputs.save.write_pretrained", full_disk)
        err = failed(capsys, ["train", str(cfg)])
    out = tmp_path / "run"
    assert (f"could not save {out / 'adapter'}: [Errno 28] No space left on device; nothing was "
            "written there") in err
    assert f"the last good copy of the weights is {out / 'checkpoint-4'} (step 4 of 4)" in err
    assert not (out / "adapter").exists() and not [p for p in out.iterdir()
                                                   if p.name.startswith(".adapter")]
    saved = load_file(out / "checkpoint-4" / "adapter_model.safetensors")

    # space again: the checkpoint's weights are saved
    assert main(["train", str(cfg), "--resume"]) == 0
    final = load_file(out / "adapter" / "adapter_model.safetensors")
    assert final.keys() == saved.keys() and all(torch.equal(final[k], saved[k]) for k in saved)
    assert checkpoints(out) == []  # written only to insure the final save


def test_full_disk_while_writing_the_tokenizer_or_the_adapter_is_a_message(
        tmp_path, tiny_model_dir, gsm8k_small, tokenizer, capsys, monkeypatch):
    cfg = config_file(tmp_path, tiny_model_dir, gsm8k_small, max_steps=4, save_steps=2)

    def tokenizers_full_disk(*args, **kwargs):  # the tokenizers library raises a plain Exception
        raise Exception("No space left on device (os error 28)")

    with monkeypatch.context() as m:
        m.setattr(type(tokenizer), "save_pretrained", tokenizers_full_disk)
        err = failed(capsys, ["train", str(cfg)])
    assert ("could not save the checkpoint at step 2" in err
            and "No space left on device (os error 28)" in err)
    assert "no earlier checkpoint exists" in err

    def safetensors_full_disk(*args, **kwargs):
        raise SafetensorError("Error while serializing: IoError(Os { code: 28, kind: StorageFull "
                              "})")

    with monkeypatch.context() as m:
        m.setattr("peft.peft_model.safe_save_file", safetensors_full_disk)
        # the failed run's metrics.jsonl is kept: starting again over it is asked for
        err = failed(capsys, ["train", str(cfg), "--overwrite_output_dir"])
    assert "could not save the checkpoint at step 2" in err and "StorageFull" in err
    assert not list((tmp_path / "run").glob(".checkpoint-*"))


def test_an_output_dir_that_cannot_be_written_is_a_message(tmp_path, tiny_model_dir, gsm8k_small,
                                                           capsys, monkeypatch):
    read_only = tmp_path / "ro"
    read_only.mkdir()
    real_open = os.open

    # as a read-only mount answers (root ignores chmod)
    def open_read_only(path, flags, *args, **kwargs):
        if str(path).startswith(str(read_only)) and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT):
            raise OSError(errno.EROFS, "Read-only file system", str(path))
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", open_read_only)
    cfg = config_file(tmp_path, tiny_model_dir, gsm8k_small, output_dir=str(read_only / "run"))
    (read_only / "run").mkdir()
    err = failed(capsys, ["train", str(cfg)])
    assert (f"{read_only / 'run'}: the output directory cannot be written (Read-only file "
            "system)") in err


# -- the NaN guard checks the weights a step wrote; a collapsed or diverged run stops


def loop_run(tmp_path, tokenizer, gsm8k_small, learning_rate, **extra):
    """A tiny full fine-tuning run through the loop, at a learning rate the config would refuse."""
    model = make_tiny_model(tokenizer)
    examples, _ = examples_from_file(str(gsm8k_small), tokenizer, columns=COLUMNS, max_length=256)
    cfg = build_config({"data": {"train": str(gsm8k_small)}, "finetuning": "full", "max_steps": 12,
                        "per_device_train_batch_size": 2, "output_dir": str(tmp_path), **extra})
    args = cfg.train_args().model_copy(update={"learning_rate": learning_rate})
    saver = Checkpointer(tmp_path, model, tokenizer, [tokenizer.eos_token_id], limit=None,
                         keep_best=False)
    return lambda: train(model, examples, args, pad_id=tokenizer.pad_token_id,
                         device=torch.device("cpu"), on_save=saver)


def test_weights_a_step_made_nan_are_never_a_good_checkpoint(tmp_path, tokenizer, gsm8k_small):
    run = loop_run(tmp_path, tokenizer, gsm8k_small, float("inf"), save_steps=1)
    with pytest.raises(TrainingError) as e:
        run()
    assert str(e.value).startswith("training stopped at step 1: the weights step 1 wrote are not "
                                   "finite")
    assert ("no good checkpoint was saved" in str(e.value)
            and "no checkpoint of them was written" in str(e.value))
    assert checkpoints(tmp_path) == []


def test_a_collapsed_model_stops_the_run_and_its_checkpoints_are_not_called_good(
        tmp_path, tokenizer, gsm8k_small):
    # at 1e6 the tiny model predicts a uniform distribution from step 2 on: loss ln(49152), gradient
    # norm 0
    run = loop_run(tmp_path, tokenizer, gsm8k_small, 1e6, save_steps=1)
    with pytest.raises(TrainingError) as e:
        run()
    message = str(e.value)
    assert message.startswith("training stopped at step 6: the model has collapsed: loss 10.8027 = "
                              "ln(vocabulary) with gradient norm 0.0e+00 for 5 steps")
    assert "the weights in memory are not usable. no good checkpoint was saved" in message
    # written, not good
    assert [p.name for p in checkpoints(tmp_path)][:2] == ["checkpoint-1", "checkpoint-2"]


def test_a_diverging_loss_stops_the_run(tmp_path, monkeypatch):
    monkeypatch.setattr("chattune.train.health.COLLAPSE_STEPS", 2)
    guard = Guard(None, 10)
    for step in (2, 3, 4):
        (tmp_path / f"checkpoint-{step}").mkdir()
        guard.saved.append((step, tmp_path / f"checkpoint-{step}"))
    for loss in (2.0, 1.0, 4.0, 4.5, 6.0):  # one loss over 5x the best is noise
        guard.check(loss, 1.0, 1.0, overflow_ok=False)
    with pytest.raises(Unhealthy,
                       match=r"diverged: loss 7.0000, over 5x its best 1.0000, for 2 steps") as e:
        guard.check(7.0, 1.0, 1.0, overflow_ok=False)
    # the weights step 4 wrote gave the first 5x loss
    assert e.value.since == 4 and e.value.weights_bad
    assert f"the last good checkpoint is {tmp_path / 'checkpoint-3'}" in guard.message(6, e.value)


# -- a damaged checkpoint given to --resume, a pickled adapter: a message naming the file, nothing
# read or lost


def damage_truncate(path):
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def damage_garble(path):
    data = bytearray(path.read_bytes())
    data[:64] = bytes(range(64))
    path.write_bytes(bytes(data))


def drop_optimizer(path):
    state = torch.load(path, weights_only=True)
    del state["optimizer"]
    torch.save(state, path)


def other_models_optimizer(path):
    state = torch.load(path, weights_only=True)
    state["optimizer"]["param_groups"][0]["params"] = [0]
    torch.save(state, path)


DAMAGE = [
    ("trainer_state.pt", damage_truncate, "trainer_state.pt: cannot be read"),
    ("trainer_state.pt", damage_garble, "trainer_state.pt: cannot be read"),
    ("trainer_state.pt", drop_optimizer,
     "trainer_state.pt: expected the entries step, micro_batches, tokens, "
     "trained_tokens, rng, optimizer, scheduler, optimizer missing"),
    ("trainer_state.pt", other_models_optimizer,
     "checkpoint-2: its training state does not fit this run"),
    ("records.json", lambda p: p.unlink(), "records.json: cannot be read"),
    ("records.json", damage_garble, "records.json: cannot be read"),
    ("adapter_model.safetensors", damage_truncate,
     "adapter_model.safetensors: the weights cannot be read, the "
     "file is damaged"),
]


def test_a_damaged_checkpoint_is_named_and_left_as_it_is(tmp_path, tiny_model_dir, gsm8k_small,
                                                         capsys):
    cfg = config_file(tmp_path, tiny_model_dir, gsm8k_small, max_steps=4, save_steps=2)
    assert main(["train", str(cfg)]) == 0
    out = tmp_path / "run"
    checkpoint, backup = out / "checkpoint-2", tmp_path / "backup"
    shutil.copytree(checkpoint, backup)
    metrics = (out / "metrics.jsonl").read_text()
    for name, damage, message in DAMAGE:
        damage(checkpoint / name)
        damaged = {p.name: p.read_bytes() for p in checkpoint.iterdir()}
        err = failed(capsys, ["train", str(cfg), "--resume"])
        assert message in err and "resume from another" in err, (name, damage.__name__, err)
        # nothing rewritten or removed
        assert {p.name: p.read_bytes() for p in checkpoint.iterdir()} == damaged
        # found as the state is read, before anything is written
        if damage is not other_models_optimizer:
            assert (out / "metrics.jsonl").read_text() == metrics, damage.__name__
        shutil.rmtree(checkpoint)
        shutil.copytree(backup, checkpoint)
        (out / "metrics.jsonl").write_text(metrics)
    assert main(["train", str(cfg), "--resume"]) == 0  # the undamaged checkpoint resumes


def test_a_pickled_adapter_is_refused_not_read(tmp_path, tiny_model_dir, gsm8k_small, capsys,
                                               monkeypatch):
    cfg = config_file(tmp_path, tiny_model_dir, gsm8k_small, max_steps=1)
    assert main(["train", str(cfg)]) == 0
    adapter = tmp_path / "run" / "adapter"
    torch.save(load_file(adapter / "adapter_model.safetensors"), adapter / "adapter_model.bin")
    (adapter / "adapter_model.safetensors").unlink()

    def no_unpickling(*args, **kwargs):
        raise AssertionError("a pickled adapter was loaded")

    monkeypatch.setattr(torch, "load", no_unpickling)
    err = failed(capsys, ["chat", str(tiny_model_dir), "--adapter", str(adapter), "--prompt", "hi"])
    assert (f"{adapter / 'adapter_model.bin'}: a pickled adapter is not loaded" in err
            and "safetensors only" in err)
    err = failed(capsys, ["merge", str(tiny_model_dir), str(adapter), str(tmp_path / "merged")])
    assert "a pickled adapter is not loaded" in err and not (tmp_path / "merged").exists()


# -- long conversations: the spans of every turn are found without a pass over all marks per turn


def test_a_long_conversation_renders_without_the_cubic_search(tokenizer):
    from chattune.templates.render import render

    messages = [m for i in range(300) for m in ({"role": "user", "content": f"question {i}?"},
                                                  {"role": "assistant", "content": f"answer {i}."})]
    start = time.perf_counter()
    rendered = render(tokenizer, messages)
    # about 1 s; 300 pairs took about 10 s with a scan per turn and mark
    assert time.perf_counter() - start < 8
    trained = tokenizer.decode([t for t in rendered.labels if t != -100])
    assert trained.count("answer ") == 300 and "question" not in trained


GOOD = (b'{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": '
        b'"hello"}]}\n')
ROW = '{"messages": [{"role": "user", "content": "%s"}, {"role": "assistant", "content": "x"}]%s}'


@pytest.mark.parametrize("name, second, expected", [
    ("latin-1 text", (ROW % ("café", "")).encode("latin-1") + b"\n",
     "line 2: expected UTF-8 text, found byte 0xe9"),
    ("a lone surrogate", (ROW % ("a\\ud800b", "")).encode() + b"\n",
     "line 2: expected text, found a lone UTF-16 surrogate"),
    ("deep nesting", b'{"messages": ' + b"[" * 100000 + b"]" * 100000 + b"}\n",
     "line 2: expected a row of messages, found JSON nested deeper than Python's recursion limit"),
    ("a 100,000-digit number", (ROW % ("a", ', "n": ' + "9" * 100000)).encode() + b"\n",
     "line 2: expected a row of messages, found a value Python will not read"),
])
def test_unreadable_rows_name_the_editors_line(tmp_path, capsys, name, second, expected):
    jsonl = tmp_path / "rows.jsonl"
    jsonl.write_bytes(GOOD + second)
    assert expected in failed(capsys, ["data", "check", str(jsonl)])
    if b"\\ud800" in second:  # the same row as an item of a JSON list
        listed = tmp_path / "rows.json"
        listed.write_bytes(b"[\n" + GOOD.strip() + b",\n" + second.strip() + b"\n]\n")
        assert "line 3 (item [1]): expected text, found a lone UTF-16 surrogate" in failed(
            capsys, ["data", "check", str(listed)])


# -- the earlier cases of the corpus through the CLI (each class also has its own unit tests:
# test_config,
#    test_lock, test_prepare, test_template_budget, test_cli)


@pytest.mark.parametrize("override, says", [
    ("learning_rate=.inf", "learning_rate: "),
    ("learning_rate=1e38", "learning_rate: "),
    ("num_train_epochs=.inf", "num_train_epochs: "),
    ("seed=1e21", "seed: "),
    ("max_steps=0", "max_steps: "),
    ("model=''", "model: "),
    ("data.columns={}", "data.columns: maps no column to a role"),
    ("data.train=[]", "data.train: lists no training data"),
])
def test_config_values_that_cannot_train_are_named_before_any_work(
        tmp_path, tiny_model_dir, gsm8k_small, capsys, override, says):
    cfg = config_file(tmp_path, tiny_model_dir, gsm8k_small)
    err = failed(capsys, ["train", str(cfg), "--set", override])
    assert says in " ".join(err.split())
    assert not (tmp_path / "run").exists()


def test_a_second_run_on_a_locked_output_dir_names_the_holder(
        tmp_path, tiny_model_dir, gsm8k_small, capsys):
    from chattune.outputs.lock import OutputDirLock

    cfg = config_file(tmp_path, tiny_model_dir, gsm8k_small)
    with OutputDirLock(tmp_path / "run"):
        err = " ".join(failed(capsys, ["train", str(cfg)]).split())
    assert f"{tmp_path / 'run'} is in use by" in err and f"process {os.getpid()}" in err
    assert not (tmp_path / "run" / "metrics.jsonl").exists()
    assert main(["train", str(cfg)]) == 0  # released: the same run now goes ahead


def test_ctrl_c_exits_130_with_a_checkpoint_that_resumes(tmp_path, tiny_model_dir, gsm8k_small,
                                                         capsys, monkeypatch):
    cfg = config_file(tmp_path, tiny_model_dir, gsm8k_small, max_steps=5)
    steps = []
    real_check = Guard.check

    def ctrl_c_at_step_3(self, *args, **kwargs):
        steps.append(1)
        if len(steps) == 3:
            raise KeyboardInterrupt
        return real_check(self, *args, **kwargs)

    with monkeypatch.context() as m:
        m.setattr(Guard, "check", ctrl_c_at_step_3)
        err = failed(capsys, ["train", str(cfg)], code=130)
    out = tmp_path / "run"
    assert "interrupted" in err and [p.name for p in checkpoints(out)] == ["checkpoint-2"]
    (out / ".checkpoint-3-k1lled_x").mkdir()  # what a kill during a checkpoint write leaves
    assert main(["train", str(cfg), "--resume"]) == 0
    said = " ".join(capsys.readouterr().out.split())
    assert ("removed half-written checkpoint folders of a stopped run: "
            ".checkpoint-3-k1lled_x") in said
    assert "resuming from" in said and (out / "adapter" / "adapter_model.safetensors").is_file()


def test_a_damaged_cache_entry_is_reported_and_prepared_again(
        tmp_path, tiny_model_dir, gsm8k_small, capsys, prepared_cache):
    cfg = config_file(tmp_path, tiny_model_dir, gsm8k_small, max_steps=2)
    assert main(["train", str(cfg), "--overwrite_output_dir"]) == 0
    [entry] = [p for p in prepared_cache.iterdir() if not p.name.startswith(".")]
    arrow = entry / "prepared.arrow"
    raw = bytearray(arrow.read_bytes())
    raw[len(raw) // 2: len(raw) // 2 + 64] = b"\xff" * 64  # garbled in the middle: once a segfault
    arrow.write_bytes(bytes(raw))
    capsys.readouterr()
    assert main(["train", str(cfg), "--overwrite_output_dir"]) == 0
    said = " ".join(capsys.readouterr().out.split())
    assert f"warning: {gsm8k_small}: the prepared-data cache entry {entry} was damaged" in said
    assert "prepared again" in said and "reused prepared data" not in said
    assert main(["train", str(cfg), "--overwrite_output_dir"]) == 0  # written again, whole
    assert "reused prepared data from the cache" in " ".join(capsys.readouterr().out.split())


def test_a_template_that_would_render_forever_is_a_bad_row(tmp_path, capsys):
    rows = tmp_path / "rows.jsonl"
    rows.write_bytes(GOOD)
    forever = "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}"
    assert main(["data", "check", str(rows), "--template", forever]) == 1
    captured = capsys.readouterr()
    said = " ".join(captured.out.split())  # data check's account of bad rows
    assert "Traceback" not in captured.err + captured.out
    assert (f"{rows}, line 1: the chat template took more than" in said
            and "RENDER_STEPS=2,000,000" in said)
