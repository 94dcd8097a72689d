"""Show a rendering with its trained tokens marked: colour on a terminal, [[brackets]] when
piped."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from chattune.labels import IGNORE_INDEX
from chattune.templates.render import Rendered


def marked_text(tokenizer: Any, rendered: Rendered, color: bool) -> Text:
    """The rendered tokens, trained runs highlighted (or wrapped in [[ ]] without colour)."""
    out = Text()
    run: list[int] = []
    trained_run = False

    def flush() -> None:
        if not run:
            return
        piece = tokenizer.decode(run, skip_special_tokens=False)
        if trained_run:
            out.append(piece, style="bold black on green") if color else out.append(f"[[{piece}]]")
        else:
            out.append(piece, style="dim" if color else None)
        run.clear()

    for tok, label in zip(rendered.input_ids, rendered.labels):
        trained = label != IGNORE_INDEX
        if trained != trained_run:
            flush()
            trained_run = trained
        run.append(tok)
    flush()
    return out


def show_rendered(console: Console, tokenizer: Any, rendered: Rendered) -> None:
    """Print the marked rendering and a one-line summary."""
    console.print(marked_text(tokenizer, rendered, color=console.is_terminal), markup=False,
                  highlight=False)
    n, k = len(rendered.input_ids), rendered.num_trained
    console.print(f"\n{n} tokens, {k} trained ({k / max(n, 1):.1%})", markup=False, highlight=False)


def show_history_notes(console: Console, notes: list[str]) -> None:
    """What a template does with a conversation's earlier turns (moved, dropped, rewritten), one
    note a line."""
    console.print("[bold]what the template does with this conversation[/bold]: "
                  + ("none of its turns are moved, dropped or rewritten" if not notes else ""))
    for note in notes:
        console.print(f"  - {escape(note)}", highlight=False)


def doctor_table(checks: list[Any], title: str) -> Table:
    """The chat template doctor's checks: name, pass/FAIL, detail, fix."""
    table = Table(title=title)
    for col in ("check", "result", "detail", "fix"):
        table.add_column(col, overflow="fold")
    for c in checks:
        table.add_row(c.name, "[green]pass[/green]" if c.ok else "[red]FAIL[/red]",
                      escape(c.detail), escape(c.fix))
    return table


ROLE_WORDS = {"system", "user", "assistant", "human", "gpt", "tool", "ipython", "model",
              "developer"}


def prompt_as_text(tokenizer: Any, ids: list[int]) -> str:
    """A rendered prompt as readable turns ("user: ...") without the template's special tokens: the
    pieces between special tokens, a piece that is only a role word joined to the next, the
    generation prompt (a role word with nothing after it) left out."""
    special = set(tokenizer.all_special_ids) | {i for i, t in tokenizer.added_tokens_decoder.items()
                                                if t.special}
    pieces, run = [], []
    for token in [*ids, None]:
        if token is None or token in special:
            text = tokenizer.decode(run).strip() if run else ""
            if text:
                pieces.append(text)
            run = []
        else:
            run.append(token)
    turns: list[str] = []
    pending = None
    for piece in pieces:
        head, _, rest = piece.partition("\n")
        if pending is not None:
            turns.append(f"{pending}: {piece}")
            pending = None
        elif piece.lower() in ROLE_WORDS:
            pending = piece
        elif head.strip().lower() in ROLE_WORDS and rest.strip():
            turns.append(f"{head.strip()}: {rest.strip()}")
        else:
            turns.append(piece)
    return "\n".join(turns)
