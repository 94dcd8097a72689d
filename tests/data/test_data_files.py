"""Data files as users have them (a byte-order mark, CRLF, blank lines, quoted line breaks), and
errors that name the line an editor shows."""

import gzip
import json
import pickle

import pytest

from chattune.data.convert import to_conversation
from chattune.data.load import RowNo, load_rows
from chattune.errors import DataError

BOM = "\ufeff"
ROWS = [{"prompt": "p1", "completion": "c1"}, {"prompt": "p2, with a comma", "completion": "c2"}]


def write(path, text: str, *, bom: bool = False, crlf: bool = False):
    text = text.replace("\n", "\r\n") if crlf else text
    path.write_bytes(((BOM if bom else "") + text).encode("utf-8"))
    return str(path)


def loaded(source: str) -> list[tuple[int, str, dict]]:
    return [(int(n), n.where, row) for n, row in load_rows(source)]


def jsonl_text(rows) -> str:
    return "".join(json.dumps(r) + "\n" for r in rows)


def csv_text() -> str:
    return 'prompt,completion\np1,c1\n"p2, with a comma",c2\n'


@pytest.mark.parametrize("name,text",
                         [("d.jsonl", jsonl_text(ROWS)), ("d.json", json.dumps(ROWS, indent=1)),
                          ("d.csv", csv_text())])
def test_bom_and_crlf_give_the_same_rows(tmp_path, name, text):
    plain = loaded(write(tmp_path / name, text))
    assert [row for _, _, row in plain] == ROWS
    for bom, crlf in ((True, False), (False, True), (True, True)):
        assert loaded(write(tmp_path / f"{bom}{crlf}{name}", text, bom=bom,
                            crlf=crlf)) == plain, (bom, crlf)


def test_gzipped_jsonl_with_bom(tmp_path):
    path = tmp_path / "d.jsonl.gz"
    path.write_bytes(gzip.compress((BOM + jsonl_text(ROWS).replace("\n", "\r\n")).encode()))
    assert [row for _, row in load_rows(str(path))] == ROWS


def test_csv_bom_leaves_the_first_column_name_alone(tmp_path):
    rows = load_rows(write(tmp_path / "excel.csv", csv_text(), bom=True, crlf=True))
    # no "\r" either
    assert list(rows[0][1]) == ["prompt", "completion"] and rows[0][1]["completion"] == "c1"
    assert [(n, n.where) for n, _ in rows] == [(2, "line 2"), (3, "line 3")]  # the header is line 1


def test_jsonl_numbers_are_editor_lines(tmp_path):
    text = jsonl_text(ROWS) + "\n" + jsonl_text(ROWS[:1]) + '{"prompt": "p5", "completion": ""}\n'
    source = write(tmp_path / "d.jsonl", text, crlf=True)
    rows = load_rows(source)
    assert [(n, n.where) for n, _ in rows] == [(1, "line 1"), (2, "line 2"), (4, "line 4"),
                                               (5, "line 5")]
    with pytest.raises(DataError, match="content is empty") as e:  # converting keeps the line
        to_conversation(rows[-1][1], source=source, row_no=rows[-1][0])
    assert e.value.row.where == "line 5" and str(e.value).startswith(source)


def test_bad_jsonl_line_after_a_blank_line(tmp_path):
    source = write(tmp_path / "d.jsonl",
                   jsonl_text(ROWS) + "\n" + jsonl_text(ROWS[:1]) + '{"prompt": "p5",\n')
    with pytest.raises(DataError,
                       match="expected a JSON object on this line, found invalid JSON") as e:
        load_rows(source)
    assert e.value.row == 5 and e.value.row.where == "line 5"


def test_ragged_csv_row_names_its_line_and_the_counts(tmp_path):
    text = "a,b,c\n" + "1,2,3\n" * 5 + "1,2,3,4\n"
    with pytest.raises(DataError,
                       match=r"expected 3 fields like the header, found 4 \(a field holding a comma"
                       ) as e:
        load_rows(write(tmp_path / "data.csv", text, bom=True, crlf=True))
    assert e.value.row.where == "line 7" and "data.csv" in str(e.value)


def test_csv_quoted_line_breaks_and_blank_lines_keep_editor_lines(tmp_path):
    text = 'prompt,completion\n"line one\nline two\nline three",c1\n\np3,c3\np4\n'
    source = write(tmp_path / "d.csv", text, crlf=True)
    with pytest.raises(DataError, match="expected 2 fields") as e:
        load_rows(source)
    assert e.value.row.where == "line 7"
    rows = load_rows(write(tmp_path / "ok.csv", text.replace("p4\n", "p4,\n"), crlf=True))
    # a row is named by the line it starts on
    assert [n.where for n, _ in rows] == ["line 2", "line 6", "line 7"]
    # quoted text is kept as written
    assert rows[0][1]["prompt"] == "line one\r\nline two\r\nline three"
    with pytest.raises(DataError, match="content is empty") as e:
        to_conversation(rows[2][1], source=source, row_no=rows[2][0])
    assert e.value.row.where == "line 7"


@pytest.fixture(params=[None, 5], ids=["whole", "5-character blocks"])
def json_blocks(request, monkeypatch):
    """JSON lists are read a block at a time (JSON_BLOCK characters): with tiny blocks every item,
    number and error straddles a block's end, and rows and lines must come out the same."""
    if request.param:
        monkeypatch.setattr("chattune.data.load.JSON_BLOCK", request.param)


def test_json_items_name_their_index_and_line(tmp_path, json_blocks):
    source = write(tmp_path / "d.json", json.dumps(ROWS + ["not an object"], indent=2), bom=True,
                   crlf=True)
    with pytest.raises(DataError, match="expected an object, found str") as e:
        load_rows(source)
    assert e.value.row == 10 and e.value.row.where == "line 10 (item [2])"
    rows = load_rows(write(tmp_path / "ok.json", json.dumps(ROWS, indent=2)))
    assert [n.where for n, _ in rows] == ["line 2 (item [0])", "line 6 (item [1])"]
    assert [n.where for n, _ in load_rows(write(tmp_path / "one.json", json.dumps(ROWS)))] == \
        ["line 1 (item [0])", "line 1 (item [1])"]
    # no line per row here: the record number
    columns = {"prompt": ["p1", "p2"], "completion": ["c1", "c2"]}
    assert ([n.where for n, _ in load_rows(write(tmp_path / "cols.json", json.dumps(columns),
                                                 bom=True))] ==
            ["row 1", "row 2"])


@pytest.mark.parametrize("text,line,found", [
    ('[\n {"a": 1},\n {"a": 2}\n {"a": 3}\n]', 4, "Expecting ',' delimiter"),
    ('[\n {"a": 1},\n]', 3, "Expecting value"),  # a trailing comma is not JSON
    ('[{"a": 1}]\n[]', 2, "Extra data"),
    ('{"a": [1,\n 2}', 2, "Expecting"),
    ("[]", None, "no rows found"),
])
def test_broken_json_names_the_line(tmp_path, text, line, found, json_blocks):
    with pytest.raises(DataError, match=found) as e:
        load_rows(write(tmp_path / "d.json", text))
    assert ((e.value.row.where if e.value.row is not None else None)
            == (None if line is None else f"line {line}"))


def test_not_utf8_names_the_line(tmp_path):
    path = tmp_path / "latin.jsonl"
    path.write_bytes(b'{"text": "ok"}\r\n\r\n{"text": "caf\xe9"}\r\n')
    with pytest.raises(DataError, match=r"expected UTF-8 text, found byte 0xe9") as e:
        load_rows(str(path))
    assert e.value.row.where == "line 3"
    path.write_bytes('{"text": "ok"}\n'.encode("utf-16"))
    with pytest.raises(DataError, match="found UTF-16"):
        load_rows(str(path))


def test_row_numbers_survive_pickling():
    n = pickle.loads(pickle.dumps(RowNo(7, "line 7")))  # rows travel to preparation workers
    assert (type(n), n, n.where) == (RowNo, 7, "line 7") and f"{n}" == "7"
    assert RowNo(3).where == "row 3"


def test_a_long_json_list_read_in_blocks_gives_every_row_and_line(tmp_path, monkeypatch):
    rows = [{"prompt": f"p{i}" * (i % 7), "n": 10 ** (i % 12), "x": [1.5, None, True]}
            for i in range(300)]
    source = write(tmp_path / "d.json", json.dumps(rows, indent=1), crlf=True)
    whole = loaded(source)
    monkeypatch.setattr("chattune.data.load.JSON_BLOCK", 64)
    assert loaded(source) == whole and [r for _, _, r in whole] == rows
    assert whole[299][1] == f"line {2 + 299 * 9} (item [299])"


def test_a_line_too_long_to_be_a_row_is_refused_with_memory_flat(tmp_path, monkeypatch):
    import tracemalloc

    monkeypatch.setattr("chattune.data.load.MAX_LINE_CHARS", 1000)
    # one 4 MB line: a JSON document saved as .jsonl
    long_line = '{"text": "' + "x" * 4_000_000 + '"}\n'
    source = write(tmp_path / "one-line.jsonl", jsonl_text(ROWS) + long_line + jsonl_text(ROWS))
    tracemalloc.start()
    try:
        with pytest.raises(DataError, match=r"one-line.jsonl, line 3: expected a row of at most "
                           r"1,000 characters \(chattune.data.load.MAX_LINE_CHARS\) on one line, "
                           r"found a longer line") as e:
            load_rows(source)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    # a tenth of the line: it was never held whole
    assert e.value.row.where == "line 3" and peak < 400_000, peak
    # a line of exactly the limit is a row, whatever its line end
    exact = '{"text": "' + "y" * (1000 - 12) + '"}'
    assert len(exact) == 1000
    for crlf in (False, True):
        rows = loaded(write(tmp_path / f"exact{crlf}.jsonl", exact + "\n" + jsonl_text(ROWS),
                            crlf=crlf))
        assert [where for _, where, _ in rows] == ["line 1", "line 2", "line 3"], crlf


def test_a_json_list_item_too_long_to_be_a_row_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr("chattune.data.load.MAX_LINE_CHARS", 1000)
    monkeypatch.setattr("chattune.data.load.JSON_BLOCK", 100)
    source = write(tmp_path / "d.json", json.dumps([ROWS[0], {"text": "x" * 100_000}]))
    with pytest.raises(DataError,
                       match=r"item \[1\]\): expected a row of at most 1,000 characters"):
        load_rows(source)
