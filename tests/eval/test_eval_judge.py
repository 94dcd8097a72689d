"""LLM-as-judge: both orders cancel position bias, verdicts and outcomes, answer files, errors; and
a real local OpenAI-compatible server as the judge."""

import json

import pytest

from chattune.cli import main
from chattune.errors import DataError, JudgeError
from chattune.eval.judge import (
    DEFAULT_RUBRIC,
    check_rubric,
    fill_rubric,
    judge_pairs,
    outcome,
    parse_verdict,
    summarise,
)
from chattune.eval.judge_files import answer_pairs, write_judgement
from chattune.eval.judges import EndpointJudge, api_base

QUESTIONS = [f"What is {i} + {i}?" for i in range(6)]
BASE = [f"I think it is {i}." for i in range(6)]
TUNED = [f"{i} + {i} = {2 * i}. #### {2 * i}" for i in range(6)]


def always(letter):
    return lambda prompts: [f"Both fine. [[{letter}]]" for _ in prompts]


def prefers_tuned(prompts):
    """A judge that reads the answers and picks whichever holds '####' (the tuned one), wherever it
    is shown."""
    replies = []
    for p in prompts:
        a = p.split("[Assistant A's answer]")[1].split("[Assistant B's answer]")[0]
        replies.append("A shows its working. [[A]]" if "####" in a
                       else "B shows its working. [[B]]")
    return replies


def test_a_judge_that_always_prefers_the_first_position_gives_a_tie_overall():
    for letter in "AB":
        items = judge_pairs(always(letter), QUESTIONS, BASE, TUNED)
        s = summarise(items, "base", "tuned", "always-" + letter, DEFAULT_RUBRIC)
        assert (s.wins, s.ties, s.losses) == (0, 6, 0)
        assert s.win_rate == 0.5 and s.same_position == 6


def test_a_judge_that_reads_the_answers_gives_the_better_set_every_win_in_both_orders():
    items = judge_pairs(prefers_tuned, QUESTIONS, BASE, TUNED)
    assert [(j.verdict_in_order, j.verdict_swapped) for j in items] == [("B", "A")] * 6
    s = summarise(items, "base", "tuned", "reader", DEFAULT_RUBRIC)
    assert (s.wins, s.ties, s.losses, s.win_rate, s.same_position) == (6, 0, 0, 1.0, 0)
    flipped = summarise(judge_pairs(prefers_tuned, QUESTIONS, TUNED, BASE), "tuned", "base",
                        "reader", DEFAULT_RUBRIC)
    assert (flipped.wins, flipped.losses, flipped.win_rate) == (0, 6, 0.0)


def test_outcomes_verdicts_and_the_confidence_interval():
    assert outcome("B", "A") == "win" and outcome("A", "B") == "loss"
    assert outcome("B", "C") == "win" and outcome("C", "B") == "loss" and outcome("A", "A") == "tie"
    assert outcome(None, None) == "tie" and outcome(None, "A") == "win"
    assert (parse_verdict("first [[A]] then, on reflection, [[ B ]]") == "B"
            and parse_verdict("A is better") is None)
    mixed = judge_pairs(lambda ps: ["[[B]]", "[[A]]", "[[A]]", "[[A]]", "[[B]]", "[[B]]"],
                        QUESTIONS[:3], BASE[:3],
                        TUNED[:3])  # in order: B, A, A; swapped: A, B, B -> win, loss, loss
    s = summarise(mixed, "base", "tuned", "j", DEFAULT_RUBRIC)
    assert (s.wins, s.ties, s.losses) == (1, 0, 2)
    assert s.ci95[0] == 0.0 and 1 / 3 < s.ci95[1] <= 1.0  # 1/3 +- 1.96 * 0.577 / sqrt(3), clipped


def test_the_rubric_is_replaceable_and_checked():
    mine = ("Q: {question}\nA: {answer_a}\nB: {answer_b}\nReference: {reference}\n"
            'JSON like {"x": 1}. [[A]]/[[B]]/[[C]]')
    text = fill_rubric(check_rubric(mine), "q?", "one", "two", "ref")
    assert text.startswith("Q: q?\nA: one\nB: two\nReference: ref") and '{"x": 1}' in text
    seen = []
    judge_pairs(lambda ps: seen.extend(ps) or ["[[C]]"] * len(ps), ["q?"], ["one"], ["two"],
                rubric=mine)
    assert (seen[0].startswith("Q: q?\nA: one\nB: two")
            and seen[1].startswith("Q: q?\nA: two\nB: one"))
    with pytest.raises(JudgeError, match=r"my.txt: .*missing \{answer_b\}"):
        check_rubric("{question} {answer_a}", "my.txt")


def _compare_jsonl(folder, questions=QUESTIONS, base=BASE, tuned=TUNED):
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / "compare.jsonl").open("w") as f:
        for q, b, t in zip(questions, base, tuned):
            f.write(json.dumps({"question": q, "reference": "r", "base": b, "tuned": t}) + "\n")
    return folder


def test_answer_sets_from_a_run_two_runs_and_generate_output(tmp_path):
    run = _compare_jsonl(tmp_path / "run1")
    pairs = answer_pairs(str(run))
    assert ((pairs.first_name, pairs.second_name, pairs.first, pairs.second)
            == ("base", "tuned", BASE, TUNED))
    other = _compare_jsonl(tmp_path / "run2", tuned=[t + "!" for t in TUNED])
    two = answer_pairs(str(run), str(other / "compare.jsonl"), limit=4)
    assert (two.first_name, two.second_name, len(two.questions)) == ("run1", "run2", 4)
    assert two.second == [t + "!" for t in TUNED[:4]]
    gen = tmp_path / "gen.jsonl"
    gen.write_text("".join(json.dumps({"messages": [{"role": "user", "content": q}],
                                       "generation": "g"}) + "\n"
                           for q in QUESTIONS))
    assert answer_pairs(str(run), str(gen)).second == ["g"] * 6
    wrong = _compare_jsonl(tmp_path / "run3",
                           questions=QUESTIONS[:2] + ["Another?"] + QUESTIONS[3:])
    with pytest.raises(DataError, match=r"run3/compare.jsonl, row 3, field "
                                        r"'question'|run3/compare.jsonl.*row 3"):
        answer_pairs(str(run), str(wrong))
    with pytest.raises(DataError, match="compare.jsonl"):
        answer_pairs(str(tmp_path))


def test_a_judgement_is_never_overwritten(tmp_path):
    items = judge_pairs(always("A"), QUESTIONS, BASE, TUNED)
    s = summarise(items, "base", "tuned", "j", DEFAULT_RUBRIC)
    summary_path, items_path = write_judgement(tmp_path, items, s)
    saved = [json.loads(line) for line in items_path.read_text().splitlines()]
    assert saved[0]["reply_in_order"] == "Both fine. [[A]]" and saved[0]["outcome"] == "tie"
    assert json.loads(summary_path.read_text())["ties"] == 6
    with pytest.raises(JudgeError, match="already hold"):
        write_judgement(tmp_path, items, s)


def test_an_unreachable_judge_url_is_a_clear_error_before_any_judging(tmp_path, capsys):
    assert api_base("http://localhost:8000") == "http://localhost:8000/v1"
    assert api_base("http://h:1/api/v1/") == "http://h:1/api/v1"
    with pytest.raises(JudgeError, match="cannot be reached"):
        EndpointJudge("http://127.0.0.1:9")  # the discard port: nothing listens
    run = _compare_jsonl(tmp_path / "run")
    assert main(["judge", str(run), "--judge-url", "http://127.0.0.1:9/v1"]) == 1
    err = capsys.readouterr().err
    assert "cannot be reached" in err and "Traceback" not in err
    assert not (run / "judge.json").exists()
    assert main(["judge", str(run), "--judge-url", "localhost:8000"]) == 1
    assert "expected http(s)://" in capsys.readouterr().err


# --- a real OpenAI-compatible server: `transformers serve` with the default model, started
# here --------------------

@pytest.fixture(scope="module")
def judge_server(default_model_dir, tmp_path_factory):
    """`transformers serve` pinned to the default model on a free local port; (base URL, its log
    file)."""
    import os
    import socket
    import subprocess
    import sys
    import time
    import urllib.request

    pytest.importorskip("fastapi", reason="transformers serve needs fastapi, uvicorn and openai "
                                          "(the dev extra)")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log_path = tmp_path_factory.mktemp("judge-server") / "server.log"
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_HUB_DISABLE_UPDATE_CHECK="1")
    with log_path.open("w") as log:
        proc = subprocess.Popen([sys.executable, "-m", "transformers.cli.transformers", "serve",
                                 str(default_model_dir),
                                 "--host", "127.0.0.1", "--port", str(port), "--device", "cpu"],
                                env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 300
        while True:
            assert proc.poll() is None, f"the server stopped: {log_path.read_text()[-2000:]}"
            assert time.monotonic() < deadline, "the server did not start in 300 s"
            try:
                with urllib.request.urlopen(base + "/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                time.sleep(0.5)
        yield base + "/v1", log_path
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.mark.slow
def test_the_judge_talks_to_a_real_local_server(judge_server, tmp_path, capsys):
    url, log = judge_server
    run = _compare_jsonl(tmp_path / "run", QUESTIONS[:3], BASE[:3], TUNED[:3])
    before = log.read_text().count("POST /v1/chat/completions")
    assert main(["judge", str(run), "--judge-url", url, "--max-tokens", "48", "--parallel",
                 "2"]) == 0
    out = capsys.readouterr().out
    assert "tuned vs base:" in out and "win rate" in out
    summary = json.loads((run / "judge.json").read_text())
    items = [json.loads(line) for line in (run / "judge.jsonl").read_text().splitlines()]
    assert summary["n"] == 3 and summary["wins"] + summary["ties"] + summary["losses"] == 3
    # pinned: /v1/models lists nothing, requests name no model
    assert summary["judge"] == f"the model at {url}"
    assert len(items) == 3 and all(j["reply_in_order"] and j["reply_swapped"] for j in items)
    for j in items:  # what was saved is what decided the outcome
        assert j["verdict_in_order"] == parse_verdict(j["reply_in_order"])
        assert j["outcome"] == outcome(j["verdict_in_order"], j["verdict_swapped"])
    # each pair in both orders, each a request the server answered
    assert log.read_text().count("POST /v1/chat/completions") - before == 6


@pytest.mark.slow
def test_a_training_run_with_a_judge_url_judges_base_against_tuned(
        judge_server, tmp_path, tiny_model_dir, gsm8k_small):
    import chattune

    url, _ = judge_server
    columns = {"question": "user", "answer": "assistant"}
    compare = {"data": str(gsm8k_small), "columns": columns, "num_samples": 2, "max_new_tokens": 8,
               "batch_size": 2, "judge": {"url": url, "max_tokens": 32}}
    cfg = chattune.build_config({"model": str(tiny_model_dir), "output_dir": str(tmp_path / "out"),
                                 "merge": False, "data": {"train": str(gsm8k_small),
                                                          "columns": columns}, "max_steps": 2,
                                 "per_device_train_batch_size": 2, "compare": compare})
    result = chattune.run_training(cfg)
    out = tmp_path / "out"
    assert result.judge["n"] == 2 and json.loads((out
                                                  / "compare.json").read_text())["judge"]["n"] == 2
    assert len((out / "judge.jsonl").read_text().splitlines()) == 2
    assert "<h2>Judge: tuned vs base</h2>" in (out / "report.html").read_text()


def test_a_training_run_with_an_unreachable_judge_fails_before_any_work(
        tmp_path, tiny_model_dir, gsm8k_small, capsys):
    import yaml

    columns = {"question": "user", "answer": "assistant"}
    cfg = {"model": str(tiny_model_dir), "output_dir": str(tmp_path / "out"), "merge": False,
           "max_steps": 2, "data": {"train": str(gsm8k_small), "columns": columns},
           "compare": {"data": str(gsm8k_small), "columns": columns, "judge": {"url": "http://127.0.0.1:9/v1"}}}
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(cfg))
    assert main(["train", str(path)]) == 1
    err = capsys.readouterr()
    assert ("cannot be reached" in err.err and "generating" not in err.out
            and "Traceback" not in err.err)
    assert (not (tmp_path / "out" / "adapter").exists()
            and not (tmp_path / "out" / "compare.jsonl").exists())


def test_a_local_model_as_the_judge(tmp_path, tiny_model_dir, capsys):
    run = _compare_jsonl(tmp_path / "run", QUESTIONS[:2], BASE[:2], TUNED[:2])
    rubric = tmp_path / "rubric.txt"
    rubric.write_text("Which is right? {question}\n(A) {answer_a}\n(B) {answer_b}\nSay [[A]], "
                      "[[B]] or [[C]].")
    assert main(["judge", str(run), "--judge", str(tiny_model_dir), "--rubric", str(rubric),
                 "--max-tokens", "4", "--out", str(tmp_path / "verdicts"), "--device", "cpu"]) == 0
    summary = json.loads((tmp_path / "verdicts" / "judge.json").read_text())
    assert summary["judge"] == str(tiny_model_dir) and summary["n"] == 2
    assert summary["rubric"].startswith("Which is right?")
    # a random tiny model gives no verdict: each order counts as a tie
    assert summary["no_verdict"] == 4
    assert (summary["ties"], summary["win_rate"]) == (2, 0.5)
    assert main(["judge", str(run), "--judge", str(tiny_model_dir), "--rubric",
                 str(tmp_path / "none.txt")]) == 1
    assert "none.txt: no such file" in capsys.readouterr().err
