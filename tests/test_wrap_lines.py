"""scripts/wrap_lines.py: long lines come back within 100 columns, in the code's compact style, as
the same program (same AST, same comment words), and a second run changes nothing."""

import ast
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))  # the script and its `wrapping` package
import wrap_lines  # noqa: E402

WORDS = " ".join(f"word{i}" for i in range(30))


def wrapped(src: str, left_as_is: int = 0) -> str:
    src = textwrap.dedent(src)
    new, left = wrap_lines.wrap_source(src)
    assert len(left) == left_as_is, left
    assert sum(wrap_lines.width(line) > 100 for line in new.splitlines()) == left_as_is, new
    assert wrap_lines.unchanged(src, new) is None
    assert wrap_lines.wrap_source(new)[0] == new  # a second run changes nothing
    return new


def test_a_comment_flows_into_the_next_line_of_its_paragraph():
    new = wrapped(f"""\
        def f():
            # {WORDS[:110]}
            # and the paragraph's last line.
            return 1
        """)
    lines = new.splitlines()
    assert lines[1].startswith("    # word0") and lines[2].startswith("    # ")
    assert lines[2].endswith("and the paragraph's last line.") and lines[3] == "    return 1"


def test_a_trailing_comment_moves_above_its_line():
    new = wrapped(f"value = compute(1, 2)  # {WORDS[:90]}\n")
    assert new.splitlines()[0].startswith("# word0") and "value = compute(1, 2)" in new


def test_a_string_splits_at_a_word_boundary_aligned_under_its_first_piece():
    new = wrapped(f'raise ValueError("{WORDS}")\n')
    lines = new.splitlines()
    assert lines[0].endswith(' "') and lines[1].startswith(" " * 17 + '"')
    assert ast.parse(new).body[0].exc.args[0].value == WORDS


def test_an_f_string_splits_only_between_replacement_fields():
    new = wrapped(f'message = f"{{alpha}} {WORDS[:80]} {{beta + gamma}} end"\n')
    assert new.startswith('message = (f"{alpha}') and "{beta + gamma}" in new
    assert ast.dump(ast.parse(new)) == ast.dump(ast.parse(f'message = f"{{alpha}} {WORDS[:80]} '
                                                          f'{{beta + gamma}} end"'))


def test_a_docstring_paragraph_is_refilled_and_its_code_block_kept():
    code = "    >>> " + "x = 1; " * 16
    new = wrapped(f'''\
        def f():
            """Summary.

            {WORDS} and more.
            second line.

        {code}
            """
        ''', left_as_is=1)
    assert code.rstrip() in new and "    word0 " in new and new.count("second line.") == 1


def test_code_breaks_after_the_last_comma_that_fits_aligned_with_its_bracket():
    new = wrapped("result = some_function(alpha, beta, gamma, delta, epsilon, zeta, eta, theta, "
                  "iota, kappa, lambda_, mu, nu, xi, omicron)\n")
    assert new.splitlines() == [
        "result = some_function(alpha, beta, gamma, delta, epsilon, zeta, eta, theta, iota, kappa,"
        " lambda_,", "                       mu, nu, xi, omicron)"]


def test_an_unbracketed_expression_is_put_in_parentheses_and_breaks_at_an_operator():
    new = wrapped("def f():\n    return alpha_value_long_name + beta_value_long_name + "
                  "gamma_value_long_name + delta_value_long_name\n")
    assert new.splitlines()[1:] == [
        "    return (alpha_value_long_name + beta_value_long_name + gamma_value_long_name",
        "            + delta_value_long_name)"]


def test_a_backslash_continuation_becomes_parentheses():
    new = wrapped("x = the_first_value_with_a_long_name if some_condition_that_is_long and "
                  "another_condition_too_here else \\\n    fallback_value\n")
    assert "\\" not in new and new.startswith("x = (the_first_value")


def test_a_long_line_inside_a_string_goes_on_after_a_backslash_newline_and_keeps_the_value():
    src = f'RUBRIC = """{WORDS} \\\n{WORDS[:50]}.\n\nlast line."""\n'
    new = wrapped(src)
    assert new.count("\\\n") == 2
    assert ast.parse(new).body[0].value.value == ast.parse(src).body[0].value.value


def test_a_backslash_continued_string_becomes_a_parenthesised_concatenation():
    new = wrapped(f'hint = "{WORDS[:95]} " \\\n       "{WORDS[:40]}"\n')
    assert "\\" not in new and new.startswith('hint = ("word0')


def test_a_rewrite_that_changes_the_program_is_caught():
    assert wrap_lines.unchanged("x = 'a b'\n", "x = 'a  b'\n") == "the AST differs"
    assert (wrap_lines.unchanged("x = 1  # one two\n", "x = 1  # one\n")
            == "the comments' words differ")
    assert wrap_lines.unchanged('def f():\n    """a b"""\n',
                                'def f():\n    """a\n    b"""\n') is None


def test_check_writes_nothing_and_lists_what_is_left(tmp_path, capsys):
    path = tmp_path / "m.py"
    path.write_text("import os\nx = 'a'\nfrom some.module.path import "
                    + ", ".join(f"name{i}" for i in
                                 range(14)) + "\n")
    src = path.read_text()
    assert wrap_lines.main(["--check", str(path)]) == 1
    assert path.read_text() == src
    assert f"{path}:3:" in capsys.readouterr().out


@pytest.mark.parametrize("path", ["scripts/wrap_lines.py", "scripts/wrapping/code.py"])
def test_the_project_files_are_already_wrapped(path):
    src = (ROOT / path).read_text()
    assert wrap_lines.wrap_source(src)[0] == src
