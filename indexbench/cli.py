"""The `indexbench` command: a thin Typer layer over `indexbench.runner` and friends.

Nothing heavy is imported at module level (a test checks that ``--help`` never imports torch):
each command imports what it needs when it runs.
"""

from __future__ import annotations

import contextlib
import functools
import os
import sys
import tempfile
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

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


def _split(values: list[str] | None) -> list[str]:
    """Accept both ``-i a,b`` and ``-i a -i b``."""
    return [part.strip() for value in values or [] for part in value.split(",") if part.strip()]


def _seed_list(seeds: str) -> list[int]:
    from .errors import ConfigError

    try:
        return [int(part) for part in _split([seeds])]
    except ValueError:
        raise ConfigError(f"--seeds takes comma-separated integers, got {seeds!r}") from None


def _console(stderr: bool = False):
    from rich.console import Console

    stream = sys.stderr if stderr else sys.stdout
    # Piped output has no terminal width; a wide default keeps leaderboard columns unclipped.
    return Console(stderr=stderr, highlight=False, width=None if stream.isatty() else 200)


def friendly_errors(func):
    """Turn an `IndexbenchError` into one red line on stderr and exit status 2."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        from rich.markup import escape

        from .errors import IndexbenchError

        try:
            return func(*args, **kwargs)
        except IndexbenchError as exc:  # escaped: a message may hold brackets ("indexbench[ray]")
            _console(stderr=True).print(f"[bold red]error:[/] {escape(str(exc))}", soft_wrap=True)
            raise typer.Exit(2) from None

    return wrapper


@contextlib.contextmanager
def _sigterm_unwinds():
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


def _write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _headlines() -> dict[str, list[str]]:
    from .registry import get_registry

    return {name: list(task.metrics) for name, task in get_registry().tasks.items()}


DataDir = Annotated[Path | None, typer.Option(
    "--data-dir", help="Where dataset folders live [default: $INDEXBENCH_DATA, else a per-user data dir].")]
StorePath = Annotated[Path | None, typer.Option(
    "--store", help="SQLite results store [default: $INDEXBENCH_RESULTS, else a per-user file].")]


@app.command()
@friendly_errors
def run(
    indexer: Annotated[list[str] | None, typer.Option(
        "--indexer", "-i", help="Indexer(s), comma-separated; options as name:key=value, e.g. dual-encoder:finetune=true.")] = None,
    task: Annotated[list[str] | None, typer.Option(
        "--task", "-t", help="Task(s), comma-separated [default: every task; inapplicable cells are skipped].")] = None,
    dataset: Annotated[list[str] | None, typer.Option(
        "--dataset", "-d", help="Dataset name(s) or dataset directories, comma-separated.")] = None,
    grid: Annotated[Path | None, typer.Option(
        "--grid", "-g", help="A grid file (TOML: indexers, tasks, datasets, seeds, tolerances); flags override it.")] = None,
    data_dir: DataDir = None,
    cache_dir: Annotated[Path | None, typer.Option(help="Artifact cache [default: $INDEXBENCH_CACHE, else a per-user cache dir].")] = None,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="Recompute every artifact and store none.")] = False,
    store: StorePath = None,
    json_path: Annotated[Path | None, typer.Option("--json", help="Also write the records to this JSON file.")] = None,
    seed: Annotated[int | None, typer.Option(help="Seed for every random choice a model makes [default: 0].")] = None,
    seeds: Annotated[str | None, typer.Option(help="Several seeds, comma-separated (each cell runs once per seed).")] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Reuse every finished cell of the store that matches; run the rest.")] = False,
    device: Annotated[str | None, typer.Option(help="auto, cpu or cuda [default: auto].")] = None,
    threads: Annotated[int | None, typer.Option(
        help="torch threads in every cell [default: the grid's, else torch's own (one per core)].")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")] = False,
    executor: Annotated[str, typer.Option(
        help="local (cells one after another in this process) or ray (each cell a Ray task; "
             'pip install "indexbench[ray]").')] = "local",
    ray_address: Annotated[str | None, typer.Option(
        help="An existing Ray cluster (e.g. ray://head:10001 or auto) [default: start a local one].")] = None,
    max_parallel: Annotated[int | None, typer.Option(
        help="With --executor ray: at most this many cells at once [default: as resources allow].")] = None,
    cell_cpus: Annotated[float | None, typer.Option(help="With --executor ray: CPUs per cell [default: 1].")] = None,
    cell_gpus: Annotated[float | None, typer.Option(
        help="With --executor ray: GPUs per cell [default: 1 on cuda for indexers that use the device, else 0].")] = None,
) -> None:
    """Run every indexer × task × dataset cell, store the records and print a leaderboard."""
    from . import paths
    from .console import RichProgress
    from .errors import ConfigError, IndexbenchError, UnknownNameError
    from .executors import make_executor
    from .gridfile import load_grid
    from .leaderboard import build_tables, render_json, render_rich
    from .registry import get_registry
    from .runner import run_grid
    from .store import ResultStore

    plan = load_grid(grid) if grid is not None else None
    indexers = _split(indexer) or (plan.indexers if plan else [])
    if not indexers:
        raise ConfigError("no indexer given: pass --indexer NAME[,NAME...] or --grid FILE")
    tasks = _split(task) or (plan.tasks if plan and plan.tasks else sorted(get_registry().tasks))
    datasets = _split(dataset) or (plan.datasets if plan else ["sample"])
    if seed is not None and seeds is not None:
        raise ConfigError("give --seed or --seeds, not both")
    if seeds is not None:
        seed_list = _seed_list(seeds)
    else:
        seed_list = [seed] if seed is not None else (plan.seeds if plan else [0])
    data_dir = data_dir or (plan.data_dir if plan else None)
    device = device or (plan.device if plan and plan.device else "auto")
    threads = threads if threads is not None else (plan.threads if plan else None)
    if json_path is not None:
        paths.check_writable_file(json_path, "--json")
    # Which lists the grid file gave (not overridden by a flag): a bad name in them is the file's.
    from_grid = {"indexer": "indexers", "task": "tasks", "dataset": "datasets"} if plan else {}
    for kind, flag in (("indexer", indexer), ("task", task), ("dataset", dataset)):
        if _split(flag) or (kind == "task" and plan and not plan.tasks):
            from_grid.pop(kind, None)
    results = ResultStore(paths.results_path(store))
    runner = make_executor(executor, ray_address=ray_address, max_parallel=max_parallel,
                           cell_cpus=cell_cpus, cell_gpus=cell_gpus)
    try:
        with _sigterm_unwinds(), RichProgress(enabled=not quiet) as progress:
            records = run_grid(
                indexers, tasks, datasets, data_dir=data_dir, cache_dir=cache_dir, use_cache=not no_cache,
                store=results, seed=seed_list, device=device, progress=progress, resume=resume,
                executor=runner, threads=threads,
            )
    except UnknownNameError as exc:
        if exc.kind in from_grid:
            raise ConfigError(f"{plan.path}: {from_grid[exc.kind]!r}: {exc}") from None
        raise
    except KeyboardInterrupt:
        _console(stderr=True).print(
            f"[bold red]interrupted:[/] the cells that finished are in {results.path}; those running or "
            "queued were dropped (their finished artifacts stay cached; --resume goes on from here)", soft_wrap=True)
        raise typer.Exit(130) from None
    from . import distributed

    if not distributed.is_main():  # under torchrun the main process alone reports and writes
        return
    render_rich(build_tables(records, _headlines()), _console())
    err = _console(stderr=True)
    written = ""
    if json_path is not None:
        try:
            _write_atomic(json_path, render_json(records))
            written = f" and {json_path}"
        except OSError as exc:
            err.print(f"[bold red]error:[/] {json_path}: could not be written ({exc.strerror or exc}); "
                      f"the records are in {results.path}", soft_wrap=True)
            raise typer.Exit(2) from None
    if results.recovered_to is not None:
        raise IndexbenchError(f"{results.path}: some records could not be stored ({results.recovery_problem}); "
                              f"they are in {results.recovered_to}: `indexbench import {results.recovered_to}` adds them")
    reused = getattr(records, "reused", 0)
    ran = len(records) - reused
    err.print(f"[dim]{ran} record{'' if ran == 1 else 's'} stored in {results.path}{written}"
              f"{f'; {reused} finished cell(s) reused' if reused else ''}[/]")
    if any(r.status == "error" for r in records):
        raise typer.Exit(1)


@app.command()
@friendly_errors
def baseline(
    grid: Annotated[Path, typer.Option("--grid", "-g", help="The grid file whose cells the baseline holds.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Where to write the baseline (a run --json records file).")],
    seeds: Annotated[str | None, typer.Option(
        help="Seeds, comma-separated [default: the grid's baseline_seeds, else its seeds].")] = None,
    data_dir: DataDir = None,
    cache_dir: Annotated[Path | None, typer.Option(
        help="Artifact cache [default: a new temporary one, so nothing cached by older code is reused].")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")] = False,
) -> None:
    """Record a grid's baseline for `compare`: every cell at every baseline seed, on a private
    store, written to --out only if every cell ran."""
    import shutil
    import tempfile

    from . import paths
    from .console import RichProgress
    from .gridfile import load_grid
    from .leaderboard import build_tables, render_json, render_rich
    from .registry import get_registry
    from .runner import run_grid
    from .store import ResultStore

    plan = load_grid(grid)
    seed_list = _seed_list(seeds) if seeds is not None else (plan.baseline_seeds or plan.seeds)
    paths.check_writable_file(out, "--out")
    work = Path(tempfile.mkdtemp(prefix="indexbench-baseline-"))
    try:
        with _sigterm_unwinds(), RichProgress(enabled=not quiet) as progress:
            records = run_grid(
                plan.indexers, plan.tasks or sorted(get_registry().tasks), plan.datasets,
                data_dir=data_dir or plan.data_dir, cache_dir=cache_dir or work / "cache",
                store=ResultStore(work / "results.sqlite"), seed=seed_list, device=plan.device or "auto",
                progress=progress, threads=plan.threads)
        render_rich(build_tables(records, _headlines()), _console())
        failed = [r for r in records if r.status == "error"]
        if failed:
            _console(stderr=True).print(
                f"[bold red]error:[/] {len(failed)} cell(s) failed ({failed[0].indexer} × {failed[0].task}: "
                f"{failed[0].reason}); {out} was not written", soft_wrap=True)
            raise typer.Exit(1)
        _write_atomic(out, render_json(records))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    _console(stderr=True).print(f"[dim]{len(records)} records ({len(seed_list)} seed(s) a cell) written to {out}[/]")


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

    from . import paths
    from .compare import COLUMNS, add_significance, load_side, render_junit, render_markdown, rows, summary
    from .compare import compare as compare_runs
    from .gridfile import Tolerance, Tolerances, load_grid

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
        _console().print(table)
        _console(stderr=True).print(summary(result), soft_wrap=True)
    if junit is not None:
        _write_atomic(junit, render_junit(result))
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
) -> None:
    """Run the reference cells whose data is present and judge each against its published figure."""
    from rich.table import Table

    from . import paths
    from .console import RichProgress
    from .references import load_references, shipped_references
    from .references import verify as verify_references
    from .store import ResultStore

    references = references or shipped_references()
    refs = load_references(references)
    results = ResultStore(paths.results_path(store))
    with _sigterm_unwinds(), RichProgress(enabled=not quiet) as progress:
        verdicts = verify_references(refs, data_dir=data_dir, store=results, cache_dir=cache_dir, device=device,
                                     progress=progress)
    table = Table(title=f"references ({references})", title_justify="left")
    for col in ("reference", "cell", "metric", "published", "ours", "tolerance", "verdict"):
        table.add_column(col)
    colours = {"ok": "green", "near": "yellow", "fail": "red", "error": "red", "skipped": "dim"}
    for v in verdicts:
        r = v.reference
        table.add_row(r.name, f"{r.indexer} × {r.task} × {r.dataset}", r.metric, f"{r.value:.4f}",
                      "" if v.ours is None else f"{v.ours:.4f}", f"±{r.tolerance:.4f}",
                      f"[{colours[v.status]}]{v.status}[/]" + (f" ({v.reason})" if v.reason else ""))
    _console().print(table)
    if any(v.status in ("fail", "error") for v in verdicts):
        raise typer.Exit(1)


@app.command(name="import")
@friendly_errors
def import_records(
    files: Annotated[list[Path], typer.Argument(help="Recovery files (JSON lines) or `run --json` files.")],
    store: StorePath = None,
) -> None:
    """Add records kept in a recovery file (or written by `run --json`) to the results store."""
    from . import paths
    from .store import ResultStore

    results = ResultStore(paths.results_path(store))
    results.check()
    for path in files:
        n = results.import_file(path)
        _console(stderr=True).print(f"{n} record{'' if n == 1 else 's'} from {path} added to {results.path}")


@app.command()
@friendly_errors
def leaderboard(
    dataset: Annotated[str | None, typer.Option("--dataset", "-d")] = None,
    task: Annotated[str | None, typer.Option("--task", "-t")] = None,
    fmt: Annotated[Format, typer.Option("--format", "-f")] = Format.rich,
    store: StorePath = None,
) -> None:
    """Re-render the leaderboard from the results store (latest record per cell)."""
    from . import paths
    from .leaderboard import build_tables, render_csv, render_json, render_markdown, render_rich
    from .store import ResultStore

    records = ResultStore(paths.results_path(store)).records(dataset=dataset, task=task)
    if not records:
        _console(stderr=True).print("no results stored yet: run `indexbench run` first")
        raise typer.Exit(1)
    if fmt is Format.rich:
        render_rich(build_tables(records, _headlines()), _console())
    elif fmt is Format.markdown:
        sys.stdout.write(render_markdown(build_tables(records, _headlines())))
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
    from . import paths
    from .errors import IndexbenchError
    from .store import ResultStore
    from .trec import export_record

    records = [r for r in ResultStore(paths.results_path(store)).records(dataset=dataset, task=task, indexer=indexer,
                                                                         results=True)
               if r.status == "ok" and r.rankings]
    if not records:
        raise IndexbenchError("no stored ranking cell matches (cells stored before per-query results were kept "
                              "have no rankings: run them again)")
    if out.exists() and not out.is_dir():
        raise IndexbenchError(f"{out}: is a file; --out takes a folder")
    err = _console(stderr=True)
    for record in records:
        run, qrels = export_record(record, out)
        err.print(f"{run.name}: {len(record.rankings):,} queries (+ {qrels.name})")


@app.command()
def plugins(as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False) -> None:
    """List installed plugins, their versions and what each registers."""
    import json

    from rich.table import Table

    from .registry import get_registry

    infos = get_registry().plugins
    if as_json:
        print(json.dumps([vars(i) for i in infos], indent=2))
        return
    table = Table(title="indexbench plugins", title_justify="left")
    for col in ("plugin", "version", "registers"):
        table.add_column(col)
    for info in infos:
        if info.error:
            what = f"[red]failed to load: {info.error}[/]"
        else:
            what = "; ".join(f"{kind}s: {', '.join(names)}" for kind, names in info.registers.items() if names) or "-"
        what += "".join(f"\n[yellow]{warning}[/]" for warning in info.warnings)
        table.add_row(info.name + (" [dim](built-in)[/]" if info.builtin and "built-in" not in info.name else ""),
                      info.version, what)
    _console().print(table)


@app.command()
def indexers() -> None:
    """List indexers with their kind and options (set as name:key=value)."""
    import dataclasses

    from rich.table import Table

    from .generative.options import GenerativeOptions
    from .registry import get_registry

    engine_fields = {f.name for f in dataclasses.fields(GenerativeOptions)}
    table = Table(title="indexers", title_justify="left",
                  caption="+ engine: the generative engine's options (backbone, epochs, max_steps, lr, "
                          "num_beams, ...; see README) apply too")
    for col in ("indexer", "kind", "plugin", "options (defaults)", "description"):
        table.add_column(col)
    for name, entry in sorted(get_registry().indexers.items()):
        inherits = issubclass(entry.config_class, GenerativeOptions)
        opts = ", ".join(f"{f.name}={f.default!r}" for f in dataclasses.fields(entry.config_class)
                         if f.default is not dataclasses.MISSING
                         and not (inherits and f.name in engine_fields))
        if inherits:
            opts = f"{opts}, + engine" if opts else "+ engine"
        table.add_row(name, entry.kind, entry.plugin, opts or "-", entry.description)
    _console().print(table)


@app.command()
def tasks() -> None:
    """List tasks with their metrics."""
    from rich.table import Table

    from .registry import get_registry

    table = Table(title="tasks", title_justify="left")
    for col in ("task", "metrics", "description"):
        table.add_column(col)
    for name, task in sorted(get_registry().tasks.items()):
        table.add_row(name, ", ".join(task.metrics), task.description)
    _console().print(table)


def _print_entries(title: str, entries: dict) -> None:
    from rich.table import Table

    table = Table(title=title, title_justify="left")
    for col in (title.rstrip("s"), "plugin", "description"):
        table.add_column(col)
    for name, entry in sorted(entries.items()):
        table.add_row(name, entry.plugin, entry.description)
    _console().print(table)


@app.command()
def encoders() -> None:
    """List text encoders (for dense retrieval and two-stage semantic IDs)."""
    from .registry import get_registry

    _print_entries("encoders", get_registry().encoders)


@app.command()
def backbones() -> None:
    """List seq2seq backbones of the generative engine (a local checkpoint path also works)."""
    from .registry import get_registry

    _print_entries("backbones", get_registry().backbones)


@app.command()
def datasets(data_dir: DataDir = None) -> None:
    """List datasets and whether their files are present and valid."""
    from rich.table import Table

    from . import paths
    from .datasets import dataset_status
    from .registry import get_registry

    root = paths.data_dir(data_dir)
    table = Table(title=f"datasets (data dir: {root})", title_justify="left")
    for col in ("dataset", "status", "tasks", "description"):
        table.add_column(col)
    colours = {"ok": "green", "built-in": "green", "missing": "yellow", "invalid": "red"}
    for name, entry in sorted(get_registry().datasets.items()):
        status, message = dataset_status(entry, root)
        table.add_row(name, f"[{colours.get(status, 'white')}]{status}[/] {message}",
                      ", ".join(entry.tasks) or "all", entry.description)
    _console().print(table)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
