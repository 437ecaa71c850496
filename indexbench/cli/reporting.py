"""`indexbench report`: the static HTML report of a store or of run files."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from .app import StorePath, app, console, friendly_errors, headlines


@app.command()
@friendly_errors
def report(
    runs: Annotated[list[Path] | None, typer.Argument(
        help="`run --json` files or results stores to report on [default: the results store].")] = None,
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder to write the site to (replaced if it holds an earlier report).")] = Path("indexbench-report"),
    reference: Annotated[str | None, typer.Option(
        "--reference", help="Indexer every other is compared with query by query [default: bm25, else each board's best].")] = None,
    references: Annotated[Path | None, typer.Option(
        "--references", "-r", help="Published figures to show beside ours (TOML) [default: the shipped matrix].")] = None,
    dataset: Annotated[str | None, typer.Option("--dataset", "-d", help="Only this dataset.")] = None,
    task: Annotated[str | None, typer.Option("--task", "-t", help="Only this task.")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
    store: StorePath = None,
) -> None:
    """Write a static HTML report (leaderboards with significance, ID diagnostics, curves, published vs ours)."""
    from .. import paths
    from ..compare import load_side
    from ..console import RichProgress
    from ..references import load_references, shipped_references
    from ..report import write_report
    from ..store import cell_key

    sources = list(runs) if runs else [paths.results_path(store)]
    latest = {}
    for source in sources:  # later files win for the same cell, as a store's newer rows do
        for record in load_side(source):
            latest[cell_key(record)] = record
    records = [r for r in latest.values() if (dataset is None or r.dataset == dataset) and (task is None or r.task == task)]
    refs = load_references(references or shipped_references())
    with RichProgress(enabled=not quiet) as progress:
        index = write_report(records, out, source=", ".join(str(s) for s in sources), references=refs,
                             reference_indexer=reference, headline=headlines(), progress=progress)
    console(stderr=True).print(f"report of {len(records):,} records: {index}")
