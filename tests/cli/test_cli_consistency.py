"""The CLI is one piece: MODEL given the same way everywhere (a run folder included), --json the
same switch, a description for every command, rows numbered as errors number them, "did you mean"
for typos, one-line errors."""

import argparse
import importlib.metadata
import json
import shutil

import pytest
import yaml
from test_cli import write_config

from chattune.cli import build_parser, main
from chattune.cli.parser import leaf_parsers
from chattune.model.source import resolve_source

MODEL_COMMANDS = {"chat", "eval", "generate", "render", "doctor", "data check", "merge"}


def _all_parsers(parser, name=""):
    yield name, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub, p in action.choices.items():
                yield from _all_parsers(p, f"{name} {sub}".strip())


def test_version(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0
    assert capsys.readouterr().out.strip() == f"chattune {importlib.metadata.version('chattune')}"


def test_every_command_has_a_description_and_help():
    parser = build_parser()
    for name, p in _all_parsers(parser):
        assert p.description and len(p.description) > 20, f"`chattune {name}` has no description"
    for _, p in _all_parsers(parser):
        for action in p._actions:
            if isinstance(action, argparse._SubParsersAction):
                for choice in action._choices_actions:
                    assert choice.help, f"{p.prog} {choice.dest} has no help line"


def test_model_is_one_optional_positional_everywhere():
    commands = {name: p for name, p in _all_parsers(build_parser())}
    for name in MODEL_COMMANDS:
        usage = commands[name].format_usage()
        assert "MODEL" in usage and "--model" not in usage, (name, usage)
    for leaf in leaf_parsers(build_parser()):  # no command still requires a --model flag
        assert not any("--model" in a.option_strings and a.required
                       for a in leaf._actions), leaf.prog


@pytest.fixture
def numbered_data(tmp_path):
    """Three rows on lines 1, 3 and 4 (a blank line between the first two): rows and lines
    differ."""
    path = tmp_path / "d.jsonl"
    rows = [{"question": f"q{i}", "answer": f"a{i}"} for i in (1, 2, 3)]
    path.write_text(json.dumps(rows[0]) + "\n\n" + json.dumps(rows[1]) + "\n" + json.dumps(rows[2])
                    + "\n")
    return path


def _render(model, data, *flags):
    return main(["render", str(model), "--data", str(data), "--columns", "question=user",
                 "answer=assistant", *flags])


def test_render_rows_are_numbered_as_errors_number_them(tiny_model_dir, numbered_data, capsys):
    assert _render(tiny_model_dir, numbered_data, "--row", "2") == 0
    by_row = capsys.readouterr().out
    assert "d.jsonl, line 3, row 2" in by_row and "q2" in by_row
    assert _render(tiny_model_dir, numbered_data, "--line", "3") == 0
    assert capsys.readouterr().out == by_row
    # the old spelling still runs, and MODEL defaults to the built-in model
    assert main(["render", "--model", str(tiny_model_dir), "--data", str(numbered_data), "--row",
                 "2", "--columns", "question=user", "answer=assistant"]) == 0
    assert capsys.readouterr().out == by_row

    for flags, said in [(["--row", "0"], "rows count from 1"),
                        (["--row", "4"], "d.jsonl has 3 rows (--row 1 to "
                        "--row 3)"), (["--line", "2"],
                                      "no row starts on line 2 (the nearest rows start on line 1 "
                        "and 3"), (["--row", "1", "--line", "1"], "not both")]:
        assert _render(tiny_model_dir, numbered_data, *flags) == 1
        err = capsys.readouterr().err
        assert said in err and "Traceback" not in err, (flags, err)
        assert len(err.strip().splitlines()) == 1


def test_data_error_line_is_the_line_render_takes(tmp_path, tiny_model_dir, numbered_data, capsys):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(numbered_data.read_text().replace(', "answer": "a2"', ''))
    assert main(["data", "check", str(bad), str(tiny_model_dir), "--columns", "question=user",
                 "answer=assistant"]) == 1
    assert "bad.jsonl, line 3" in capsys.readouterr().out
    assert _render(tiny_model_dir, bad, "--line", "3") == 1  # the same row, and the same words
    assert "bad.jsonl, line 3" in capsys.readouterr().err


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, tiny_model_dir):
    """A finished LoRA run folder: adapter/, merged/ and config.yaml."""
    import gzip

    from conftest import ROOT

    tmp = tmp_path_factory.mktemp("run")
    with gzip.open(ROOT / "data" / "gsm8k" / "train.jsonl.gz", "rt", encoding="utf-8") as f:
        (tmp / "g.jsonl").write_text("".join(next(f) for _ in range(8)), encoding="utf-8")
    cfg = write_config(tmp, tiny_model_dir, tmp / "g.jsonl", max_steps=2)
    assert main(["train", str(cfg)]) == 0
    return tmp / "out"


def test_a_run_folder_is_a_model_everywhere(tmp_path, run_dir, tiny_model_dir, capsys):
    assert main(["chat", str(run_dir), "--prompt", "Hi", "--max-new-tokens", "3"]) == 0
    assert f"using {run_dir}: its merged model {run_dir / 'merged'}" in capsys.readouterr().out

    adapter_only = tmp_path / "run"
    shutil.copytree(run_dir, adapter_only, ignore=shutil.ignore_patterns("merged"))
    assert main(["chat", str(adapter_only), "--prompt", "Hi", "--max-new-tokens", "3"]) == 0
    assert (f"its base model {tiny_model_dir} with its adapter {adapter_only / 'adapter'}"
            in capsys.readouterr().out)
    assert main(["chat", str(adapter_only / "adapter"), "--prompt", "Hi", "--max-new-tokens",
                 "3"]) == 0
    assert "an adapter, on its base model" in capsys.readouterr().out
    # --adapter takes a run folder too (its adapter/)
    assert main(["chat", str(tiny_model_dir), "--adapter", str(adapter_only), "--prompt", "Hi",
                 "--max-new-tokens", "3"]) == 0

    merged = tmp_path / "merged"
    assert main(["merge", str(adapter_only), str(merged)]) == 0
    assert (merged / "model.safetensors").is_file()
    assert main(["render", str(adapter_only), "--data", str(run_dir.parent / "g.jsonl"),
                 "--columns", "question=user", "answer=assistant"]) == 0
    assert main(["doctor", str(run_dir)]) == 0
    capsys.readouterr()

    assert main(["chat", str(run_dir), "--adapter", str(adapter_only / "adapter"), "--prompt",
                 "Hi"]) == 1
    assert "brings its own adapter" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["chat", str(tmp_path / "empty"), "--prompt", "Hi"]) == 1
    err = capsys.readouterr().err
    assert ("neither a model folder (config.json), an adapter folder" in err
            and "Traceback" not in err)


def test_resolver_reads_a_checkpoint_and_keeps_export_working(run_dir, tiny_model_dir):
    from chattune.export.source import resolve_source as export_resolve

    assert resolve_source(str(run_dir)).model == str(run_dir / "merged")
    both = resolve_source(str(run_dir), adapter_first=True)
    assert (both.model, both.adapter) == (str(tiny_model_dir), run_dir / "adapter")
    assert export_resolve(str(run_dir), None) == (str(run_dir / "merged"), None)
    assert resolve_source("HuggingFaceTB/SmolLM2-135M-Instruct").via == ""  # a hub id as it is


def test_json_is_a_switch_that_prints_json(tmp_path, run_dir, capsys):
    data = str(run_dir.parent / "g.jsonl")
    flags = ["--data", data, "--columns", "question=user", "answer=assistant", "--num-samples", "2",
             "--max-new-tokens", "3"]
    assert main(["eval", str(run_dir), *flags, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)  # stdout holds the JSON alone
    assert out["metrics"]["rows"] == 2
    assert main(["eval", str(run_dir), *flags, "--out", str(tmp_path / "r.json")]) == 0
    assert json.loads((tmp_path / "r.json").read_text())["metrics"]["rows"] == 2
    # the old spelling
    assert main(["eval", str(run_dir), *flags, "--json", str(tmp_path / "old.json")]) == 0
    assert "is --out" in capsys.readouterr().err and (tmp_path / "old.json").is_file()
    assert main(["eval", "--json", str(run_dir), *flags]) == 0  # a switch wherever it stands
    assert json.loads(capsys.readouterr().out)["metrics"]["rows"] == 2
    assert main(["doctor", str(run_dir), "--json"]) == 0
    checks = json.loads(capsys.readouterr().out)
    assert checks and {"check", "ok", "detail", "fix"} <= set(checks[0])


@pytest.mark.parametrize("argv, said", [
    (["trian", "x.yaml"], "did you mean 'train'?"),
    (["chat", "--adaptr", "x"], "--adaptr (did you mean --adapter?)"),
    (["train", "x.yaml", "--lerning-rate", "1e-4"], "(did you mean --set learning_rate=VALUE?)"),
    (["render", "--data", "x", "--train-on", "last"], "did you mean 'last_assistant'?"),
    (["data"], "required: COMMAND (one of: check, convert)"),
    (["merge", "a"], "expected MODEL [ADAPTER] OUT"),
])
def test_parser_errors_are_one_line_with_a_suggestion(argv, said, capsys):
    try:
        code = main(argv)
    except SystemExit as e:
        code = e.code
    err = capsys.readouterr().err
    assert code in (1, 2) and said in err, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_positionals_after_options_are_placed(tmp_path, tiny_model_dir, numbered_data, capsys):
    # argparse alone would refuse MODEL after an option here
    assert main(["data", "check", str(numbered_data), "--limit", "2", str(tiny_model_dir),
                 "--columns", "question=user", "answer=assistant"]) == 0


def test_unknown_config_keys_say_what_was_meant(tmp_path, tiny_model_dir, gsm8k_small, capsys):
    cfg = write_config(tmp_path, tiny_model_dir, gsm8k_small, lerning_rate=1e-4)
    raw = yaml.safe_load(cfg.read_text())
    raw["data"]["colums"] = raw["data"].pop("columns")
    cfg.write_text(yaml.safe_dump(raw))
    assert main(["train", str(cfg), "--set", "lora.rr=4"]) == 1
    err = capsys.readouterr().err
    assert "lerning_rate: unknown key; did you mean `learning_rate`?" in err
    assert "data.colums: unknown key; did you mean `data.columns`?" in err
    assert "lora.rr: unknown key; did you mean `lora.r`?" in err
    assert not (tmp_path / "out").exists()


def test_judge_json_prints_the_summary(tmp_path, tiny_model_dir, capsys):
    from test_eval_judge import BASE, QUESTIONS, TUNED, _compare_jsonl

    run = _compare_jsonl(tmp_path / "run", QUESTIONS[:2], BASE[:2], TUNED[:2])
    assert main(["judge", str(run), "--judge", str(tiny_model_dir), "--max-tokens", "2", "--device",
                 "cpu", "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)  # stdout is the JSON alone
    assert printed == json.loads((run / "judge.json").read_text()) and printed["n"] == 2
