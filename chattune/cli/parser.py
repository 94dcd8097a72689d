"""The argument parser's own errors as one line each, with "did you mean" for a mistyped subcommand,
flag or choice (Python 3.11's argparse has no suggest_on_error)."""

from __future__ import annotations

import argparse
import difflib
import re
import sys
from typing import NoReturn

from rich.markup import escape

from chattune.cli.common import err_console

USAGE_ERROR = 2  # argparse's (and the shell's) exit status for a command line that cannot be parsed
_CHOICE = re.compile(r"invalid choice: '([^']*)' \(choose from (.*)\)$")


def closest(word: str, options: list[str]) -> str | None:
    """The option `word` most likely meant: the one it begins, else the closest spelling."""
    key = word.lower().lstrip("-")
    starts = [o for o in options if o.lower().lstrip("-").startswith(key)]
    if key and len(starts) == 1:
        return starts[0]
    close = difflib.get_close_matches(word, options, n=1, cutoff=0.6)
    return close[0] if close else None


class ChattuneParser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line naming the command, a suggestion where one is
    close, and where to read more; exit status 2. `settings`: names an unknown `--flag` may mean as
    `--set name=VALUE`."""

    settings: list[str] = []

    def visible_flags(self) -> list[str]:
        return [s for a in self._actions if a.help is not argparse.SUPPRESS
                for s in a.option_strings]

    def unrecognized(self, extra: list[str]) -> NoReturn:
        """Arguments no option or positional of this (sub)command took."""
        named = []
        for arg in extra:
            flag = arg.split("=", 1)[0]
            guess = closest(flag, self.visible_flags()) if arg.startswith("--") else None
            key = (closest(flag.lstrip("-").replace("-", "_"), self.settings)
                   if arg.startswith("--") else None)
            if key and not guess:
                guess = f"--set {key}=VALUE"
            named.append(f"{arg} (did you mean {guess}?)" if guess else arg)
        self.error(f"unrecognized arguments: {', '.join(named)}")

    def error(self, message: str) -> NoReturn:
        found = _CHOICE.search(message)
        commands = [a for a in self._actions if isinstance(a, argparse._SubParsersAction)]
        if commands and "required" in message:
            message += f" (one of: {', '.join(commands[0].choices)})"
        if found:
            guess = closest(found.group(1), re.findall(r"'([^']*)'", found.group(2)))
            if guess:
                message += f"; did you mean '{guess}'?"
        err_console.print(f"[bold red]error:[/bold red] {escape(self.prog)}: {escape(message)} "
                          f"(see `{escape(self.prog)} --help`)", highlight=False)
        sys.exit(USAGE_ERROR)


def place_late_positionals(parser: argparse.ArgumentParser, args: argparse.Namespace,
                           extra: list[str]) -> list[str]:
    """Give positionals that argparse left unfilled the words it could not place: it closes an
    optional or list positional at the first option, so `data check FILE --limit 5 MODEL` would
    otherwise reject MODEL. Returns the words still unplaced."""
    words = [w for w in extra if not w.startswith("-")]
    if len(words) != len(extra):
        return extra
    for action in parser._get_positional_actions():
        if not words:
            break
        if action.nargs == "?" and getattr(args, action.dest, None) is None:
            setattr(args, action.dest, words.pop(0))
        elif action.nargs in ("+", "*"):
            setattr(args, action.dest, [*(getattr(args, action.dest, None) or []), *words])
            words = []
    return words


def leaf_parsers(parser: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
    """Every parser that runs a command (the ones without subcommands of their own)."""
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        return [parser]
    return [leaf for a in subs for p in dict.fromkeys(a.choices.values())
            for leaf in leaf_parsers(p)]
