"""The file model of scripts/wrap_lines.py: tokens (f-strings whole), brackets, docstrings, widths
as ruff measures them, and what a rewrite must keep (the normalised AST and the comments' words)."""

from __future__ import annotations

import ast
import io
import re
import tokenize
import unicodedata
from dataclasses import dataclass

STRING, OP, NAME, COMMENT = tokenize.STRING, tokenize.OP, tokenize.NAME, tokenize.COMMENT
TRIVIA = {tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT, tokenize.ENDMARKER}
SKIPPED = TRIVIA | {COMMENT}
DEFS = (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)
# a comment naming a tool stays on its line: moved, it would no longer apply to that line
PRAGMA = re.compile(r"#\s*((noqa|nosec)\b|(isort|type|pyright|pyrefly|pylint|flake8|ruff|ty|mypy"
                    r"|pragma|fmt):)", re.I)
BULLET = re.compile(r"([-*+]|\d+[.)]|>>>|\.\.\.|#+)(\s|$)")  # a line starting so reads as an item
PIECE = re.compile(r"([A-Za-z]*)('''|\"\"\"|'|\")(.*)\2\Z", re.S)
OPENERS, CLOSERS = "([{", ")]}"


@dataclass(frozen=True)
class Tok:
    """A token with f-strings merged into one STRING (Python >= 3.12 splits them into parts)."""

    kind: int
    text: str
    row: int
    col: int
    end_row: int
    end_col: int


@dataclass
class Edit:
    """Rows first..last (1-based, inclusive) replaced by `lines`; `moves` when columns shift."""

    first: int
    last: int
    lines: list[str]
    moves: bool = False


def width(text: str) -> int:
    """Columns as ruff counts them: East Asian wide characters take two, combining marks none."""
    return sum(0 if unicodedata.combining(c) else 2 if unicodedata.east_asian_width(c) in "WF"
               else 1 for c in text)


def cut_index(line: str, limit: int) -> int:
    """Index of the first character that ends past `limit` columns."""
    used = 0
    for i, c in enumerate(line):
        used += width(c)
        if used > limit:
            return i
    return len(line)


def indent_of(line: str) -> int:
    return len(line) - len(line.lstrip())


def is_pragma(comment: str) -> bool:
    return bool(PRAGMA.search(comment))


def tokens(src: str) -> list[Tok]:
    """The source's tokens; an f-string (or t-string) with its parts is one STRING token."""
    lines, out, depth, start = src.split("\n"), [], 0, (0, 0)
    names = ("FSTRING_START", "TSTRING_START"), ("FSTRING_END", "TSTRING_END")
    starts, ends = ({getattr(tokenize, n) for n in pair if hasattr(tokenize, n)} for pair in names)
    for t in tokenize.generate_tokens(io.StringIO(src).readline):
        if t.type in starts:
            depth += 1
            start = t.start if depth == 1 else start
        elif t.type in ends:
            depth -= 1
            if depth == 0:
                (r0, c0), (r1, c1) = start, t.end
                text = "\n".join(lines[r0 - 1:r1 - 1] + [lines[r1 - 1][:c1]])[c0:]
                out.append(Tok(STRING, text, r0, c0, r1, c1))
        elif depth == 0:
            out.append(Tok(t.type, t.string, *t.start, *t.end))
    return out


def docstring_of(node: ast.AST) -> ast.Constant | None:
    body = getattr(node, "body", None)
    if isinstance(node, DEFS) and body and isinstance(body[0], ast.Expr):
        value = body[0].value
        if isinstance(value, ast.Constant) and isinstance(value.value, str):
            return value
    return None


def normalised(tree: ast.AST) -> str:
    """ast.dump with docstrings' whitespace normalised, neighbouring f-string constants merged."""
    for node in ast.walk(tree):
        if (doc := docstring_of(node)) is not None:
            doc.value = " ".join(doc.value.split())
        if isinstance(node, ast.JoinedStr):
            merged: list[ast.expr] = []
            for part in node.values:
                if (merged and isinstance(part, ast.Constant)
                        and isinstance(merged[-1], ast.Constant)):
                    merged[-1] = ast.Constant(merged[-1].value + part.value)
                else:
                    merged.append(part)
            node.values = merged
    return ast.dump(tree)


class View:
    """One state of a file: its lines, tokens, brackets, docstrings and what a rewrite must keep."""

    def __init__(self, src: str, limit: int):
        self.src, self.limit, self.lines = src, limit, src.split("\n")
        self.toks = tokens(src)
        tree = ast.parse(src)
        self.docstrings = {(d.lineno, d.col_offset) for d in map(docstring_of, ast.walk(tree)) if d}
        words = [w for t in self.toks if t.kind == COMMENT for w in t.text.lstrip("#").split()]
        self.signature = (normalised(tree), words)
        self.stack: list[tuple[int, ...]] = []  # open brackets (token indices) around each token
        self.on_row: dict[int, list[int]] = {}  # the tokens starting on each row, trivia left out
        self.inside: set[int] = set()  # rows that start inside a multi-line string
        self.closer: dict[int, int] = {}  # an opening bracket's token index -> its closing one's
        self.statement: dict[int, int] = {}  # row -> the index of its statement's first token
        opened: list[int] = []
        first = None
        for i, t in enumerate(self.toks):
            if t.kind == OP and t.text in CLOSERS and opened:
                self.closer[opened.pop()] = i
            self.stack.append(tuple(opened))
            if t.kind == OP and t.text in OPENERS:
                opened.append(i)
            if t.kind not in TRIVIA:
                self.on_row.setdefault(t.row, []).append(i)
                first = i if first is None and t.kind != COMMENT else first
                self.inside.update(range(t.row + 1, t.end_row + 1))
            elif t.kind == tokenize.NEWLINE and first is not None:
                self.statement.update(dict.fromkeys(range(self.toks[first].row, t.row + 1), first))
                first = None

    def is_docstring(self, t: Tok) -> bool:
        line = self.lines[t.row - 1]
        return (t.row, len(line[:t.col].encode())) in self.docstrings

    def covering(self, row: int, col: int) -> int | None:
        """The token holding (row, col), else the first one starting after it."""
        for i, t in enumerate(self.toks):
            if t.kind not in TRIVIA and (t.end_row, t.end_col) > (row, col):
                return i
        return None

    def continued(self, row: int) -> bool:
        """Whether the row continues the one above through a backslash."""
        above = self.lines[row - 2] if row > 1 else ""
        return above.endswith("\\") and row not in self.inside and not any(
            self.toks[i].kind == COMMENT for i in self.on_row.get(row - 1, []))

    def neighbour(self, i: int, step: int) -> int | None:
        """The next (step=1) or previous (step=-1) token that is neither trivia nor a comment."""
        i += step
        while 0 <= i < len(self.toks) and self.toks[i].kind in SKIPPED:
            i += step
        return i if 0 <= i < len(self.toks) else None

    def overlong(self, row: int) -> bool:
        """Whether ruff's E501 reports the row (pragma-ended, one-word and URL-ended lines pass)."""
        line = self.lines[row - 1]
        size = width(line)
        if size <= self.limit:
            return False
        ids = self.on_row.get(row, [])
        last = self.toks[ids[-1]] if ids else None
        if (last and last.kind == COMMENT and is_pragma(last.text)
                and width(line[:last.col].rstrip()) <= self.limit):
            return False
        words = line.split()
        return len(words) > 1 and not ("://" in words[-1] and size - width(words[-1]) <= self.limit)


def applied(lines: list[str], edits: list[Edit]) -> list[str]:
    out = list(lines)
    for e in sorted(edits, key=lambda e: -e.first):
        out[e.first - 1:e.last] = e.lines
    return out
