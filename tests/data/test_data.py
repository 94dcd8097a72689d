import json

import pytest
from conftest import write_jsonl

from chattune.data.convert import conversations_from_rows, detect_format, to_conversation
from chattune.data.load import load_rows
from chattune.errors import DataError


def roles(conv):
    return [(m.role, m.content) for m in conv.messages]


@pytest.mark.parametrize("row,expected", [
    ({"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]},
     [("user", "hi"), ("assistant", "yo")]),
    ({"conversations": [{"from": "human", "value": "hi"}, {"from": "gpt", "value": "yo"}]},
     [("user", "hi"), ("assistant", "yo")]),
    ({"instruction": "add", "input": "1+1", "output": "2"},
     [("user", "add\n\n1+1"), ("assistant", "2")]),
    ({"prompt": "hi", "completion": "yo"}, [("user", "hi"), ("assistant", "yo")]),
    ({"messages": [{"role": "user",
                    "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]},
                   {"role": "assistant", "content": "c"}]}, [("user", "ab"), ("assistant", "c")]),
])
def test_shapes_convert(row, expected):
    assert roles(to_conversation(row)) == expected


def test_raw_text_is_plain_language_modelling(tokenizer):
    from chattune.templates.render import render

    conv = to_conversation({"text": "plain words"}, system_prompt="ignored for raw text")
    assert conv.text == "plain words" and conv.messages == []
    r = render(tokenizer, conv)
    assert r.labels == r.input_ids and r.input_ids[-1] == tokenizer.eos_token_id
    assert tokenizer.decode(r.input_ids, skip_special_tokens=True) == "plain words"


def test_format_override_and_prompt_template():
    row = {"text": "not this", "prompt": "p", "completion": "c"}
    # detection prefers prompt/completion
    assert roles(to_conversation(row)) == [("user", "p"), ("assistant", "c")]
    assert to_conversation(row, fmt="text").text == "not this"  # ... unless told
    with pytest.raises(DataError, match=r"row 4, field 'instruction': expected column "
                                        r"'instruction' \(format alpaca\)"):
        to_conversation(row, fmt="alpaca", source="f.jsonl", row_no=4)
    conv = to_conversation({"question": "2+2?", "topic": "sums", "answer": "4"},
                           columns={"answer": "assistant"},
                           prompt_template="[{topic}] Question: {question}",
                           system_prompt="Be brief.")
    assert roles(conv) == [("system", "Be brief."), ("user", "[sums] Question: 2+2?"),
                           ("assistant", "4")]
    with pytest.raises(DataError,
                       match=r"field 'topic': expected column 'topic' \(from prompt_template\)"):
        to_conversation({"question": "q", "answer": "a"}, columns={"answer": "assistant"},
                        prompt_template="{topic}: {question}")


def test_column_mapping_and_system_prompt():
    columns = {"question": "user", "answer": "assistant"}
    conv = to_conversation({"question": "2+2?", "answer": "#### 4"}, columns=columns,
                           system_prompt="Be brief.")
    assert roles(conv) == [("system", "Be brief."), ("user", "2+2?"), ("assistant", "#### 4")]
    assert detect_format({"question": "x"}) is None


def test_errors_name_file_row_field():
    with pytest.raises(DataError) as e:
        to_conversation({"messages": [{"role": "", "content": "x"}]}, source="f.jsonl", row_no=7)
    assert "f.jsonl, row 7" in str(e.value) and "role must be a non-empty string" in str(e.value)
    with pytest.raises(DataError, match=r"row 3, field 'answer'.*expected column 'answer'"):
        to_conversation({"question": "q"}, source="g.jsonl", row_no=3,
                        columns={"question": "user", "answer": "assistant"})
    with pytest.raises(DataError, match=r"field 'messages\[1\].content'.*found int"):
        to_conversation({"messages": [{"role": "user", "content": "a"},
                                      {"role": "assistant", "content": 5}]})
    # a system message later in the conversation is the template's to place (or refuse), not
    # chattune's
    late = to_conversation({"messages": [{"role": "user", "content": "a"},
                                         {"role": "system", "content": "s"},
                                         {"role": "assistant", "content": "b"}]})
    assert [m.role for m in late.messages] == ["user", "system", "assistant"]
    with pytest.raises(DataError, match="cannot tell the data format"):
        to_conversation({"foo": 1})


def test_all_bad_rows_listed(tmp_path):
    rows = [(i, {"text": ""}) for i in range(1, 31)]
    with pytest.raises(DataError) as e:
        conversations_from_rows(rows, "d.jsonl")
    assert "30 bad row(s)" in str(e.value) and "and 10 more" in str(e.value)


def test_load_formats(tmp_path):
    rows = [{"prompt": "p1", "completion": "c1"}, {"prompt": "p2", "completion": "c2"}]
    write_jsonl(tmp_path / "a.jsonl", rows)
    (tmp_path / "a.json").write_text(json.dumps(rows))
    (tmp_path / "b.json").write_text(json.dumps({"prompt": ["p1", "p2"],
                                                 "completion": ["c1", "c2"]}))
    (tmp_path / "a.csv").write_text("prompt,completion\np1,c1\np2,c2\n")
    import pyarrow as pa
    import pyarrow.parquet as pq
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "a.parquet")
    import datasets
    datasets.Dataset.from_list(rows).save_to_disk(str(tmp_path / "saved"))
    for name in ("a.jsonl", "a.json", "b.json", "a.csv", "a.parquet", "saved"):
        assert [r for _, r in load_rows(str(tmp_path / name))] == rows, name


def test_broken_files(tmp_path):
    (tmp_path / "bad.jsonl").write_text('{"text": "ok"}\n{"text": "cut\n')
    with pytest.raises(DataError, match=r"bad.jsonl, .*: expected a JSON object") as e:
        load_rows(str(tmp_path / "bad.jsonl"))
    assert e.value.row == 2 and e.value.row.where == "line 2"
    (tmp_path / "empty.jsonl").write_text("")
    with pytest.raises(DataError, match="no rows found"):
        load_rows(str(tmp_path / "empty.jsonl"))
    (tmp_path / "ragged.csv").write_text("a,b\n1,2\n3\n")
    with pytest.raises(DataError, match=r"expected 2 fields like the header, found 1") as e:
        load_rows(str(tmp_path / "ragged.csv"))
    # the line an editor shows, the header being line 1
    assert e.value.row == 3 and e.value.row.where == "line 3"
    (tmp_path / "latin.jsonl").write_bytes(b'{"text": "caf\xe9"}\n')
    with pytest.raises(DataError, match="expected UTF-8"):
        load_rows(str(tmp_path / "latin.jsonl"))
    with pytest.raises(DataError, match="file not found"):
        load_rows(str(tmp_path / "missing.jsonl"))
    (tmp_path / "x.txt").write_text("hi")
    with pytest.raises(DataError, match="unknown file type"):
        load_rows(str(tmp_path / "x.txt"))


def test_gzipped_gsm8k_ships():
    from conftest import ROOT
    rows = load_rows(str(ROOT / "data" / "gsm8k" / "train.jsonl.gz"))
    assert len(rows) == 7473 and set(rows[0][1]) == {"question", "answer"}
    assert len(load_rows(str(ROOT / "data" / "gsm8k" / "test.jsonl"))) == 1319


def test_column_mapping_orders_messages_by_role():
    conv = to_conversation({"answer": "4", "question": "2+2?"},
                           columns={"answer": "assistant", "question": "user"})
    assert [m.role for m in conv.messages] == ["user", "assistant"]


def test_tools_as_a_json_string_are_parsed_and_bad_tools_named():
    tool = {"type": "function",
            "function": {"name": "get_weather", "parameters": {"type": "object"}}}
    msgs = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]
    as_list = to_conversation({"messages": msgs, "tools": [tool]})
    assert (to_conversation({"messages": msgs, "tools": json.dumps([tool])}).tools
            == as_list.tools == [tool])
    assert to_conversation({"messages": msgs, "tools": None}).tools is None
    with pytest.raises(DataError,
                       match="field 'tools': expected a list of tools or that list as JSON"):
        to_conversation({"messages": msgs, "tools": "[{"}, source="d.jsonl", row_no=3)
    with pytest.raises(DataError,
                       match="field 'tools': expected a list of tool objects, found dict"):
        to_conversation({"messages": msgs, "tools": json.dumps(tool)})
