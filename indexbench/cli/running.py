"""`indexbench run` and `indexbench baseline`: grids of cells, thin over `indexbench.runner`."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from .app import (
    DataDir,
    StorePath,
    app,
    console,
    friendly_errors,
    headlines,
    parse_seeds,
    sigterm_unwinds,
    split_names,
    write_atomic,
)

if TYPE_CHECKING:  # pragma: no cover
    from ..gridfile import Grid

@dataclass
class RunPlan:
    """What one `indexbench run` runs: a grid file's cells (if any) with the flags over them."""

    indexers: list[str]
    tasks: list[str]
    datasets: list[str]
    seeds: list[int]
    data_dir: Path | None
    device: str
    threads: int | None
    grid: Grid | None = None
    from_grid: dict[str, str] = field(default_factory=dict)
    """kind -> the grid key whose list is used as written (so a bad name there is the file's)."""

    @classmethod
    def merge(cls, grid: Grid | None, *, indexer: list[str] | None, task: list[str] | None,
              dataset: list[str] | None, seed: int | None, seeds: str | None, data_dir: Path | None,
              device: str | None, threads: int | None) -> RunPlan:
        """Each flag given wins over the grid file's value; what neither gives takes its default."""
        from ..errors import ConfigError
        from ..registry import get_registry

        indexers = split_names(indexer) or (grid.indexers if grid else [])
        if not indexers:
            raise ConfigError("no indexer given: pass --indexer NAME[,NAME...] or --grid FILE")
        if seed is not None and seeds is not None:
            raise ConfigError("give --seed or --seeds, not both")
        if seeds is not None:
            seed_list = parse_seeds(seeds)
        else:
            seed_list = [seed] if seed is not None else (grid.seeds if grid else [0])
        from_grid = {}
        if grid:
            flags = {"indexer": indexer, "task": task, "dataset": dataset}
            from_grid = {kind: key for kind, key in (("indexer", "indexers"), ("task", "tasks"), ("dataset", "datasets"))
                         if not split_names(flags[kind]) and not (kind == "task" and not grid.tasks)}
        return cls(
            indexers=indexers,
            tasks=split_names(task) or (grid.tasks if grid and grid.tasks else sorted(get_registry().tasks)),
            datasets=split_names(dataset) or (grid.datasets if grid else ["sample"]),
            seeds=seed_list,
            data_dir=data_dir or (grid.data_dir if grid else None),
            device=device or (grid.device if grid and grid.device else "auto"),
            threads=threads if threads is not None else (grid.threads if grid else None),
            grid=grid, from_grid=from_grid,
        )


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
    from .. import paths
    from ..console import RichProgress
    from ..errors import ConfigError, IndexbenchError, UnknownNameError
    from ..executors import make_executor
    from ..gridfile import load_grid
    from ..leaderboard import build_tables, render_json, render_rich
    from ..runner import run_grid
    from ..store import ResultStore

    plan = RunPlan.merge(load_grid(grid) if grid is not None else None, indexer=indexer, task=task, dataset=dataset,
                         seed=seed, seeds=seeds, data_dir=data_dir, device=device, threads=threads)
    if json_path is not None:
        paths.check_writable_file(json_path, "--json")
    results = ResultStore(paths.results_path(store))
    runner = make_executor(executor, ray_address=ray_address, max_parallel=max_parallel,
                           cell_cpus=cell_cpus, cell_gpus=cell_gpus)
    try:
        with sigterm_unwinds(), RichProgress(enabled=not quiet) as progress:
            records = run_grid(
                plan.indexers, plan.tasks, plan.datasets, data_dir=plan.data_dir, cache_dir=cache_dir,
                use_cache=not no_cache, store=results, seed=plan.seeds, device=plan.device, progress=progress,
                resume=resume, executor=runner, threads=plan.threads,
            )
    except UnknownNameError as exc:
        if exc.kind in plan.from_grid:
            raise ConfigError(f"{plan.grid.path}: {plan.from_grid[exc.kind]!r}: {exc}") from None
        raise
    except KeyboardInterrupt:
        console(stderr=True).print(
            f"[bold red]interrupted:[/] the cells that finished are in {results.path}; those running or "
            "queued were dropped (their finished artifacts stay cached; --resume goes on from here)", soft_wrap=True)
        raise typer.Exit(130) from None
    from .. import distributed

    if not distributed.is_main():  # under torchrun the main process alone reports and writes
        return
    render_rich(build_tables(records, headlines()), console())
    err = console(stderr=True)
    written = ""
    if json_path is not None:
        try:
            write_atomic(json_path, render_json(records))
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

    from .. import paths
    from ..console import RichProgress
    from ..gridfile import load_grid
    from ..leaderboard import build_tables, render_json, render_rich
    from ..registry import get_registry
    from ..runner import run_grid
    from ..store import ResultStore

    plan = load_grid(grid)
    seed_list = parse_seeds(seeds) if seeds is not None else (plan.baseline_seeds or plan.seeds)
    paths.check_writable_file(out, "--out")
    work = Path(tempfile.mkdtemp(prefix="indexbench-baseline-"))
    try:
        with sigterm_unwinds(), RichProgress(enabled=not quiet) as progress:
            records = run_grid(
                plan.indexers, plan.tasks or sorted(get_registry().tasks), plan.datasets,
                data_dir=data_dir or plan.data_dir, cache_dir=cache_dir or work / "cache",
                store=ResultStore(work / "results.sqlite"), seed=seed_list, device=plan.device or "auto",
                progress=progress, threads=plan.threads)
        render_rich(build_tables(records, headlines()), console())
        failed = [r for r in records if r.status == "error"]
        if failed:
            console(stderr=True).print(
                f"[bold red]error:[/] {len(failed)} cell(s) failed ({failed[0].indexer} × {failed[0].task}: "
                f"{failed[0].reason}); {out} was not written", soft_wrap=True)
            raise typer.Exit(1)
        write_atomic(out, render_json(records))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    console(stderr=True).print(f"[dim]{len(records)} records ({len(seed_list)} seed(s) a cell) written to {out}[/]")
