"""`chattune render` (one data row as the model sees it) and `chattune doctor` (a chat template's
health)."""

from __future__ import annotations

import argparse
from typing import Any

from chattune.cli.common import (
    add_model_arg,
    add_model_options,
    columns_arg,
    console,
    model_arg,
    say,
    template_kwargs_arg,
    tokenizer_for,
)
from chattune.errors import ChattuneError


def _span(data: str, rows: int) -> str:
    return (f"{data} has {rows} row{'s' if rows != 1 else ''}"
            + (f" (--row 1 to --row {rows})" if rows > 1 else ""))


def pick_row(data: str, row: int | None, line: int | None) -> tuple[Any, dict[str, Any], int]:
    """(RowNo, row, its 1-based position) for --row N (the Nth row, as data check counts rows) or
    --line N (the row that starts on line N, as errors name it: "data.jsonl, line 7"). Anything else
    is an error naming the range; rows are read one at a time, never all at once."""
    from chattune.data.load import iter_rows

    if row is not None and line is not None:
        raise ChattuneError("render: give --row N or --line N, not both")
    if line is not None and line < 1:
        raise ChattuneError(f"render: --line {line}: lines count from 1")
    count, before, after = 0, None, None
    for row_no, values in iter_rows(data):
        count += 1
        if line is None:
            if count == (row or 1):
                return row_no, values, count
            continue
        if not row_no.where.startswith("line"):
            raise ChattuneError(f"{data}: its rows have no line numbers (errors name them as "
                                "rows); use --row N")
        if int(row_no) == line:
            return row_no, values, count
        if int(row_no) > line:
            after = int(row_no)
            break  # rows come in the order of their lines
        before = int(row_no)
    if line is not None:
        near = " and ".join(str(n) for n in (before, after) if n is not None)
        raise ChattuneError(f"{data}: no row starts on line {line} (the nearest rows start on line "
                            f"{near}; a row of a JSON list or a quoted CSV field can span lines: "
                            "give the line its error names)")
    raise ChattuneError(f"render: --row {row}: {_span(data, count)}; rows count from 1")


def _cmd_render(args: argparse.Namespace) -> int:
    from chattune.data.convert import to_conversation
    from chattune.outputs.show import show_history_notes, show_rendered
    from chattune.templates.render import check_rendered, render

    if args.row is not None and args.row < 1:  # before the tokenizer: row 0 is never another row
        raise ChattuneError(f"render: --row {args.row}: rows count from 1 (the first row is --row "
                            "1)")
    row_no, row, position = pick_row(args.data, args.row, args.line)
    tokenizer = tokenizer_for(model_arg(args), args)
    conv = to_conversation(row, source=args.data, row_no=row_no, columns=columns_arg(args.columns))
    kwargs = template_kwargs_arg(args.template_kwargs)
    rendered = render(tokenizer, conv, template=args.template, train_on=args.train_on,
                      template_kwargs=kwargs)
    check_rendered(tokenizer, rendered, conv.messages, args.train_on)
    where = row_no.where if row_no.where == f"row {position}" else f"{row_no.where}, row {position}"
    console.print(f"[bold]{args.data}[/bold], {where}", highlight=False)
    show_rendered(console, tokenizer, rendered)
    if conv.text is None:
        from chattune.templates.history import history_notes

        show_history_notes(console,
                           history_notes(tokenizer, conv.messages, template=args.template,
                                         tools=conv.tools, template_kwargs=kwargs))
        if any(m.tool_calls for m in conv.messages):
            from chattune.templates.toolnotes import tool_call_note

            console.print(f"tool calls: {tool_call_note(tokenizer, args.template, kwargs)}",
                          highlight=False)
    return 0


def _cmd_doctor(args: argparse.Namespace) -> int:
    import json

    from chattune.data.convert import conversations_from_rows
    from chattune.data.load import load_rows
    from chattune.outputs.show import doctor_table
    from chattune.templates.doctor import diagnose

    model = model_arg(args)
    tokenizer = tokenizer_for(model, args)
    convs = []
    if args.data:
        columns = columns_arg(args.columns)
        convs = [c.messages for c in conversations_from_rows(
            load_rows(args.data, limit=args.limit), args.data, columns=columns)]
    checks = diagnose(tokenizer, args.template, convs,
                      template_kwargs=template_kwargs_arg(args.template_kwargs))
    if args.json:
        print(json.dumps([{"check": c.name, "ok": c.ok, "detail": c.detail, "fix": c.fix}
                          for c in checks],
                         ensure_ascii=False, indent=2))
    else:
        say(args).print(doctor_table(checks, f"chat template doctor: {model}"))
    return 0 if all(c.ok for c in checks) else 1


def add_template_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("render", help="show how a data row renders, trained tokens highlighted",
                       description="Renders one row of a data file with MODEL's chat template and "
                       "marks the tokens that are trained. Rows are named as errors and `data "
                       "check` name them: --row N is the Nth row, --line N the row that starts on "
                       "line N of the file (\"data.jsonl, line 7\").")
    add_model_arg(p, "whose tokenizer and chat template to use")
    p.add_argument("--data", required=True, help="data file")
    p.add_argument("--row", type=int, help="the Nth row, counting from 1 (default 1)")
    p.add_argument("--line", type=int,
                   help="the row that starts on this line of the file (as errors name it)")
    p.add_argument("--columns", nargs="*", metavar="COLUMN=ROLE",
                   help="map columns to roles, e.g. question=user")
    p.add_argument("--train-on", default="all_assistant",
                   choices=["all_assistant", "last_assistant", "all"],
                   help="which tokens are trained (default all_assistant)")
    add_model_options(p, weights=False)
    p.set_defaults(func=_cmd_render)

    p = sub.add_parser("doctor",
                       help="check a model's chat template for mask and stop-token problems",
                       description="Checks: template present, exact masks (and what the template "
                       "does with tool calls: where it writes them, which token ends the turn), "
                       "what the template does with history (reasoning of earlier turns dropped, "
                       "system prompt moved, turns rewritten), end-of-turn is one special token "
                       "and is trained, no doubled BOS, pad set, generation prompt matches "
                       "training, chat special tokens are single ids; with --data, every row "
                       "renders with a verified mask. Exit 1 on any failure.")
    add_model_arg(p, "whose tokenizer and chat template to check")
    p.add_argument("--data", help="also render and verify this data file's rows")
    p.add_argument("--limit", type=int, default=200, help="rows of --data to check (default 200)")
    p.add_argument("--columns", nargs="*", metavar="COLUMN=ROLE",
                   help="map columns to roles, e.g. question=user")
    p.add_argument("--json", action="store_true", help="print the checks as JSON on stdout")
    add_model_options(p, weights=False)
    p.set_defaults(func=_cmd_doctor)
