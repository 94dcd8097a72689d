"""Benchmarks through lm-evaluation-harness: chattune's figures are lm-eval's own (its CLI on the
same model and task file gives the same numbers), shipped tasks run offline, bad task names and
files are clear errors."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT, make_tiny_model
from test_distributed import losses

from chattune.cli import main
from chattune.errors import TaskError

MC_ROWS = [{"question": f"What is {a} plus {b}?",
            "choices": [str(a + b), str(a + b + 1), str(a * b + 3)],
            "answer": 0} for a, b in [(1, 2), (3, 4), (5, 6), (2, 2), (7, 1), (4, 5)]]
MC_YAML = """task: my_sums
dataset_path: json
dataset_kwargs:
  data_files:
    test: data/sums.jsonl
output_type: multiple_choice
test_split: test
fewshot_split: test
doc_to_text: "Question: {{question}}\\nAnswer:"
doc_to_choice: "{{choices}}"
doc_to_target: answer
metric_list:
  - metric: acc
  - metric: acc_norm
"""
GEN_YAML = """task: my_echo
dataset_path: json
dataset_kwargs:
  data_files:
    test: data/sums.jsonl
output_type: generate_until
test_split: test
fewshot_split: test
doc_to_text: "Question: {{question}}\\nAnswer:"
doc_to_target: "{{choices[0]}}"
generation_kwargs:
  until: ["\\n"]
  max_gen_toks: 6
  do_sample: false
metric_list:
  - metric: exact_match
"""


@pytest.fixture
def user_tasks(tmp_path) -> Path:
    """A user's own lm-eval task files, their data given by a path relative to the files' folder."""
    folder = tmp_path / "tasks"
    (folder / "data").mkdir(parents=True)
    (folder / "data" / "sums.jsonl").write_text("".join(json.dumps(r) + "\n" for r in MC_ROWS))
    (folder / "sums.yaml").write_text(MC_YAML)
    (folder / "echo.yaml").write_text(GEN_YAML)
    return folder


def _offline_env(tmp_path) -> dict[str, str]:
    return {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
            "HF_DATASETS_CACHE": str(tmp_path / "ds")}


def _lm_eval_cli(tmp_path, model_dir, tasks, cwd, *extra) -> dict:
    """lm-eval's own command line on the same model and task files: its results, by task."""
    out = tmp_path / "lm-eval-out"
    cmd = [sys.executable, "-m", "lm_eval", "--model", "hf", "--model_args",
           f"pretrained={model_dir},dtype=float32",
           "--device", "cpu", "--tasks", ",".join(str(t) for t in tasks), "--output_path", str(out),
           *extra]
    done = subprocess.run(cmd, cwd=cwd, env=_offline_env(tmp_path), capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(next(out.rglob("results_*.json")).read_text())["results"]


@pytest.mark.parametrize("chat", [False, True])
def test_figures_equal_lm_evals_own_cli_on_a_users_task_files(
        tmp_path, tiny_model_dir, user_tasks, chat, monkeypatch):
    """loglikelihood (acc, acc_norm) and greedy generation (exact_match), with their stderrs,
    exactly; few-shot examples drawn alike (the CLI's seeds), as turns of the chat when the template
    is on."""
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "ds"))
    tasks = [user_tasks / "sums.yaml", user_tasks / "echo.yaml"]
    ours = tmp_path / "ours.json"
    flag = "--chat-template" if chat else "--no-chat-template"
    assert main(["eval", str(tiny_model_dir), "--tasks", ",".join(map(str, tasks)), "--limit", "4",
                 "--num-fewshot", "2", flag, "--device", "cpu", "--out", str(ours)]) == 0
    got = json.loads(ours.read_text())
    extra = ["--apply_chat_template"] if chat else []
    want = _lm_eval_cli(tmp_path, tiny_model_dir, tasks, user_tasks, "--limit", "4",
                        "--num_fewshot", "2", *extra)
    assert got["settings"]["chat_template"] is chat
    for task, metrics in {"my_sums": ["acc", "acc_norm"], "my_echo": ["exact_match"]}.items():
        assert got[task]["samples"] == 4
        for metric in metrics:
            assert got[task][metric] == want[task][f"{metric},none"], (task, metric)
            assert got[task][f"{metric}_stderr"] == want[task][f"{metric}_stderr,none"], (
                task, metric)


def test_shipped_tasks_run_offline_with_stderrs(tmp_path, tokenizer, monkeypatch):
    """The default set (gsm8k, ifeval, truthfulqa_mc1) from the files in the package: no Hub, no
    NLTK download."""
    model = make_tiny_model(tokenizer)
    # room for IFEval's 1,280 new tokens (rotary: no table to grow)
    model.config.max_position_embeddings = 4096
    tiny_model_dir = tmp_path / "tiny"
    model.save_pretrained(tiny_model_dir)
    tokenizer.save_pretrained(tiny_model_dir)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "ds"))
    monkeypatch.setenv("NLTK_DATA", str(tmp_path / "no-nltk-data"))  # only what ships beside ifeval
    out = tmp_path / "default.json"
    assert main(["eval", str(tiny_model_dir), "--tasks", "default", "--limit", "2",
                 "--device", "cpu", "--out", str(out)]) == 0
    got = json.loads(out.read_text())
    assert set(got) == {"gsm8k", "ifeval", "truthfulqa_mc1", "settings"}
    assert ("exact_match,strict-match_stderr" in got["gsm8k"]
            and "acc_stderr" in got["truthfulqa_mc1"])
    assert got["ifeval"]["prompt_level_strict_acc"] in (0.0, 0.5, 1.0)
    assert all(got[t]["samples"] == 2 for t in ("gsm8k", "ifeval", "truthfulqa_mc1"))


def test_shipped_subsets_are_the_first_items_of_the_benchmarks_with_their_provenance():
    """Each shipped data file is listed in PROVENANCE.md with its sha256, and every shipped task's
    data exists."""
    import hashlib

    from chattune.eval.tasks import DEFAULT_TASKS, shipped_tasks, task_config

    benchmarks = ROOT / "chattune" / "eval" / "benchmarks"
    provenance = (benchmarks / "PROVENANCE.md").read_text()
    for name in ("gsm8k/test.jsonl", "gsm8k/train.jsonl.gz", "ifeval/input_data.jsonl",
                 "truthfulqa/mc_task.jsonl"):
        assert hashlib.sha256((benchmarks / name).read_bytes()).hexdigest() in provenance, name
    assert set(DEFAULT_TASKS) <= set(shipped_tasks())
    for name, path in shipped_tasks().items():
        assert task_config(path)["task"] == name
    assert (benchmarks / "gsm8k" / "test.jsonl").read_text().splitlines()[0] == \
        (ROOT / "data" / "gsm8k" / "test.jsonl").read_text().splitlines()[0]


def test_unknown_task_lists_the_known_ones(tiny_model_dir, capsys):
    assert main(["eval", str(tiny_model_dir), "--tasks", "gsm8k,no_such_task"]) == 1
    err = " ".join(capsys.readouterr().err.split())
    assert "unknown task(s): no_such_task" in err and "truthfulqa_mc1" in err and "ifeval" in err
    assert "Traceback" not in err


def test_a_task_file_whose_data_file_is_missing_names_it_before_loading_the_model(
        tmp_path, user_tasks, capsys):
    (user_tasks / "data" / "sums.jsonl").unlink()
    assert main(["eval", "no/such-model", "--tasks", str(user_tasks / "sums.yaml")]) == 1
    err = " ".join(capsys.readouterr().err.split())
    assert "data file not found" in err and str(user_tasks / "data" / "sums.jsonl") in err
    assert main(["eval", "no/such-model", "--tasks", str(tmp_path / "nowhere.yaml")]) == 1
    assert "task file not found" in capsys.readouterr().err


def test_eval_needs_tasks_or_data(tiny_model_dir, capsys):
    assert main(["eval", str(tiny_model_dir)]) == 1
    assert "--tasks" in capsys.readouterr().err


def test_a_fall_of_more_than_two_standard_errors_is_flagged_in_words():
    from chattune.eval.benchmarks_compared import compare_benchmarks
    from chattune.eval.harness import BenchmarkResults, Score

    def results(acc: float, ppl: float) -> BenchmarkResults:
        return BenchmarkResults({"hellaswag": {"acc": Score(acc, 0.01)},
                                 "wikitext": {"word_perplexity": Score(ppl, 1)},
                                 "mine": {"acc": Score(acc, None)}}, {}, {})

    fell = compare_benchmarks(results(0.50, 20.0), results(0.46, 20.5))
    row = fell["tasks"]["hellaswag"]["acc"]
    assert (row["change"] == pytest.approx(-0.04) and row["change_stderr"]
            == pytest.approx(0.01 * 2 ** 0.5))
    # 4.0 > 2 x 1.41; perplexity +0.5 < 2 x 1.41
    assert fell["falls"] == ["hellaswag acc fell 4.0 ± 1.4 points"]
    assert compare_benchmarks(results(0.50, 20.0),
                              results(0.48, 23.0))["falls"] == ["wikitext word_perplexity "
                                                                  "rose 3.0 ± 1.4"]


def test_training_scores_eval_tasks_on_the_base_and_the_tuned_model(
        tmp_path, tiny_model_dir, gsm8k_small, user_tasks, monkeypatch, capsys):
    import yaml

    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "ds"))
    cfg = {"model": str(tiny_model_dir),
           "data": {"train": str(gsm8k_small), "columns": {"question": "user",
                                                             "answer": "assistant"}},
           "output_dir": str(tmp_path / "run"), "max_steps": 2, "per_device_train_batch_size": 2,
           "max_length": 128, "learning_rate": 1e-2, "merge": False, "eval_tasks_limit": 4,
           # an lm-eval YAML, and a task of one's own in the config
           "eval_tasks": [str(user_tasks / "sums.yaml"),
                          {"data": str(user_tasks / "data" / "sums.jsonl"), "prompt": "question",
                           "answer": "answer", "metric": "last_number", "name": "own_sums",
                           "max_new_tokens": 4}]}
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(cfg))
    assert main(["train", str(path)]) == 0
    said = " ".join(capsys.readouterr().out.split())
    assert "benchmarks before / after" in said and "my_sums" in said
    bench = json.loads((tmp_path / "run" / "compare.json").read_text())["benchmarks"]
    acc = bench["tasks"]["my_sums"]["acc"]
    assert {"base", "base_stderr", "tuned", "tuned_stderr", "change", "change_stderr"} <= set(acc)
    assert acc["change"] == pytest.approx(acc["tuned"] - acc["base"])
    assert set(bench["tasks"]["own_sums"]) == {"format_compliance", "exact_match"}
    assert "Benchmarks before / after" in (tmp_path / "run" / "report.html").read_text()
    # scoring the base first leaves training as it was: the same losses as a run without eval_tasks
    del cfg["eval_tasks"]
    path.write_text(yaml.safe_dump({**cfg, "output_dir": str(tmp_path / "plain")}))
    assert main(["train", str(path)]) == 0
    assert losses(tmp_path / "plain") == losses(tmp_path / "run")


def test_a_bad_eval_task_in_a_training_config_stops_before_training(
        tmp_path, tiny_model_dir, gsm8k_small, capsys):
    import yaml

    cfg = {"model": str(tiny_model_dir),
           "data": {"train": str(gsm8k_small), "columns": {"question": "user",
                                                             "answer": "assistant"}},
           "output_dir": str(tmp_path / "run"), "max_steps": 2, "eval_tasks": ["no_such_benchmark"]}
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(cfg))
    assert main(["train", str(path)]) == 1
    assert "unknown task(s): no_such_benchmark" in " ".join(capsys.readouterr().err.split())
    assert not (tmp_path / "run" / "metrics.jsonl").exists()


def test_own_task_metrics_score_answers_against_references():
    from chattune.eval.own_task import scorer

    assert scorer("gsm8k")("so 12 in all\n#### 12", "6+6=12\n#### 12") == {"format_compliance": 1.0,
                                                                          "exact_match": 1.0}
    assert scorer("gsm8k")("12", "#### 12") == {"format_compliance": 0.0, "exact_match": 0.0}
    assert (scorer("last_number")("it costs $1,200.", "1200")
            == {"format_compliance": 1.0, "exact_match": 1.0})
    assert scorer("regex:answer: (\\w+)")("answer: Paris",
                                          "answer: Paris") == {"format_compliance": 1.0,
                                                               "exact_match": 1.0}
    assert scorer("contains")("The capital is Paris.", "Paris") == {"contains": 1.0}
    assert scorer("exact_match")(" Paris ", "Paris") == {"exact_match": 1.0}
    for bad in ("bleu", "regex:(", "python:no_such_module:f"):
        with pytest.raises(TaskError):
            scorer(bad)


def test_own_task_from_a_short_yaml_or_a_config_entry_runs_through_the_harness(
        tmp_path, tiny_model_dir, capsys, monkeypatch):
    """data + prompt + answer + metric, no lm-eval YAML: a Python metric by import path, and choice
    by loglikelihood; the harness gives each its mean and standard error."""
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "ds"))
    (tmp_path
     / "my_metrics.py").write_text("def half(answer, reference):\n    return {'half': 0.5}\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    (tmp_path / "qa.jsonl").write_text("".join(json.dumps(r) + "\n" for r in MC_ROWS))
    (tmp_path / "mine.yaml").write_text("data: qa.jsonl\nprompt: question\nanswer: answer\n"
                                        "metric: python:my_metrics:half\nmax_new_tokens: 4\n")
    out = tmp_path / "out.json"
    assert main(["eval", str(tiny_model_dir), "--tasks", str(tmp_path / "mine.yaml"), "--limit",
                 "3", "--out", str(out)]) == 0
    got = json.loads(out.read_text())["mine"]
    assert got["half"] == 0.5 and got["half_stderr"] == 0.0 and got["samples"] == 3

    from chattune.eval.tasks import resolve_tasks

    (choice,) = resolve_tasks([{"data": str(tmp_path / "qa.jsonl"), "prompt": "question",
                                "answer": "answer", "metric": "choice", "choices": "choices",
                                "name": "sums"}])
    assert choice["task"] == "sums" and choice["output_type"] == "multiple_choice"
    with pytest.raises(TaskError, match="unknown key"):
        resolve_tasks([{"data": str(tmp_path / "qa.jsonl"), "prompt": "q", "answer": "a",
                        "metric": "gsm8k", "colour": "red"}])


def test_the_shipped_gsm8k_format_task_scores_as_the_compare_section_does(
        tmp_path, tiny_model_dir, monkeypatch):
    """configs/tasks/gsm8k_format.yaml: gsm8k's format compliance and exact match through the
    harness, its data read from the YAML's folder; the same scoring function as the training run's
    before/after table."""
    from chattune.eval.own_task import scorer
    from chattune.eval.scoring import score_gsm8k

    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "ds"))
    out = tmp_path / "out.json"
    assert main(["eval", str(tiny_model_dir), "--tasks",
                 str(ROOT / "configs" / "tasks" / "gsm8k_format.yaml"),
                 "--limit", "2", "--out", str(out)]) == 0
    got = json.loads(out.read_text())["gsm8k_format"]
    assert got["samples"] == 2 and {"format_compliance", "exact_match"} <= set(got)
    answers, refs = ["so 12\n#### 12", "#### 7", "about 5"], ["#### 12", "#### 8", "#### 5"]
    per_item = [scorer("gsm8k")(a, r) for a, r in zip(answers, refs)]
    whole = score_gsm8k(answers, refs)
    assert sum(s["format_compliance"] for s in per_item) / 3 == whole.compliance == 2 / 3
    assert sum(s["exact_match"] for s in per_item) / 3 == whole.accuracy == 1 / 3
