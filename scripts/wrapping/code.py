"""Rewrites of code: where a line may break (after a comma, before an operator, after a bracket),
which break reads best, and the parentheses that give an unbracketed expression somewhere to
break."""

from __future__ import annotations

import keyword
import tokenize
from dataclasses import dataclass

from wrapping.text import (
    fix_comment,
    fix_docstring,
    fix_inside_string,
    move_comment,
    split_string,
)
from wrapping.view import (
    CLOSERS,
    COMMENT,
    NAME,
    OP,
    OPENERS,
    STRING,
    TRIVIA,
    Edit,
    View,
    applied,
    cut_index,
    indent_of,
    is_pragma,
    width,
)

# binary operators by how loosely they bind: a line breaks first before the loosest
LOOSENESS = {op: rank for rank, ops in enumerate([
    ("if", "else", "for"), ("or",), ("and",), ("==", "!=", "<", ">", "<=", ">=", "in", "not", "is"),
    ("|", "^", "&"), ("<<", ">>"), ("+", "-"), ("*", "/", "//", "%", "@"), ("**",)]) for op in ops}
STATEMENTS = {"return", "yield", "if", "elif", "while", "assert", "with"}  # parentheses may follow
TUPLES = {"return", "yield", "with"}  # and assignments: commas there may go inside them too
ASSIGN = {"=", "+=", "-=", "*=", "/=", "//=", "%=", "|=", "&=", "^=", "@=", "**=", "<<=", ">>="}


@dataclass
class Break:
    """A place where a new line may start: after a comma, before an operator, after a bracket."""

    kind: str  # "," | "op" | "("
    pos: int  # where in the line the new line starts
    depth: int  # brackets around it (a subscript's count three: breaking there reads badly)
    rank: int  # 0 for a comma, else 1 + the operator's looseness
    indent: int  # the column the new line starts at
    opener: int | None = None  # the bracket (token index) it is in, or opens


def aligned(v: View, opener: int) -> int:
    """The column of the first token inside an open bracket: where its continuation lines start."""
    inside = v.neighbour(opener, 1)
    return v.toks[inside].col if inside is not None else v.toks[opener].col + 1


def operand_before(v: View, i: int) -> bool:
    """Whether token i follows an operand (so a `-` or `*` there is binary, not unary)."""
    p = v.neighbour(i, -1)
    t = v.toks[p] if p is not None else None
    return t is not None and (t.kind in (STRING, tokenize.NUMBER) or t.text in CLOSERS or (
        t.kind == NAME and (not keyword.iskeyword(t.text) or t.text in ("True", "False", "None"))))


def depth_of(v: View, stack: tuple[int, ...]) -> int:
    """Brackets around a place; a subscript's (`x[...]`) count three, to break elsewhere first."""
    return sum(3 if v.toks[o].text == "[" and operand_before(v, o) else 1 for o in stack)


def in_targets(v: View, i: int) -> bool:
    """Whether token i (a comma) is among the names after `for` (before `in`) or after `lambda`
    (before `:`): a line breaking there reads badly."""
    j = i - 1
    while j >= 0 and len(v.stack[j]) >= len(v.stack[i]) and j not in v.stack[i]:
        t = v.toks[j]
        if v.stack[j] == v.stack[i] and t.text in ("in", ":", "for", "lambda"):
            return t.text in ("for", "lambda")
        j -= 1
    return False


def breaks(v: View, row: int, span: tuple[int, int] | None = None) -> list[Break]:
    """Every place on the row a new line may start. `span`: the (start, end) columns of an
    unbracketed expression taken as put in parentheses (positions then count the "(" and ")")."""
    line, found = v.lines[row - 1], []
    s, e = span or (len(line) + 1, len(line) + 1)
    cut = (row, cut_index(line, v.limit))
    for i in v.on_row.get(row, []):
        t, stack = v.toks[i], v.stack[i]
        shift = (t.col >= s) + (t.col >= e)
        wrapped = not stack and s <= t.col < e
        depth = depth_of(v, stack) + (s <= t.col < e)
        align = aligned(v, stack[-1]) if stack else 0
        indent = s + 1 if wrapped else align + (align >= s)
        inner = stack[-1] if stack else None
        closer = v.toks[v.closer[i]] if i in v.closer else None
        if (stack or wrapped) and t.kind == OP and t.text == "," and not in_targets(v, i):
            found.append(Break(",", t.end_col + shift, depth, 0, indent, inner))
        elif (stack or wrapped) and t.text in LOOSENESS and t.kind in (OP, NAME) \
                and operand_before(v, i):
            found.append(Break("op", t.col + shift, depth, 1 + LOOSENESS[t.text], indent, inner))
        elif closer and (closer.row, closer.col) > cut and (n := v.neighbour(i, 1)) is not None \
                and v.toks[n].row == row:  # a bracket still open where the line is too long
            head = v.toks[v.statement.get(row, i)].text
            deeper = 8 if head in ("def", "async", "class") else 4  # not the body's indent
            found.append(Break("(", t.end_col + shift, depth, 9, indent_of(line) + deeper, i))
    if span:
        line = line[:s] + "(" + line[s:e] + ")" + line[e:]
    return [b for b in found if b.indent < b.pos and line[b.pos:].strip()
            and not line[b.pos:].lstrip().startswith("#") and line[:b.pos].strip()
            and width(line[:b.pos].rstrip()) <= v.limit]


def full_enough(b: Break, limit: int, indent: int) -> bool:
    """Whether a break leaves its line's room (past its indent) a quarter used for a comma, if,
    else or for, half for another operator."""
    return b.pos - indent >= (limit - indent) // (4 if b.kind == "," or b.rank == 1 else 2)


def best_break(found: list[Break], limit: int, indent: int = 0) -> Break | None:
    """Outermost first; at one depth a comma, else the loosest operator; the last of its kind
    that fits, unless that leaves the line too empty. A hanging bracket only when no other."""
    plain = [b for b in found if b.kind != "("]
    for depth in sorted({b.depth for b in plain}):
        for rank in sorted({b.rank for b in plain if b.depth == depth}):
            pick = max((b for b in plain if (b.depth, b.rank) == (depth, rank)),
                       key=lambda b: b.pos)
            if full_enough(pick, limit, indent):
                return pick
    return max(plain or found, key=lambda b: b.pos) if plain or found else None


def wrap_span(v: View, row: int) -> tuple[int, int] | None:
    """The first and last tokens of the row's unbracketed expression (after return, =, if, ...) if
    it has a binary operator (or a tuple's comma, or string pieces one after another) outside
    brackets that parentheses would let it break at. It may go on over rows joined by
    backslashes, not over rows inside brackets."""
    ids = v.on_row.get(row, [])
    if not ids or v.stack[ids[0]] or row in v.inside or v.continued(row):
        return None
    word = v.toks[ids[0]].text
    assign = [i for i in ids if not v.stack[i] and v.toks[i].kind == OP
              and v.toks[i].text in ASSIGN]
    after = ids[0] if word in STATEMENTS else assign[0] if assign else None
    start = v.neighbour(after, 1) if after is not None else None
    if start is None or v.toks[start].row != row:
        return None
    stops = {":", ";", *ASSIGN} | (set() if word not in STATEMENTS or word in TUPLES else {","})
    end, depth, ops = start, 0, 0
    for i in range(start, len(v.toks)):
        t = v.toks[i]
        if t.kind in TRIVIA or (depth == 0 and (t.kind == COMMENT or t.text == "lambda"
                                                or (t.kind == OP and t.text in stops))):
            break
        ops += depth == 0 and i != start and (t.text == "," or t.text in LOOSENESS
                                              and operand_before(v, i)
                                              or t.kind == v.toks[i - 1].kind == STRING)
        depth += (t.kind == OP and t.text in OPENERS) - (t.kind == OP and t.text in CLOSERS)
        end = i
    rows = range(row + 1, v.toks[end].end_row + 1)
    if depth or not ops or not all(map(v.continued, rows)) or any(r in v.inside for r in rows):
        return None
    return start, end


def rebracketed(v: View, row: int, start: int, end: int) -> Edit | None:
    """A backslash-continued expression put in parentheses, its rows aligned inside them, and the
    first row then broken where it is still too long."""
    last, s, e = v.toks[end].end_row, v.toks[start].col, v.toks[end].end_col
    lines = list(v.lines)
    lines[last - 1] = lines[last - 1][:e] + ")" + lines[last - 1][e:]
    for r in range(row, last):
        lines[r - 1] = lines[r - 1].rstrip()[:-1].rstrip()  # the backslash goes
    indent = s + 1 + 4 * (v.toks[v.on_row[row][0]].text == "if")  # as in wrapped()
    for r in range(row + 1, last + 1):
        lines[r - 1] = " " * indent + lines[r - 1].lstrip()
    lines[row - 1] = lines[row - 1][:s] + "(" + lines[row - 1][s:]
    try:
        nv = View("\n".join(lines), v.limit)
    except (SyntaxError, tokenize.TokenError):
        return None
    edit = fix_code(nv, row, may_wrap=False) if nv.overlong(row) else None
    if isinstance(edit, str):
        return None
    final = applied(nv.lines, [edit] if edit else [])
    return Edit(row, last, final[row - 1:last + len(final) - len(v.lines)], moves=True)


def wrapped(v: View, row: int, choice: Break | None) -> Edit | None:
    """The row with its unbracketed expression put in parentheses and broken at its loosest
    operator, where that beats `choice` (an operator outside brackets binds more loosely than
    anything inside them); a backslash-continued expression always goes in parentheses."""
    span = wrap_span(v, row)
    if span is None:
        return None
    if v.toks[span[1]].end_row != row:
        return rebracketed(v, row, *span)
    s, e = v.toks[span[0]].col, v.toks[span[1]].end_col
    line = v.lines[row - 1]
    # at the parentheses' own level, and not leaving a stub such as `== 0)` alone
    found = [b for b in breaks(v, row, (s, e)) if b.kind != "(" and b.depth == 1
             and len(line[b.pos - 1:e].strip()) >= 20]
    pick = best_break(found, v.limit, indent_of(line))
    if not pick or (choice and not full_enough(pick, v.limit, indent_of(line))):
        return None
    line = line[:s] + "(" + line[s:e] + ")" + line[e:]
    # `if (` puts the next line at the body's indent: PEP 8's extra indent tells them apart
    indent = pick.indent + 4 * (v.toks[v.on_row[row][0]].text == "if")
    return Edit(row, row, [line[:pick.pos].rstrip(), " " * indent + line[pick.pos:].lstrip()],
                moves=True)


def joins_below(v: View, row: int, b: Break) -> bool:
    """Whether the rest of a broken row may go in front of the next row: this row ends, and the
    next one starts, in the bracket the break is in."""
    ids, below = v.on_row.get(row, []), v.on_row.get(row + 1, [])
    if not ids or not below or row + 1 in v.inside or v.toks[ids[-1]].kind == COMMENT:
        return False
    here = [i for i in ids if v.toks[i].col <= b.pos]
    first = v.toks[below[0]]
    pieces = first.kind == v.toks[ids[-1]].kind == STRING  # one line would hold two of them
    return (bool(here) and first.kind != COMMENT and not pieces
            and v.stack[below[0]] == v.stack[here[-1]] == v.stack[ids[-1]])


def broken(v: View, row: int, b: Break, opened_from: int) -> Edit:
    """The row broken at `b`. Later rows inside brackets the moved part opens (from column
    `opened_from` on) and leaves open move by as much as it does, to stay aligned with them."""
    line = v.lines[row - 1]
    start = b.pos + indent_of(line[b.pos:])
    delta = b.indent - start
    opened = [v.toks[v.closer[i]].row for i in v.on_row.get(row, []) if i in v.closer
              and v.toks[i].col >= opened_from and v.toks[v.closer[i]].row > row]
    lines = [line[:b.pos].rstrip(), " " * b.indent + line[start:]]
    rows = range(row + 1, max(opened, default=row) + 1)
    ids, below = v.on_row.get(row, []), v.on_row.get(row + 1, [])
    inside = (*v.stack[b.opener], b.opener)  # a hanging bracket's next row may join its first
    if b.kind == "(" and below and v.stack[below[0]] == v.stack[ids[-1]] == inside:
        joined = lines[1] + " " + v.lines[row].lstrip()
        if width(joined) <= v.limit:
            return Edit(row, row + 1, [lines[0], joined], moves=True)
    if not rows or any(indent_of(v.lines[r - 1]) + delta < 0 for r in rows if r not in v.inside):
        return Edit(row, row, lines, moves=b.kind == "(")
    for r in rows:
        text = v.lines[r - 1]
        lines.append(text if r in v.inside else " " * (indent_of(text) + delta) + text.lstrip())
    return Edit(row, rows[-1], lines, moves=True)


def string_first(v: View, row: int, plain: list[Break]) -> Edit | list[Break]:
    """Where the row is too long inside a string: a break before it if the string then fits whole,
    else the string split if its pieces get 40 columns, else the breaks before it to choose from
    (the split stays a last resort)."""
    line = v.lines[row - 1]
    hit = v.covering(row, cut_index(line, v.limit))
    t = v.toks[hit] if hit is not None else None
    if t is None or t.kind != STRING or not t.row == t.end_row == row:
        return plain
    early = [b for b in plain if b.pos <= t.col]
    pick = best_break(early, v.limit, indent_of(line))
    split = split_string(v, hit, row)
    if pick and width(" " * pick.indent + line[pick.pos:].lstrip()) <= v.limit:
        return [pick]
    if not isinstance(split, str) and split[1] >= 40:
        return split[0]
    return early


def last_resort(v: View, row: int) -> Edit | str:
    """The last string that starts within the limit split, if its pieces get 20 columns; else why
    the row stays as it is."""
    line = v.lines[row - 1]
    cut = cut_index(line, v.limit)
    strings = [i for i in v.on_row.get(row, []) if v.toks[i].kind == STRING
               and v.toks[i].end_row == row and v.toks[i].col < cut]
    split = split_string(v, strings[-1], row) if strings else "no string"
    if not isinstance(split, str) and split[1] >= 20:
        return split[0]
    if line.lstrip().startswith(("import ", "from ")):
        return "an import (ruff check --select I --fix wraps it)"
    return "no place to break the line"


def fix_code(v: View, row: int, may_wrap: bool = True) -> Edit | str:
    """A code row broken: at an unbracketed operator put in parentheses if that reads best, else
    where a string in the way leaves room, else at the best comma or operator (its rest joining the
    next row of the same bracket), else after a bracket (hanging), else in its last string."""
    found = breaks(v, row)
    plain, hangs = [b for b in found if b.kind != "("], [b for b in found if b.kind == "("]
    indent = indent_of(v.lines[row - 1])
    if may_wrap and (edit := wrapped(v, row, best_break(plain, v.limit, indent))):
        return edit
    plain = string_first(v, row, plain)
    if isinstance(plain, Edit):
        return plain
    choice = best_break(plain, v.limit, indent)
    if hangs and (choice is None or choice.indent > v.limit - 40):  # room for 40 columns at least
        hang = max(hangs, key=lambda b: b.pos)
        return broken(v, row, hang, v.toks[hang.opener].col)
    if choice is None:
        return last_resort(v, row)
    line, below = v.lines[row - 1], v.lines[row] if row < len(v.lines) else ""
    tail = " " * choice.indent + line[choice.pos:].lstrip() + " " + below.lstrip()
    # items of a flat list flow on into the next row (which then breaks in turn); anything with
    # brackets joins it only where the two fit on one line
    flat = not any(c in line[choice.pos:] for c in OPENERS)
    if joins_below(v, row, choice) and (flat or width(tail) <= v.limit):
        return Edit(row, row + 1, [line[:choice.pos].rstrip(), tail])
    return broken(v, row, choice, choice.pos)


def fix_row(v: View, row: int) -> Edit | str:
    """One rewrite that shortens the row, or why there is none."""
    hit = v.covering(row, cut_index(v.lines[row - 1], v.limit))
    t = v.toks[hit] if hit is not None else None
    if t is not None and t.kind == STRING and v.is_docstring(t):
        return fix_docstring(v, t, row)
    if t is not None and t.kind == STRING and t.row < t.end_row:
        return fix_inside_string(v, t, row)
    ids = v.on_row.get(row, [])
    if not ids:
        return "nothing to break"
    first, last = v.toks[ids[0]], v.toks[ids[-1]]
    if first.kind == COMMENT and row not in v.inside:
        return fix_comment(v, first, row)
    if last.kind == COMMENT and not is_pragma(last.text):
        return move_comment(v, last, row)
    return fix_code(v, row)
