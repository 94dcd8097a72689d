"""Wrap Python source lines to at most 100 columns in the code's own compact style (stdlib only).

    python scripts/wrap_lines.py chattune tests scripts bench examples    # rewrite in place
    python scripts/wrap_lines.py --check chattune                         # report, write nothing

`ruff format` would rewrite whole files one argument per line; this changes only the lines that
are too long (as ruff's E501 measures them), and only as much as it must:

- a comment-only line: its last words go to the start of the next line of the same paragraph, or
  to a new line; the next line is then checked in turn;
- a trailing comment: it moves onto its own line above the code, at the code's indent;
- a docstring line: its last words flow into the next line of the same paragraph, or a new one;
- a string literal: split at a word boundary into an implicit concatenation, the new piece aligned
  with the group's continuation lines (or under its first piece); f-strings only outside
  replacement fields; a literal outside brackets is put in parentheses;
- a line inside a multi-line string (not raw): broken after a space with a backslash-newline,
  which the string's value does not hold (its words flow on where the line already ended so);
- other code: broken after a comma (else before a binary operator, else after an opening bracket
  with a hanging indent), outermost bracket first, aligned with the innermost open bracket; the
  rest joins the next line when that one continues the same bracket. An expression with no bracket
  to break in (`return a + b`, `x = a if c else b`) or continued by backslashes is put in
  parentheses first.

Each round of rewrites is checked: the module's AST (docstrings compared with whitespace
normalised, f-string parts merged) and the words of its comments must equal the original's; a
rewrite that fails is undone and its line reported. A file failing that check is never written.
A second run changes nothing. Lines it cannot shorten (imports: `ruff check --select I --fix`
wraps those) are listed as path:line; the exit status is 1 when any remain or a file was refused.
"""

from __future__ import annotations

import argparse
import sys
import tokenize
from pathlib import Path

from wrapping.code import fix_row
from wrapping.view import Edit, View, applied, width

LIMIT = 100
EXCLUDE = ("tests/trl_suite/upstream",)  # TRL's own files, kept verbatim


def plan(v: View, refused: set[str]) -> list[Edit]:
    """Rewrites for the long rows, top down, none reading a row another one changed: after one that
    shifts columns, the rest of that statement waits for the next round."""
    edits: list[Edit] = []
    moved: set[int] = set()
    row = 1
    while row <= len(v.lines):
        if (v.overlong(row) and v.lines[row - 1] not in refused
            and v.statement.get(row) not in moved):
            edit = fix_row(v, row)
            if isinstance(edit, Edit):
                edits.append(edit)
                if edit.moves and row in v.statement:
                    moved.add(v.statement[row])
                row = edit.last
        row += 1
    return edits


def checked(lines: list[str], want: tuple[str, list[str]], limit: int) -> View | None:
    """The rewritten file's view, if it is the same program with the same comments."""
    try:
        view = View("\n".join(lines), limit)
    except (SyntaxError, tokenize.TokenError):
        return None
    return view if view.signature == want else None


def wrap_source(src: str, limit: int = LIMIT) -> tuple[str, list[tuple[int, str]]]:
    """The source with its long lines wrapped, and the (row, reason) of those it could not."""
    view = View(src, limit)
    want, refused = view.signature, set()
    for _ in range(1000):  # a round shortens rows or refuses them; the bound only guards a bug
        edits = plan(view, refused)
        if not edits:
            break
        new = checked(applied(view.lines, edits), want, limit)
        if new is None:  # find the rewrites at fault, one at a time from the bottom
            lines = view.lines
            for e in sorted(edits, key=lambda e: -e.first):
                if checked(applied(lines, [e]), want, limit) is None:
                    refused.add(view.lines[e.first - 1])
                else:
                    lines = applied(lines, [e])
            new = checked(lines, want, limit) or view
        view = new
    left = [(r, view.lines[r - 1] in refused and "a rewrite here would change the code"
             or str(fix_row(view, r))) for r in range(1, len(view.lines) + 1) if view.overlong(r)]
    return view.src, left


def python_files(paths: list[str], exclude: list[str]) -> list[Path]:
    files = []
    for p in map(Path, paths):
        found = sorted(p.rglob("*.py")) if p.is_dir() else [p]
        files += [f for f in found if not any(f.as_posix().startswith(x.rstrip("/") + "/")
                                              for x in exclude)]
    return files


def unchanged(old: str, new: str, limit: int = LIMIT) -> str | None:
    """Why `new` is not the same program as `old` with the same comments (None when it is)."""
    try:
        a, b = View(old, limit).signature, View(new, limit).signature
    except (SyntaxError, tokenize.TokenError) as e:
        return f"does not parse: {e}"
    return None if a == b else "the AST differs" if a[0] != b[0] else "the comments' words differ"


def wrap_file(path: Path, limit: int, write: bool) -> tuple[int, int, bool, bool]:
    """Wrap one file (checked before it is written), printing the lines left too long:
    (long lines before, long lines after, changed, refused)."""
    src = path.read_text(encoding="utf-8")
    try:
        old = View(src, limit)
    except (SyntaxError, tokenize.TokenError) as e:
        print(f"refused {path}: does not parse ({e})")
        return 0, 0, False, True
    before = sum(map(old.overlong, range(1, len(old.lines) + 1)))
    new, left = wrap_source(src, limit)
    why = unchanged(src, new, limit) if new != src else None
    if why:
        print(f"refused {path}: {why}")
        return before, before, False, True
    if new != src and write:
        path.write_text(new, encoding="utf-8")
    lines = new.split("\n")
    for row, reason in left:
        print(f"{path}:{row}: {width(lines[row - 1])} columns: {reason}")
    return before, len(left), new != src, False


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("paths", nargs="+", help="files or folders (their *.py, recursively)")
    parser.add_argument("--width", type=int, default=LIMIT, help=f"longest line (default {LIMIT})")
    parser.add_argument("--check", action="store_true",
                        help="report what would change; write nothing")
    parser.add_argument("--exclude", action="append", default=list(EXCLUDE),
                        help="a folder to leave alone (repeatable)")
    args = parser.parse_args(argv)
    totals = [wrap_file(p, args.width, not args.check)
              for p in python_files(args.paths, args.exclude)]
    before, after, changed, refused = (sum(t[i] for t in totals) for i in range(4))
    verb = "would change" if args.check else "changed"
    print(f"{verb} {changed} files; lines over {args.width}: {before} before, {after} after; "
          f"{refused} files refused")
    return 1 if after or refused or (args.check and changed) else 0


if __name__ == "__main__":
    sys.exit(main())
