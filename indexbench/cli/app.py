"""The Typer application and what its commands share: option types, error handling, output.

Nothing heavy is imported at module level (a test checks that ``--help`` never imports torch):
each command imports what it needs when it runs.
"""

from __future__ import annotations

import contextlib
import functools
import os
import sys
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from ..paths import staging_path

app = typer.Typer(
    help="Benchmark semantic indexers against classic retrieval on the same tasks, data and metrics.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    # Help texts are plain text: "[default: ...]" and 'pip install "indexbench[ray]"' must
    # print as written, not be read as Rich markup tags (which swallowed them).
    rich_markup_mode="markdown",
)


class Format(str, Enum):
    rich = "rich"
    markdown = "markdown"
    csv = "csv"
    json = "json"


def split_names(values: list[str] | None) -> list[str]:
    """Accept both ``-i a,b`` and ``-i a -i b``."""
    return [part.strip() for value in values or [] for part in value.split(",") if part.strip()]


def parse_seeds(seeds: str) -> list[int]:
    from ..errors import ConfigError

    try:
        return [int(part) for part in split_names([seeds])]
    except ValueError:
        raise ConfigError(f"--seeds takes comma-separated integers, got {seeds!r}") from None


def console(stderr: bool = False):
    from rich.console import Console

    stream = sys.stderr if stderr else sys.stdout
    # Piped output has no terminal width; a wide default keeps leaderboard columns unclipped.
    return Console(stderr=stderr, highlight=False, width=None if stream.isatty() else 200)


def friendly_errors(func):
    """Turn an `IndexbenchError` into one red line on stderr and exit status 2."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        from rich.markup import escape

        from ..errors import IndexbenchError

        try:
            return func(*args, **kwargs)
        except IndexbenchError as exc:  # escaped: a message may hold brackets ("indexbench[ray]")
            console(stderr=True).print(f"[bold red]error:[/] {escape(str(exc))}", soft_wrap=True)
            raise typer.Exit(2) from None

    return wrapper


@contextlib.contextmanager
def sigterm_unwinds():
    """Make SIGTERM (``kill``, a CI timeout) unwind the stack like Ctrl-C does.

    Python's default SIGTERM handling exits without running ``finally`` blocks, so a run killed
    mid-artifact left its temporary directory in the cache. Raising SystemExit(143) instead lets
    the cache remove it (resumable checkpoints are kept on purpose)."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def unwind(signum, frame):
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, unwind)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = staging_path(path.parent, f".{path.name}.")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def headlines() -> dict[str, list[str]]:
    from ..registry import get_registry

    return {name: list(task.metrics) for name, task in get_registry().tasks.items()}


DataDir = Annotated[Path | None, typer.Option(
    "--data-dir", help="Where dataset folders live [default: $INDEXBENCH_DATA, else a per-user data dir].")]
StorePath = Annotated[Path | None, typer.Option(
    "--store", help="SQLite results store [default: $INDEXBENCH_RESULTS, else a per-user file].")]
