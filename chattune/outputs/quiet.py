"""Quiet by default: while chattune works, what the libraries under it say (Python warnings, log
records) and their progress bars stay off the terminal, kept in order for a log file; one line then
says how many and where.
`verbose` shows them as they come, as the libraries print them, and still keeps them.

Only the libraries' own switches are used (warnings.showwarning, logging handlers, transformers' and
the hub's progress-bar setting), never scraping of stdout or stderr.
"""

from __future__ import annotations

import logging
import sys
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from chattune.held_messages import held as _held
from chattune.held_messages import hold_import_messages

LOG_NAME = "warnings.log"  # beside metrics.jsonl in a run's output_dir


class Kept:
    """The library messages of one command or trainer, in order, as lines of the log file."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def __len__(self) -> int:
        return len(self.lines)

    def add(self, line: str) -> None:
        self.lines.append(f"{time.strftime('%H:%M:%S')} {line.rstrip()}")

    def write(self, folder: Path) -> Path | None:
        """Write the log into `folder` (None, and nothing written, when nothing was kept)."""
        if not self.lines:
            return None
        path = Path(folder) / LOG_NAME
        path.write_text("\n".join(self.lines) + "\n", encoding="utf-8")
        return path

    def summary(self, path: Path) -> str:
        """The one line a run ends with."""
        n = len(self.lines)
        return (f"{n} message{'s' if n != 1 else ''} from libraries (warnings, log records) kept "
                f"in {path.resolve()}")


def _record_line(record: logging.LogRecord) -> str:
    return f"{record.levelname} {record.name}: {record.getMessage()}"


class _Keeper(logging.Handler):
    """A logging handler that keeps records (and, when `echo`, prints them as Python's last-resort
    handler would)."""

    def __init__(self, kept: Kept, echo: bool):
        super().__init__(logging.WARNING)
        self.kept, self.echo = kept, echo

    def emit(self, record: logging.LogRecord) -> None:
        # a record reaches both the root's keeper and transformers' when something (a library, a
        # test) has turned on transformers' propagation: it is kept once
        if getattr(record, "chattune_kept", None) is self.kept:
            return
        record.chattune_kept = self.kept
        self.kept.add(_record_line(record))
        if self.echo:
            sys.stderr.write(record.getMessage() + "\n")


def _not_a_library() -> bool:
    """Whether the code that called warnings.warn is chattune's own or the user's script (warnings
    for the user, shown as usual) rather than a library's."""
    frame = sys._getframe(2)  # past this function and showwarning
    while frame is not None and frame.f_globals.get("__name__",
                                                    "").startswith(("warnings", __name__)):
        frame = frame.f_back
    return (frame is not None and frame.f_globals.get("__name__", "").split(".")[0]
            in ("chattune", "__main__"))


def _showwarning(kept: Kept, verbose: bool, previous: Any) -> Any:
    def show(message: Warning | str, category: type[Warning], filename: str, lineno: int,
             file: Any = None, line: str | None = None) -> None:
        mine = _not_a_library()
        if not mine:
            kept.add(f"{category.__name__}: {message} ({filename}:{lineno})")
        if mine or verbose:
            msg = warnings.WarningMessage(message, category, filename, lineno, file, line)
            if previous is getattr(warnings, "_showwarning_orig", None):
                warnings._showwarnmsg_impl(msg)  # type: ignore[attr-defined]  # as warnings does (a recorder too)
            else:
                previous(message, category, filename, lineno, file, line)

    return show


@contextmanager
def _tqdm_off() -> Iterator[None]:
    """Bars that libraries draw with tqdm itself, past any switch of theirs (lm-evaluation-harness'
    requests, transformers' GGUF reader): every tqdm made while the block runs is disabled."""
    from tqdm import std

    init = std.tqdm.__init__

    def disabled(self: Any, *args: Any, **kwargs: Any) -> None:
        kwargs["disable"] = True
        init(self, *args, **kwargs)

    std.tqdm.__init__ = disabled
    try:
        yield
    finally:
        std.tqdm.__init__ = init


@contextmanager
def _progress_bars_off(off: bool) -> Iterator[None]:
    """transformers' and the hub's progress bars (loading and writing weights, downloads) off, then
    as they were; datasets' too where it is imported, and any other library's tqdm bar."""
    if not off:
        yield
        return
    with _tqdm_off(), _switched_bars_off():
        yield


@contextmanager
def _switched_bars_off() -> Iterator[None]:
    """The bars transformers, the hub and datasets draw under their own switches, off, then as they
    were."""
    import transformers.utils.logging as hf_logging

    was_on = hf_logging.is_progress_bar_enabled()
    datasets_tqdm = sys.modules.get("datasets.utils.tqdm")
    datasets_on = datasets_tqdm is not None and not datasets_tqdm.are_progress_bars_disabled()
    hf_logging.disable_progress_bar()
    if datasets_on:
        datasets_tqdm.disable_progress_bars()
    try:
        yield
    finally:
        if was_on:
            hf_logging.enable_progress_bar()
        if datasets_on:
            datasets_tqdm.enable_progress_bars()


@contextmanager
def _transformers_records(handler: logging.Handler, verbose: bool) -> Iterator[None]:
    """transformers logs through its own stderr handler, not the root logger: ours instead (as well,
    if verbose)."""
    import transformers.utils.logging as hf_logging

    hf_logging.get_logger()  # configures its root logger and default handler if nothing has yet
    hf_logging.add_handler(handler)
    if not verbose:
        hf_logging.disable_default_handler()
    try:
        yield
    finally:
        hf_logging.remove_handler(handler)
        if not verbose:
            hf_logging.enable_default_handler()


@contextmanager
def kept_quiet(kept: Kept, verbose: bool = False) -> Iterator[Kept]:
    """Keep the libraries' warnings and log records (WARNING and up) in `kept` while the block runs,
    their progress bars off; chattune's own warnings are shown as usual. `verbose`: the libraries'
    output is shown live too."""
    hold_import_messages(verbose)
    for record in _held.records:  # what was held since import belongs to this run's log
        kept.add(_record_line(record))
    _held.records.clear()
    root = logging.getLogger()
    # with no handler of the application's, Python prints records to stderr itself: we do that when
    # verbose
    handler = _Keeper(kept, echo=verbose and not root.handlers)
    quiet_handler = _Keeper(kept, echo=False)
    root.addHandler(handler)
    _held.runs += 1
    try:
        with warnings.catch_warnings(), _progress_bars_off(not verbose), \
                _transformers_records(quiet_handler, verbose):
            warnings.showwarning = _showwarning(kept, verbose, warnings.showwarning)
            yield kept
    finally:
        _held.runs -= 1
        root.removeHandler(handler)
