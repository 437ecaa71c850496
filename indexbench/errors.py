"""User-facing errors.

Anything raised as an `IndexbenchError` is an expected problem with the user's input (a bad file,
an unknown name, an invalid option). The CLI prints its message as one line and exits non-zero;
every other exception is a bug and keeps its traceback.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path


class IndexbenchError(Exception):
    """An expected, explainable failure caused by input rather than by a bug."""


class DataError(IndexbenchError):
    """A data file is missing, malformed or inconsistent.

    The message always names the file, and the line when one is to blame, so the user can jump
    straight to it: ``corpus.jsonl:17: missing field "_id"``.
    """

    def __init__(self, path: str | Path, problem: str, line: int | None = None):
        self.path = str(path)
        self.line = line
        self.problem = problem
        where = f"{self.path}:{line}" if line is not None else self.path
        super().__init__(f"{where}: {problem}")


class UnknownNameError(IndexbenchError):
    """A name on the command line matches no registered indexer, task, dataset, ..."""

    def __init__(self, kind: str, name: str, valid: Iterable[str]):
        self.kind = kind
        self.name = name
        self.valid = sorted(valid)
        choices = ", ".join(self.valid) or "(none registered)"
        super().__init__(f"unknown {kind} {name!r}; valid {kind}s: {choices}")


class ConfigError(IndexbenchError):
    """An option given to an indexer or task is unknown or has the wrong type."""


__all__ = ["ConfigError", "DataError", "IndexbenchError", "UnknownNameError"]
