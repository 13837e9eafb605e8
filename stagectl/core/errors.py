"""The stagectl exception hierarchy.

Every error a user can cause (a bad stage file, a bad lens file, a bad command line) is a :class:`StageError`
subclass whose message is complete on its own; the CLI prints it without a traceback and exits with
``exit_code``.
"""

from __future__ import annotations

__all__ = ["StageError", "UsageError", "ConfigError", "ConfigErrors"]


class StageError(Exception):
    """Base of every error stagectl reports to a user."""

    exit_code = 1


class UsageError(StageError):
    """A bad command-line value."""

    exit_code = 2


class ConfigError(StageError):
    """One problem in a configuration file, located as ``file:line: key: what was expected``."""

    exit_code = 2

    def __init__(self, file: str, line: int | None, key: str, message: str) -> None:
        self.file = file
        self.line = line
        self.key = key
        self.message = message
        super().__init__(self.format())

    def format(self) -> str:
        where = f"{self.file}:{self.line}" if self.line is not None else self.file
        return f"{where}: {self.key}: {self.message}" if self.key else f"{where}: {self.message}"


class ConfigErrors(StageError):
    """Every problem found in one configuration file, in file order."""

    exit_code = 2

    def __init__(self, errors: list[ConfigError]) -> None:
        self.errors = sorted(errors, key=lambda e: (e.line or 0))
        super().__init__("\n".join(e.format() for e in self.errors))
