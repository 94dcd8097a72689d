"""Rewrites of text: comment and docstring lines flow into their paragraph, a trailing comment
moves above its line, a string literal splits into an implicit concatenation."""

from __future__ import annotations

import re

from wrapping.view import (
    BULLET,
    COMMENT,
    PIECE,
    STRING,
    Edit,
    Tok,
    View,
    cut_index,
    indent_of,
    is_pragma,
    width,
)


def split_words(line: str, lo: int, limit: int) -> tuple[str, str] | None:
    """(head, tail) at the last space after index `lo` that leaves the head within the limit."""
    for p in range(min(len(line), cut_index(line, limit) + 1) - 1, lo, -1):
        if line[p] == " " and line[p - 1] != " " and line[lo:p].strip():
            tail = line[p:].lstrip()
            if tail and not BULLET.match(tail) and any(c.isalnum() for c in tail):
                return line[:p].rstrip(), tail
    return None


def flow(v: View, row: int, parts: tuple[str, str], indent: str, joins: bool) -> Edit:
    """Put the tail before the words of the next row when `joins` (same paragraph), else alone."""
    head, tail = parts
    if joins:
        below = v.lines[row].lstrip()[len(indent.lstrip()):]
        return Edit(row, row + 1, [head, indent + tail + " " + below])
    return Edit(row, row, [head, indent + tail])


def fix_comment(v: View, t: Tok, row: int) -> Edit | str:
    """A comment-only row's last words moved to the next row of its paragraph (or a new row)."""
    if is_pragma(t.text) or (row == 1 and t.text.startswith("#!")):
        return "a pragma comment"
    marker = re.match(r"#+[!:]? *", t.text).group()
    bullet = BULLET.match(t.text[len(marker):])
    lead = " " * t.col + marker + " " * (len(bullet.group()) if bullet else 0)  # an item's indent
    parts = split_words(v.lines[row - 1], t.col + len(marker), v.limit)
    if parts is None:
        return "no space to break the comment at"
    below = v.lines[row] if row < len(v.lines) else ""
    ids = v.on_row.get(row + 1, [])
    joins = (len(ids) == 1 and v.toks[ids[0]].kind == COMMENT and below.startswith(lead)
             and below[len(lead):len(lead) + 1] not in ("", " ")
             and not BULLET.match(below[len(lead):]) and not is_pragma(below))
    return flow(v, row, parts, lead, joins)


def in_code_block(v: View, t: Tok, row: int) -> bool:
    """Whether a docstring row is example code: in a ``` fence, under a `::` line, a >>> prompt."""
    fenced, literal = False, None  # literal: the indent of the `::` line whose block is open
    for r in range(t.row, row):
        text, indent = v.lines[r - 1].strip(), indent_of(v.lines[r - 1])
        fenced = fenced != text.startswith("```")
        literal = None if literal is not None and text and indent <= literal else literal
        literal = indent if text.endswith("::") else literal
    below = literal is not None and indent_of(v.lines[row - 1]) > literal
    return fenced or below or v.lines[row - 1].lstrip().startswith((">>>", "...", "|", "```"))


def fix_docstring(v: View, t: Tok, row: int) -> Edit | str:
    """A docstring row's last words moved to the next row of its paragraph (or a new row); lists
    keep their hanging indent, code blocks are left alone."""
    line, m = v.lines[row - 1], PIECE.match(t.text)
    if not m or len(m.group(2)) != 3 or in_code_block(v, t, row) or line.endswith("\\"):
        return "a code block (or no triple quotes) in a docstring"
    first = row == t.row
    lo = t.col + len(m.group(1)) + 3 if first else indent_of(line)
    parts = split_words(line, lo, v.limit)
    if parts is None:
        return "no space to break the docstring line at"
    bullet = BULLET.match(line[lo:])
    indent = " " * (t.col if first else lo + (len(bullet.group()) if bullet else 0))
    below = v.lines[row] if row < t.end_row else ""
    joins = (row < t.end_row and below.startswith(indent)
             and below[len(indent):len(indent) + 1] not in ("", " ")
             and not BULLET.match(below.lstrip()) and not below.endswith("\\")
             and not below.lstrip().startswith(("'''", '"""', "```"))
             and not (below.lstrip().startswith("`") and line.endswith((".", ":"))))  # an item
    return flow(v, row, parts, indent, joins)


def fix_inside_string(v: View, t: Tok, row: int) -> Edit | str:
    """A row inside a multi-line (not raw) string broken after a space with a backslash-newline,
    which the string's value does not hold: its last words start the next row where that row
    continues this one the same way, else a row of their own."""
    line, m = v.lines[row - 1], PIECE.match(t.text)
    if not m or "r" in m.group(1).lower() or ("f" in m.group(1).lower() and "{" in line):
        return "inside a multi-line raw string or f-string"
    cut = cut_index(line, v.limit - 1)  # room for the backslash
    spaces = [p for p in range(cut) if line[p] == " " and p > 0 and line[p - 1] not in " \\"
              and (row > t.row or p > t.col) and (row < t.end_row or p < t.end_col - 3)]
    if not spaces:
        return "no space to break the string's line at"
    head, tail = line[:spaces[-1] + 1] + "\\", line[spaces[-1] + 1:]
    trailing = len(tail) - len(tail.rstrip("\\"))
    if trailing % 2 and row < t.end_row:  # the row already goes on into the next one
        return Edit(row, row + 1, [head, tail[:-1] + v.lines[row]])
    return Edit(row, row, [head, tail])


def move_comment(v: View, t: Tok, row: int) -> Edit | str:
    """A trailing comment put on its own row above its code, at the code's indent."""
    if row in v.inside or v.continued(row):
        return "a trailing comment with no room above it"
    line = v.lines[row - 1]
    return Edit(row, row, [line[:indent_of(line)] + t.text, line[:t.col].rstrip()])


# ---- string literals: re-split into an implicit concatenation ----

def split_points(body: str, prefix: str) -> set[int]:
    """Where a literal's body can be cut: not inside an escape or an f-string replacement field."""
    raw, fmt = "r" in prefix.lower(), "f" in prefix.lower()
    ok, i, depth = set(), 0, 0
    while i < len(body):
        if depth == 0:
            ok.add(i)
        c = body[i]
        if c == "\\":
            m = re.match(r"\\(N\{[^}]*\}|x..|u....|U........|[0-7]{1,3}|.)", body[i:], re.S)
            i += 2 if raw or not m else len(m.group())
        elif fmt and c in "{}" and depth == 0 and body.startswith(c * 2, i):
            i += 2
        else:
            depth += (c == "{") - (c == "}") if fmt else 0
            i += 1
    return ok - {0}


def out_prefix(prefix: str, body: str) -> str:
    """A piece's prefix: an f-string piece with no braces left loses its f."""
    braces = "{" in body or "}" in body
    return prefix if braces else prefix.replace("f", "").replace("F", "")


def merged_prefix(p1: str, tail: str, p2: str, body2: str) -> str | None:
    """The prefix of `tail + body2`, or None where one prefix cannot hold both (literal braces)."""
    base1, base2 = (sorted(p.lower().replace("f", "").replace("u", "")) for p in (p1, p2))
    f1, f2 = "f" in p1.lower(), "f" in p2.lower()
    braces1, braces2 = any(c in tail for c in "{}"), any(c in body2 for c in "{}")
    needs_f = (f1 and braces1) or (f2 and braces2)
    if base1 != base2 or (needs_f and ((braces1 and not f1) or (braces2 and not f2))):
        return None
    plain = p2.replace("f", "").replace("F", "")
    return "f" + plain if needs_f else plain


def group_of(v: View, i: int) -> list[int]:
    """The adjacent string tokens (an implicit concatenation) that token i belongs to."""
    first = i
    while (p := v.neighbour(first, -1)) is not None and v.toks[p].kind == STRING:
        first = p
    group = [first]
    while (n := v.neighbour(group[-1], 1)) is not None and v.toks[n].kind == STRING:
        group.append(n)
    return group


def joined_piece(v: View, i: int, row: int, prefix: str, quote: str, tail: str) -> str | None:
    """The next row with `tail` put in front of its first piece, where that piece continues i."""
    nxt = v.neighbour(i, 1)
    if nxt is None or v.on_row.get(row + 1, [None])[0] != nxt or v.toks[nxt].kind != STRING:
        return None
    n = v.toks[nxt]
    m = PIECE.match(n.text)
    both = merged_prefix(prefix, tail, m.group(1), m.group(3)) if m else None
    if both is None or m.group(2) != quote:
        return None
    below = v.lines[row]
    return below[:n.col] + both + quote + tail + m.group(3) + quote + below[n.end_col:]


def split_string(v: View, i: int, row: int) -> tuple[Edit, int] | str:
    """Split string token i at its last word boundary that fits; (edit, columns left per piece)."""
    t, line = v.toks[i], v.lines[row - 1]
    m = PIECE.match(t.text)
    if not m or len(m.group(2)) == 3 or "t" in m.group(1).lower():
        return "a literal that cannot be split (triple-quoted or a t-string)"
    prefix, quote, body = m.groups()
    group = group_of(v, i)
    rows = sorted({v.toks[g].row for g in group})
    wrap = not v.stack[i]
    if wrap and (len(rows) > 1 or v.is_docstring(v.toks[group[0]])):
        return "a string outside brackets over several lines"
    if wrap:
        start, end = v.toks[group[0]].col, v.toks[group[-1]].end_col
        line = line[:start] + "(" + line[start:end] + ")" + line[end:]
    col = t.col + wrap
    later = [v.toks[g].col for g in group if v.toks[g].row == rows[1]] if len(rows) > 1 else []
    cont = later[0] if later else v.toks[group[0]].col + wrap
    fits = [k for k in sorted(split_points(body, prefix), reverse=True) if body[:k].strip()
            and width(line[:col] + prefix + quote + body[:k] + quote) <= v.limit]
    words = [k for k in fits if body[k - 1] == " " and body[k] != " "]
    if not fits:
        return "no room to split the string"
    k = (words or fits)[0]
    head = line[:col] + out_prefix(prefix, body[:k]) + quote + body[:k] + quote
    rest = line[col + len(t.text):]
    if not rest.strip() and (below := joined_piece(v, i, row, prefix, quote, body[k:])):
        return Edit(row, row + 1, [head, below], moves=wrap), v.limit - cont
    piece = out_prefix(prefix, body[k:]) + quote + body[k:] + quote
    return Edit(row, row, [head, " " * cont + piece + rest], moves=wrap), v.limit - cont
