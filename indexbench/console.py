"""Rich progress for the CLI: one live display shared by the grid bar and each step's bar."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

T = TypeVar("T")


class _RichTask:
    def __init__(self, progress: Progress, task_id, description: str):
        self._progress = progress
        self._id = task_id
        self._description = description

    def advance(self, n: int = 1) -> None:
        self._progress.advance(self._id, n)

    def set_status(self, text: str) -> None:
        self._progress.update(self._id, description=f"{self._description} [dim]{text}[/]")


class RichProgress:
    """Implements `indexbench.protocols.Progress` on a `rich.progress.Progress`."""

    def __init__(self, console: Console | None = None, enabled: bool = True):
        self.console = console or Console(stderr=True)
        self._progress = Progress(
            SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
            TimeElapsedColumn(), TimeRemainingColumn(), console=self.console, transient=True,
            disable=not enabled,
        )
        self._enabled = enabled

    def __enter__(self) -> RichProgress:
        self._progress.start()
        return self

    def __exit__(self, *exc) -> None:
        self._progress.stop()

    @contextmanager
    def task(self, description: str, total: int | None = None):
        task_id = self._progress.add_task(description, total=total)
        try:
            yield _RichTask(self._progress, task_id, description)
        finally:
            self._progress.remove_task(task_id)

    def track(self, items: Iterable[T], description: str, total: int | None = None) -> Iterator[T]:
        if total is None and hasattr(items, "__len__"):
            total = len(items)  # type: ignore[arg-type]
        with self.task(description, total) as bar:
            for item in items:
                yield item
                bar.advance()

    def log(self, message: str, level: str = "info") -> None:
        if not self._enabled:
            return
        marker, style = _LEVEL_LOOKS.get(level, ("", ""))
        text = Text(marker + message, style=style)  # a Text is never parsed as markup
        if marker:
            text.stylize("bold", 0, len(marker) - 1)
        self._progress.console.print(text)


_LEVEL_LOOKS = {
    "info": ("", ""),
    "detail": ("", "dim"),
    "ok": ("✓ ", ""),
    "skipped": ("– ", "yellow"),
    "error": ("✗ ", "red"),
    "warning": ("! ", "red"),
}
"""How each of `indexbench.protocols.LOG_LEVELS` looks: a marker that reads without colour, and a
style."""
