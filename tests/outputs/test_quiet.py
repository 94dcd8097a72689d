"""Quiet by default: the libraries' warnings, log records and progress bars are kept in a log file,
named at the end; --verbose (or CHATTUNE_VERBOSE=1) shows them as they come; chattune's own warnings
are always shown."""

import logging
import os
import subprocess
import sys

import pytest
import yaml
from conftest import ROOT

from chattune.cli import main
from chattune.outputs.quiet import LOG_NAME, Kept, kept_quiet

NOISY = """
import logging, warnings
def noisy():
    warnings.warn("somelib: this API is deprecated", FutureWarning)
    logging.getLogger("somelib").warning("somelib: a log record")
    import transformers.utils.logging as hf
    hf.get_logger("transformers.somewhere").warning("transformers: a record of its own handler")
"""


def _noisy():
    """A library's function (its module is not chattune's) that warns and logs."""
    ns = {"__name__": "somelib"}
    exec(NOISY, ns)
    return ns["noisy"]


@pytest.mark.parametrize("propagating", [False, True])
def test_library_messages_are_kept_and_chattune_warnings_shown(capfd, propagating):
    import transformers.utils.logging as hf

    # a library may have turned it on
    (hf.enable_propagation if propagating else hf.disable_propagation)()
    kept = Kept()
    ours = {"__name__": "chattune.somewhere"}
    exec("import warnings\ndef warn():\n    warnings.warn('for the user', UserWarning, "
         "stacklevel=2)\n", ours)
    # chattune's own warning still reaches its callers (here pytest's recorder)
    with pytest.warns(UserWarning, match="for the user"), kept_quiet(kept):
        _noisy()()
        ours["warn"]()
    assert [line.split(" ", 1)[1].split(" (")[0] for line in kept.lines] == [
        "FutureWarning: somelib: this API is deprecated", "WARNING somelib: somelib: a log record",
        "WARNING transformers.somewhere: transformers: a record of its own handler"]
    hf.disable_propagation()
    assert capfd.readouterr().err == ""


def test_progress_bars_are_off_in_a_run_and_as_before_after():
    import transformers.utils.logging as hf

    assert hf.is_progress_bar_enabled()
    with kept_quiet(Kept()):
        assert not hf.is_progress_bar_enabled()
    assert hf.is_progress_bar_enabled()
    with kept_quiet(Kept(), verbose=True):
        assert hf.is_progress_bar_enabled()


def test_a_librarys_own_tqdm_bar_is_off_in_a_run(capfd):
    """lm-evaluation-harness draws tqdm bars with disable=False, past every switch: off in a quiet
    run, shown when verbose and after the run."""
    from tqdm.auto import tqdm

    def draw(label: str) -> None:
        for _ in tqdm(range(3), desc=label, disable=False):
            pass

    with kept_quiet(Kept()):
        draw("in a quiet run")
    with kept_quiet(Kept(), verbose=True):
        draw("in a verbose run")
    draw("after the run")
    err = capfd.readouterr().err
    assert "in a quiet run" not in err and "in a verbose run" in err and "after the run" in err


def test_an_import_time_message_is_held_for_the_next_run(capfd):
    """bitsandbytes' advice on import (peft imports it) is not printed; the next run's log has
    it."""
    from chattune.outputs.quiet import hold_import_messages

    hold_import_messages()
    logging.getLogger("bitsandbytes.backends.cpu.ops").warning(
        "Failed to load CPU gemm_4bit_forward (test)")
    assert "Failed to load" not in capfd.readouterr().err
    kept = Kept()
    with kept_quiet(kept):
        pass
    assert any("Failed to load CPU gemm_4bit_forward (test)" in line for line in kept.lines)


def _cli(tmp_path, *argv, env=None):
    """`chattune render ...` whose work is a library's noisy call, in a fresh process (real
    stderr)."""
    script = ("import sys\nimport chattune.cli as cli\nimport chattune.cli.template_commands as "
              "commands\nns = {'__name__': 'somelib'}\nexec(sys.argv[1], ns)\n"
              "commands._cmd_render = lambda args: ns['noisy']() or "
              "0\nsys.exit(cli.main(sys.argv[2:]))\n")
    # a fresh process as a user starts it: none of the variables earlier tests or libraries set in
    # this one
    base = {k: v for k, v in os.environ.items()
            if k in ("PATH", "HOME", "LANG", "TMPDIR", "HF_HOME", "HF_HUB_OFFLINE")}
    env = {**base, "CHATTUNE_CACHE": str(tmp_path / "cache"), "PYTHONPATH": str(ROOT),
           **(env or {})}
    return subprocess.run([sys.executable, "-c", script, NOISY, *argv, "render", "--model", "m",
                           "--data", "d"],
                          capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)


def test_cli_keeps_library_messages_in_a_log_and_verbose_shows_them(tmp_path):
    quiet = _cli(tmp_path)
    assert quiet.returncode == 0, quiet.stderr
    log = tmp_path / "cache" / "logs" / LOG_NAME
    assert ("deprecated" not in quiet.stderr and "a log record" not in quiet.stderr
            and "Warning" not in quiet.stderr)
    assert f"3 messages from libraries (warnings, log records) kept in {log}" in quiet.stderr
    assert "--verbose shows them" in quiet.stderr
    text = log.read_text()
    assert ("FutureWarning: somelib: this API is deprecated" in text
            and "WARNING somelib: somelib: a log record" in text)
    log.unlink()
    for loud in (_cli(tmp_path, "--verbose"), _cli(tmp_path, env={"CHATTUNE_VERBOSE": "1"})):
        assert loud.returncode == 0, loud.stderr
        for shown in ("FutureWarning: somelib: this API is deprecated", "somelib: a log record",
                      "transformers: a record of its own handler"):
            assert shown in loud.stderr, loud.stderr
        assert log.is_file()  # shown, and still kept


def test_train_writes_the_log_into_its_output_dir(tmp_path, tiny_model_dir, gsm8k_small,
                                                  monkeypatch, capfd):
    """A run's library messages go beside its metrics; stdout and stderr hold only chattune's
    lines."""
    import chattune.pipeline as pipeline

    real, noisy = pipeline.load_base_model, _noisy()
    monkeypatch.setattr(pipeline, "load_base_model", lambda *a, **k: noisy() or real(*a, **k))
    cfg = {"model": str(tiny_model_dir), "output_dir": str(tmp_path / "out"), "max_steps": 1,
           "merge": False, "data": {"train": str(gsm8k_small),
                                    "columns": {"question": "user", "answer": "assistant"}}}
    (tmp_path / "cfg.yaml").write_text(yaml.safe_dump(cfg))
    assert main(["train", str(tmp_path / "cfg.yaml")]) == 0
    log = tmp_path / "out" / LOG_NAME
    assert "somelib: this API is deprecated" in log.read_text()
    out, err = capfd.readouterr()
    assert "deprecated" not in out + err and "Loading weights" not in err
    assert f"kept in {log}" in err
