"""Data as people have it: the usual prompt/response column pairs train with no mapping, the mapping
chosen is said once per file, and a file of unknown columns is one error naming both ways to fix
it."""

import csv
import json

import pytest
import yaml

from chattune.cli import main
from chattune.data.convert import conversations_from_rows, detect_format, to_conversation
from chattune.data.shapes import ShapeTally, describe_shape, find_pair
from chattune.errors import DataError


def roles(conv):
    return [(m.role, m.content) for m in conv.messages]


@pytest.mark.parametrize("row,fmt,expected", [
    ({"instruction": "Say hi", "response": "Hello"}, "instruction_response",
     [("user", "Say hi"), ("assistant", "Hello")]),
    ({"instruction": "Sum", "context": "1 and 2", "response": "3", "category": "qa"},
     "instruction_response", [("user", "Sum\n\n1 and 2"), ("assistant", "3")]),
    ({"instruction": "Add", "input": "1+1", "output": "2"}, "alpaca",
     [("user", "Add\n\n1+1"), ("assistant", "2")]),
    ({"instruction": "Add", "input": "", "output": "2"}, "alpaca",
     [("user", "Add"), ("assistant", "2")]),
    ({"question": "2+2?", "answer": "4"}, "question_answer",
     [("user", "2+2?"), ("assistant", "4")]),
    ({"prompt": "p", "response": "r"}, "prompt_response", [("user", "p"), ("assistant", "r")]),
    ({"query": "q", "response": "r"}, "query_response", [("user", "q"), ("assistant", "r")]),
    ({"input": "i", "output": "o"}, "input_output", [("user", "i"), ("assistant", "o")]),
    ({"human": "h", "assistant": "a"}, "human_assistant", [("user", "h"), ("assistant", "a")]),
    ({"user": "u", "assistant": "a"}, "user_assistant", [("user", "u"), ("assistant", "a")]),
    ({"system_prompt": "Be brief.", "question": "q", "response": "r", "id": "x1"},
     "question_response", [("system", "Be brief."), ("user", "q"), ("assistant", "r")]),
    ({"prompt": "p", "completion": "c", "system": "S"}, "prompt_completion",
     [("system", "S"), ("user", "p"), ("assistant", "c")]),
    # a spreadsheet's header
    ({"Instruction ": "Say hi", " Response": "Hello"}, "instruction_response",
     [("user", "Say hi"), ("assistant", "Hello")]),
])
def test_column_pairs_are_recognised(row, fmt, expected):
    assert detect_format(row) == fmt
    assert roles(to_conversation(row)) == expected


def test_ambiguous_rows_take_the_first_pair_in_order_whatever_the_column_order():
    for row in ({"instruction": "i", "input": "x", "output": "o", "response": "r"},
                {"response": "r", "output": "o", "input": "x", "instruction": "i"}):
        assert detect_format(row) == "alpaca"
        assert roles(to_conversation(row)) == [("user", "i\n\nx"), ("assistant", "o")]
    for row in ({"question": "q", "answer": "a", "response": "r"},
                {"response": "r", "answer": "a", "question": "q"}):
        assert detect_format(row) == "question_answer"
    # a pair wins over a text column (tatsu-lab/alpaca holds both); messages win over a pair
    assert detect_format({"instruction": "i", "output": "o", "text": "formatted"}) == "alpaca"
    assert detect_format({"messages": [], "question": "q", "answer": "a"}) == "messages"
    described = find_pair(["instruction", "input", "output", "response"]).describe()
    assert described == ("instruction/output columns: instruction + input -> user, output -> "
                         "assistant; not used: response (also fits instruction_response: --columns "
                         "or data.columns picks another)")


def test_a_named_format_finds_its_columns_and_says_which_are_missing():
    assert roles(to_conversation({"Question": "q", "Answer": "a"}, fmt="question_answer")) == [
        ("user", "q"), ("assistant", "a")]
    with pytest.raises(DataError, match=r"row 3, field 'answer': expected column 'answer' \(format "
                                        r"question_answer"):
        to_conversation({"question": "q"}, fmt="question_answer", source="d.jsonl", row_no=3)


def test_unknown_columns_are_one_error_per_file_with_both_fixes():
    rows = [(i, {"a": f"x{i}", "b": "y"}) for i in range(2, 14)]
    with pytest.raises(DataError) as e:
        conversations_from_rows(rows, "pairs.csv")
    text = str(e.value)
    assert "12 bad row(s)" in text and text.count("cannot tell the data format") == 1
    assert ("12 rows (row 2 to row 13)" in text and "['a', 'b']" in text
            and "instruction[+input]/output" in text)
    assert ("--columns a=user b=assistant" in text
            and "data.columns: {a: user, b: assistant}" in text)
    # one row alone says it too
    with pytest.raises(DataError, match=r"--columns a=user b=assistant.*data.columns"):
        to_conversation({"a": 1, "b": 2})


def test_the_tally_says_each_files_mapping_once():
    tally = ShapeTally("mix.jsonl")
    rows = [(1, {"instruction": "i", "response": "r"}),
            (2, {"instruction": "i", "context": "c", "response": "r"}),
            (3, {"messages": []}), (4, {"x": 1}), (5, {"x": 2})]
    assert list(tally.tap(rows)) == rows
    assert tally.lines() == [
        "mix.jsonl: 2 rows, instruction/response columns: instruction + context -> user, response "
        "-> assistant",
        "mix.jsonl: 1 row, messages (OpenAI chat format)",
        "mix.jsonl: 2 rows, columns x: no recognised shape"]
    assert describe_shape(["q", "a"], mapped={"q": "user", "a": "assistant"}) == \
        "columns as mapped: q -> user, a -> assistant"


def write_csv(path, header, rows):
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def pairs_csv(tmp_path, gsm8k_small):
    rows = [json.loads(line) for line in gsm8k_small.read_text().splitlines()]
    return write_csv(tmp_path / "pairs.csv", ["instruction", "response"],
                     [(r["question"], r["answer"]) for r in rows])


def test_an_instruction_response_csv_trains_with_no_mapping(tmp_path, tiny_model_dir, gsm8k_small,
                                                            capsys):
    data = pairs_csv(tmp_path, gsm8k_small)
    assert main(["data", "check", str(data), "--model", str(tiny_model_dir)]) == 0
    out = capsys.readouterr().out
    assert (f"{data}: 12 rows, instruction/response columns: instruction -> user, response -> "
            "assistant") in out
    assert f"tokenizer of {tiny_model_dir}" in out and "template the tokenizer's own" in out
    assert "max_length 1024" in out
    cfg = {"model": str(tiny_model_dir), "data": {"train": str(data)}, "finetuning": "lora",
           "output_dir": str(tmp_path / "out"), "max_steps": 2, "per_device_train_batch_size": 4,
           "logging_steps": 1, "max_length": 256}
    (tmp_path / "cfg.yaml").write_text(yaml.safe_dump(cfg))
    assert main(["train", str(tmp_path / "cfg.yaml")]) == 0
    out = capsys.readouterr().out
    assert out.count("instruction/response columns: instruction -> user, response -> "
                     "assistant") == 1
    assert (tmp_path / "out" / "adapter" / "adapter_config.json").is_file()


def test_data_check_names_an_unknown_format_once(tmp_path, tiny_model_dir, capsys):
    data = write_csv(tmp_path / "odd.csv", ["q", "a"],
                     [(f"question {i}", f"answer {i}") for i in range(12)])
    assert main(["data", "check", str(data), "--model", str(tiny_model_dir)]) == 1
    out = capsys.readouterr().out
    assert out.count("cannot tell the data format") == 1 and "12 rows (line 2 to line 13)" in out
    assert "--columns q=user a=assistant" in out and "data.columns: {q: user, a: assistant}" in out
    assert main(["data", "check", str(data), "--model", str(tiny_model_dir), "--columns", "q=user",
                 "a=assistant", "--json", "--max-length", "128"]) == 0
    report = json.loads(capsys.readouterr().out)[0]
    assert report["shapes"] == [f"{data}: 12 rows, columns as mapped: q -> user, a -> assistant"]
    assert (report["tokenizer"], report["template"], report["max_length"]) == (
        str(tiny_model_dir), "the tokenizer's own", 128)
