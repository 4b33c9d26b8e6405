"""Errors meant for people: one clear line, no traceback, at the command line."""

from __future__ import annotations


class RelextError(Exception):
    """A problem the user can fix (bad path, unknown corpus, bad option)."""


class RecordError(ValueError):
    """One input record is malformed; ``field`` names the offending part of it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}" if field else message)
        self.field = field
        self.message = message
