"""Errors meant for people: one clear line, no traceback, at the command line."""

from __future__ import annotations

import sys
from collections.abc import Callable


class RelextError(Exception):
    """A problem the user can fix (bad path, unknown corpus, bad option)."""


class RecordError(ValueError):
    """One input record is malformed; ``field`` names the offending part of it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}" if field else message)
        self.field = field
        self.message = message


def cli_exit(run: Callable[[], object]) -> int:
    """Run a command's body: exit code 0, or for a ``RelextError`` ``error: ...`` on stderr and 2."""
    try:
        run()
        return 0
    except RelextError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
