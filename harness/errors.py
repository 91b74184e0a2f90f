"""Errors a user sees: each names the file, the case, the field and what is wrong."""
from __future__ import annotations


class CaseError(Exception):
    """A case file or case that cannot be run as written."""

    def __init__(self, file: str, case: str | None, field: str | None, message: str):
        self.file, self.case, self.field, self.message = file, case, field, message
        where = file + (f"::{case}" if case else "")
        super().__init__(f"{where}: {field + ': ' if field else ''}{message}")


class EngineSkip(Exception):
    """Raised by an engine that cannot run a case; the reason becomes the skip message."""


class EngineRejected(Exception):
    """Raised when the framework itself refuses the configuration (carries the framework's error, and the facts
    of the run that decided it, e.g. {"onednn": False}, for the conditions of expected refusals)."""

    def __init__(self, message: str, facts: dict | None = None):
        super().__init__(message)
        self.facts = dict(facts or {})
