"""Messages libraries log as they are imported, before any run (bitsandbytes' CPU backend advises a
hub-downloaded kernel it does not need and falls back without): held for the next run's warnings.log
(chattune.outputs.quiet) rather than printed. Standard library only, so that `import chattune` can
set it up."""

from __future__ import annotations

import logging

IMPORT_LOGGERS = ("bitsandbytes.backends.cpu.ops",)


class Held(logging.Filter):
    """Holds an import-time logger's records outside a run until the next run keeps them; inside a
    run (or when verbose) they pass, to the run's handlers."""

    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []
        self.verbose = False
        self.runs = 0  # kept_quiet blocks open now

    def filter(self, record: logging.LogRecord) -> bool:
        if self.verbose or self.runs:
            return True
        self.records.append(record)
        return False


held = Held()


def hold_import_messages(verbose: bool = False) -> None:
    """Hold the IMPORT_LOGGERS' records from now on (idempotent; no library is imported for it)."""
    held.verbose = verbose
    for name in IMPORT_LOGGERS:
        logger = logging.getLogger(name)
        if held not in logger.filters:
            logger.addFilter(held)
