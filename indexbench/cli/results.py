"""Commands over stored results: compare, verify, import, leaderboard, export."""

from __future__ import annotations

import sys
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from .app import (
    DataDir,
    Format,
    StorePath,
    app,
    console,
    friendly_errors,
    headlines,
    sigterm_unwinds,
    write_atomic,
)


class CompareFormat(str, Enum):
    rich = "rich"
    markdown = "markdown"


class SeedGate(str, Enum):
    each = "each"
    mean = "mean"


@app.command()
@friendly_errors
def compare(
    baseline: Annotated[Path, typer.Argument(help="The baseline: a run --json file or a results store.")],
    current: Annotated[Path | None, typer.Argument(help="What to check [default: the results store].")] = None,
    grid: Annotated[Path | None, typer.Option("--grid", "-g", help="Take the tolerances from this grid file.")] = None,
    absolute: Annotated[float | None, typer.Option(help="Allowed drop of any metric [default: the grid's, else 0.001].")] = None,
    relative: Annotated[float | None, typer.Option(help="Allowed drop as a fraction of the baseline value.")] = None,
    timings: Annotated[float | None, typer.Option(help="Also compare timings: allowed relative growth (0.5 = +50 %).")] = None,
    seeds: Annotated[SeedGate | None, typer.Option(
        "--seeds", help="With several seeds, gate on each seed's cell or on their mean [default: the grid's, else each].")] = None,
    fmt: Annotated[CompareFormat, typer.Option("--format", "-f")] = CompareFormat.rich,
    junit: Annotated[Path | None, typer.Option("--junit", help="Also write JUnit XML here (for CI systems).")] = None,
    store: StorePath = None,
) -> None:
    """Check every cell of a baseline against a run: exit 0 if all hold, 1 if any regressed."""
    import dataclasses

    from .. import paths
    from ..compare import COLUMNS, add_significance, load_side, render_junit, render_markdown, rows, summary
    from ..compare import compare as compare_runs
    from ..gridfile import Tolerance, Tolerances, load_grid

    tolerances = load_grid(grid).tolerances if grid is not None else Tolerances()
    if absolute is not None or relative is not None:
        tolerances = dataclasses.replace(tolerances, default=Tolerance(
            absolute=tolerances.default.absolute if absolute is None else absolute,
            relative=tolerances.default.relative if relative is None else relative))
    if timings is not None:
        tolerances = dataclasses.replace(tolerances, timings=timings)
    if seeds is not None:
        tolerances = dataclasses.replace(tolerances, seeds=seeds.value)
    current = current or paths.results_path(store)
    if junit is not None:
        paths.check_writable_file(junit, "--junit")
    base_records, current_records = load_side(baseline), load_side(current)
    result = compare_runs(base_records, current_records, tolerances, baseline_name=str(baseline),
                          current_name=str(current))
    add_significance(result, base_records, current_records)
    if fmt is CompareFormat.markdown:
        sys.stdout.write(render_markdown(result))
    else:
        from rich.table import Table

        table = Table(title=f"{current} against {baseline}", title_justify="left")
        for col in COLUMNS:
            table.add_column(col, justify="right" if col not in ("cell", "metric", "status") else "left")
        colours = {"ok": "green", "improved": "cyan", "regressed": "red", "missing": "red", "error": "red"}
        for row in rows(result):
            status = row[-1].split(":")[0]
            table.add_row(*row[:-1], f"[{colours.get(status, 'yellow')}]{row[-1]}[/]")
        console().print(table)
        console(stderr=True).print(summary(result), soft_wrap=True)
    if junit is not None:
        write_atomic(junit, render_junit(result))
    if result.failed:
        raise typer.Exit(1)


@app.command()
@friendly_errors
def verify(
    references: Annotated[Path | None, typer.Option(
        "--references", "-r", help="The reference matrix (TOML) [default: the one shipped with indexbench].")] = None,
    data_dir: DataDir = None,
    store: StorePath = None,
    cache_dir: Annotated[Path | None, typer.Option(help="Artifact cache [default: $INDEXBENCH_CACHE, else a per-user cache dir].")] = None,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")] = False,
    dataset: Annotated[list[str] | None, typer.Option(
        "--dataset", "-d", help="Only the references on this dataset (repeatable).")] = None,
    indexer: Annotated[list[str] | None, typer.Option(
        "--indexer", "-i", help="Only the references of this indexer (repeatable).")] = None,
    wide: Annotated[bool, typer.Option(
        "--wide", help="Paper vs ours: a table per dataset × task, a row per published method, a column per metric.")] = False,
) -> None:
    """Run the reference cells whose data is present and judge each against its published figure."""
    from .. import paths
    from ..console import RichProgress
    from ..references import dataset_name, load_references, shipped_references
    from ..references import verify as verify_references
    from ..store import ResultStore

    references = references or shipped_references()
    refs = [r for r in load_references(references)
            if (not dataset or r.dataset in dataset or dataset_name(r.dataset) in dataset)
            and (not indexer or r.indexer in indexer)]
    if not refs:
        raise typer.BadParameter("no reference matches --dataset/--indexer", param_hint="--dataset/--indexer")
    results = ResultStore(paths.results_path(store))
    with sigterm_unwinds(), RichProgress(enabled=not quiet) as progress:
        verdicts = verify_references(refs, data_dir=data_dir, store=results, cache_dir=cache_dir, device=device,
                                     progress=progress)
    if wide:
        _print_paper_vs_ours(verdicts)
    else:
        _print_verdicts(verdicts, references)
    if any(v.status in ("fail", "error") for v in verdicts):
        raise typer.Exit(1)


VERDICT_COLOURS = {"ok": "green", "near": "yellow", "fail": "red", "error": "red", "skipped": "dim", "beside": "cyan"}


def _print_verdicts(verdicts, references: Path) -> None:
    from rich.markup import escape
    from rich.table import Table

    table = Table(title=f"references ({references})", title_justify="left")
    for col in ("reference", "cell", "metric", "published", "ours", "tolerance", "verdict"):
        table.add_column(col)
    colours = VERDICT_COLOURS
    bounds = {"within": "±", "at-least": "≥ −", "beside": "not judged, "}
    for v in verdicts:
        r = v.reference
        why = v.reason or (r.note if v.status == "beside" else "")
        table.add_row(escape(r.name), escape(f"{r.indexer} × {r.task} × {r.dataset}"), r.metric, f"{r.value:.4f}",
                      "" if v.ours is None else f"{v.ours:.4f}",
                      f"{bounds[r.check]}{r.tolerance:.4f}" if r.check != "beside" else "not judged",
                      f"[{colours[v.status]}]{v.status}[/]" + (f" ({escape(why)})" if why else ""))
    console().print(table)


def _print_paper_vs_ours(verdicts) -> None:
    """Each cell: the published figure, ours, and the verdict as a word (readable without colour);
    why a row was skipped or not judged follows each table once."""
    from rich.markup import escape
    from rich.table import Table

    from ..references import paper_vs_ours

    for pivot in paper_vs_ours(verdicts):
        table = Table(title=f"{pivot.dataset} · {pivot.task}: paper vs ours", title_justify="left")
        table.add_column("published method")
        table.add_column("ours")
        for metric in pivot.metrics:
            table.add_column(f"{metric}\npaper / ours", justify="right")
        notes: dict[str, list[str]] = {}  # reason -> the rows it explains
        for name, indexer, cells in pivot.rows:
            shown = []
            for metric in pivot.metrics:
                v = cells.get(metric)
                if v is None:
                    shown.append("")
                    continue
                ours = "—" if v.ours is None else f"{v.ours:.4f}"
                mark = "" if v.status == "skipped" else f" [{VERDICT_COLOURS[v.status]}]{v.status}[/]"
                shown.append(f"{v.reference.value:.4f} / {ours}{mark}")
            table.add_row(escape(name), escape(indexer), *shown)
            why = next((v.reason or v.reference.note for v in cells.values() if v.reason or
                        (v.status == "beside" and v.reference.note)), "")
            if why:
                notes.setdefault(why, []).append(indexer)
        console().print(table)
        for why, indexers in notes.items():
            console().print(f"  [dim]{escape(', '.join(dict.fromkeys(indexers)))}: {escape(why)}[/]")


@app.command(name="import")
@friendly_errors
def import_records(
    files: Annotated[list[Path], typer.Argument(help="Recovery files (JSON lines) or `run --json` files.")],
    store: StorePath = None,
) -> None:
    """Add records kept in a recovery file (or written by `run --json`) to the results store."""
    from .. import paths
    from ..store import ResultStore

    results = ResultStore(paths.results_path(store))
    results.check()
    for path in files:
        n = results.import_file(path)
        console(stderr=True).print(f"{n} record{'' if n == 1 else 's'} from {path} added to {results.path}")


@app.command()
@friendly_errors
def leaderboard(
    dataset: Annotated[str | None, typer.Option("--dataset", "-d")] = None,
    task: Annotated[str | None, typer.Option("--task", "-t")] = None,
    fmt: Annotated[Format, typer.Option("--format", "-f")] = Format.rich,
    store: StorePath = None,
) -> None:
    """Re-render the leaderboard from the results store (latest record per cell)."""
    from .. import paths
    from ..leaderboard import build_tables, render_csv, render_json, render_markdown, render_rich
    from ..store import ResultStore

    records = ResultStore(paths.results_path(store)).records(dataset=dataset, task=task)
    if not records:
        console(stderr=True).print("no results stored yet: run `indexbench run` first")
        raise typer.Exit(1)
    if fmt is Format.rich:
        render_rich(build_tables(records, headlines()), console())
    elif fmt is Format.markdown:
        sys.stdout.write(render_markdown(build_tables(records, headlines())))
    elif fmt is Format.csv:
        sys.stdout.write(render_csv(records))
    else:
        sys.stdout.write(render_json(records) + "\n")


@app.command()
@friendly_errors
def export(
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder to write the .run and .qrels files to.")],
    dataset: Annotated[str | None, typer.Option("--dataset", "-d")] = None,
    task: Annotated[str | None, typer.Option("--task", "-t")] = None,
    indexer: Annotated[str | None, typer.Option("--indexer", "-i", help="An indexer label, as in the leaderboard.")] = None,
    store: StorePath = None,
) -> None:
    """Write stored ranking cells (latest per cell) as TREC run and qrels files."""
    from .. import paths
    from ..errors import IndexbenchError
    from ..store import ResultStore
    from ..trec import export_record

    records = [r for r in ResultStore(paths.results_path(store)).records(dataset=dataset, task=task, indexer=indexer,
                                                                         results=True)
               if r.status == "ok" and r.rankings]
    if not records:
        raise IndexbenchError("no stored ranking cell matches (cells stored before per-query results were kept "
                              "have no rankings: run them again)")
    if out.exists() and not out.is_dir():
        raise IndexbenchError(f"{out}: is a file; --out takes a folder")
    err = console(stderr=True)
    for record in records:
        run, qrels = export_record(record, out)
        err.print(f"{run.name}: {len(record.rankings):,} queries (+ {qrels.name})")
