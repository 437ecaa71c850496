"""Grid expansion and execution: the library call the CLI is a thin layer over. What one cell
does is `indexbench.cells`; who runs the cells, `indexbench.executors`.

Everything that can be wrong with the input (an unknown name, a bad option, a missing or
malformed data file) is checked before the first cell runs, so bad input fails fast and leaves
no record behind. After that each cell runs in turn; a cell that crashes is recorded as an error
with its message and the grid carries on.
"""

from __future__ import annotations

import dataclasses
import os
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from . import distributed, paths
from .cache import ArtifactCache
from .cells import Cell, CellJob, plugin_version
from .data import Dataset, fingerprint_of
from .entries import IndexerEntry
from .environment import git_commit, package_versions
from .errors import ConfigError, DataError, IndexbenchError
from .executors import Executor, LocalExecutor
from .protocols import Progress, SilentProgress
from .registry import Registry, get_registry
from .specs import DatasetSpec, IndexerSpec
from .store import ResultStore, RunRecord


def load_datasets(names: Sequence[str], registry: Registry, data_dir: str | Path | None) -> list[Dataset]:
    """Load every dataset named (a registered name, or a path to a dataset directory)."""
    from .datasets import load_dataset, load_path

    loaded = []
    for name in names:
        if _names_a_directory(name, registry):
            loaded.append(load_path(Path(name).expanduser()))
        else:
            spec, entry, config = check_dataset(name, registry)
            loaded.append(load_dataset(entry, paths.data_dir(data_dir), config, label=spec.label))
    return loaded


def _names_a_directory(name: str, registry: Registry) -> bool:
    """Whether ``--dataset NAME`` means a dataset directory rather than a registered name."""
    return DatasetSpec.parse(name).name not in registry.datasets and Path(name).expanduser().is_dir()


def check_dataset_argument(name: str, registry: Registry) -> None:
    """Refuse a ``--dataset`` value that is neither a registered name nor a dataset directory,
    saying which: a path that does not exist or is a file is reported as such, not as an unknown
    name."""
    if _names_a_directory(name, registry):
        return
    path = Path(name).expanduser()
    if DatasetSpec.parse(name).name not in registry.datasets:
        if path.is_file():
            raise DataError(path, "is a file; a dataset is a registered name or a dataset directory")
        if any(sep in name for sep in ("/", os.sep)) or name.startswith((".", "~")):
            raise DataError(path, "no such directory (a dataset is a registered name or a dataset directory)")
    check_dataset(name, registry)


def check_seed(seed: int) -> None:
    """numpy's and torch's generators take seeds in [0, 2**32): refuse others before any work."""
    if not isinstance(seed, int) or not 0 <= seed < 2**32:
        raise ConfigError(f"seed must be an integer in [0, 4294967295], got {seed!r}")


def check_dataset(name: str, registry: Registry):
    """(spec, entry, options) of a registered dataset named ``name[:key=value...]``; a clear
    error for an unknown name or option."""
    spec = DatasetSpec.parse(name)
    entry = registry.dataset(spec.name)
    return spec, entry, spec.build_config(entry)


def plan_grid(
    indexers: Sequence[str | IndexerSpec],
    tasks: Sequence[str],
    datasets: Sequence[Dataset],
    registry: Registry,
) -> list[Cell]:
    specs = [s if isinstance(s, IndexerSpec) else IndexerSpec.parse(s) for s in indexers]
    entries = [(spec, registry.indexer(spec.name)) for spec in specs]
    configured = [(spec, entry, spec.build_config(entry)) for spec, entry in entries]
    task_objs = [registry.task(name) for name in tasks]
    def plugin_of(entry: IndexerEntry) -> dict[str, Any]:
        info = registry.plugin(entry.plugin)
        return {"plugin_builtin": info is None or info.builtin, "plugin_version": info.version if info else ""}

    return [
        Cell(spec, entry, config, task, dataset, **plugin_of(entry))
        for dataset in datasets
        for task in task_objs
        for spec, entry, config in configured
    ]


def run_grid(
    indexers: Sequence[str | IndexerSpec],
    tasks: Sequence[str],
    datasets: Sequence[str] = ("sample",),
    *,
    data_dir: str | Path | None = None,
    cache_dir: str | Path | None = None,
    use_cache: bool = True,
    store: ResultStore | str | Path | None = None,
    seed: int | Sequence[int] = 0,
    device: str = "auto",
    progress: Progress | None = None,
    registry: Registry | None = None,
    resume: bool = False,
    executor: Executor | None = None,
    threads: int | None = None,
) -> list[RunRecord]:
    """Run every indexer × task × dataset cell, once per seed, and return (and store) one
    record per cell and seed.

    ``store=None`` writes to the default results store; pass a path or a `ResultStore` to choose
    another, or ``False`` to store nothing. ``resume`` reuses every ``ok`` or ``skipped`` record of the store
    whose cell matches (`reusable`) instead of running it again, and files the new records under
    the grid those came from, so a killed grid, resumed, has each cell once.

    ``executor`` runs the cells: one after another in this process by default (`LocalExecutor`),
    or as tasks of a Ray cluster (`indexbench.ray_executor.RayExecutor`). Records are stored as
    each cell finishes, whichever the executor; the returned list is in plan order.

    ``threads`` pins torch's intra-op threads in every cell (`pin_threads`); by default a cell
    runs with whatever the process has (torch: one per core, or ``OMP_NUM_THREADS``). A trained
    model's numbers depend on it, so every record says what it ran with (``versions["threads"]``).
    """
    registry = registry or get_registry()
    progress = progress or SilentProgress()
    seeds = check_grid(indexers, tasks, datasets, registry, seed=seed, threads=threads, resume=resume,
                       stores=store is not False)
    executor = executor or LocalExecutor()
    try:
        device = executor.resolve_device(device)
        # Launched by torchrun / accelerate: every process runs the grid in lockstep, the
        # trainers shard their batches, and only the main process writes records.
        writes_records = not (distributed.init_from_environment(device) and not distributed.is_main())
        if not writes_records:
            progress = SilentProgress()
        if store is not False:  # before any work: a store that cannot take records would lose them
            store = store if isinstance(store, ResultStore) else ResultStore(paths.results_path(store))
            store.check()
        if use_cache:
            paths.check_directory(paths.cache_dir(cache_dir), "the artifact cache")
        cells = plan_grid(indexers, tasks, load_datasets(datasets, registry, data_dir), registry)
        cache = _open_cache(cache_dir, use_cache, progress)  # only now: bad data leaves no directory behind
        versions = package_versions()
        plan = [(cell, one) for one in seeds for cell in cells]
        done = _finished_before(plan, store, versions, threads) if resume else {}
        # A resumed grid continues the grid its finished cells came from (the latest of them).
        grid_id = done[max(done)].grid_id if done else uuid.uuid4().hex[:12]
        provenance = {"versions": versions, "git_commit": git_commit(), "device": device}
        jobs = [CellJob(i, cell, one, cache, grid_id=grid_id, threads=threads, **provenance)
                for i, (cell, one) in enumerate(plan) if i not in done]
        finished: dict[int, RunRecord] = dict(done)

        def keep(job: CellJob, record: RunRecord) -> None:
            finished[job.index] = record
            if distributed.world_size() > 1:
                record.details["data_parallel_processes"] = distributed.world_size()
            if writes_records:
                _file(record, store if store is not False else None, progress)

        with progress.task(f"grid: {len(plan)} cells", total=len(plan)) as grid_bar:
            for i in sorted(done):
                cell, one = plan[i]
                progress.log(f"= {_cell_name(cell, one, len(seeds) > 1)}: finished before, reused", "detail")
                grid_bar.advance()
            executor.run(jobs, keep=keep, progress=progress, grid_bar=grid_bar, show_seed=len(seeds) > 1)
        records = GridRecords(finished[i] for i in sorted(finished))
        records.reused = len(done)
        return records
    finally:
        executor.close()  # a Ray cluster it started stops, even on bad input or Ctrl-C


def check_grid(indexers: Sequence[str | IndexerSpec], tasks: Sequence[str], datasets: Sequence[str],
               registry: Registry, *, seed: int | Sequence[int], threads: int | None, resume: bool,
               stores: bool) -> list[int]:
    """Everything about a grid's arguments that can be checked before any work: names and
    options first (cheap, and the commonest mistake), then seeds, threads and dataset arguments.
    Returns the seeds, de-duplicated in order."""
    if not indexers:
        raise IndexbenchError("no indexer given; valid indexers: " + ", ".join(sorted(registry.indexers)))
    if not tasks:
        raise IndexbenchError("no task given; valid tasks: " + ", ".join(sorted(registry.tasks)))
    plan_grid(indexers, tasks, [], registry)
    seeds = [seed] if isinstance(seed, int) else list(dict.fromkeys(seed))
    if not seeds:
        raise ConfigError("no seed given")
    for one in seeds:
        check_seed(one)
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
        raise ConfigError(f"threads must be an integer >= 1, got {threads!r}")
    if resume and not stores:
        raise ConfigError("resume reads finished cells from the results store; it needs one")
    for name in datasets:
        check_dataset_argument(name, registry)
    return seeds


def _open_cache(cache_dir: str | Path | None, use_cache: bool, progress: Progress) -> ArtifactCache:
    if not use_cache:
        return ArtifactCache.disabled()
    cache = ArtifactCache(paths.cache_dir(cache_dir))
    for stale in cache.remove_stale():
        progress.log(f"removed {stale}, a temporary artifact its (killed) writer left behind", "detail")
    return cache


def _finished_before(plan: Sequence[tuple[Cell, int]], store: ResultStore, versions: dict[str, str],
                     threads: int | None) -> dict[int, RunRecord]:
    """The stored record each step of the plan can reuse, by plan index (the latest match)."""
    finished = [r for r in store.records() if r.status in REUSABLE_STATUSES]
    done = {}
    for i, (cell, one) in enumerate(plan):
        match = next((r for r in reversed(finished) if reusable(r, cell, one, versions, threads)), None)
        if match is not None:
            done[i] = match
    return done


def _file(record: RunRecord, store: ResultStore | None, progress: Progress) -> None:
    """Store a finished cell's record and report it."""
    if store is not None and (kept := store.add(record)) is not None:
        progress.log(f"could not store the record in {store.path} ({store.recovery_problem}); "
                     f"kept in {kept} -- `indexbench import {kept}` adds it later", "warning")
    progress.log(*_summary(record))


class GridRecords(list):
    """`run_grid`'s records, in plan order; ``reused`` of them came from the store (``resume``)."""

    reused = 0


REUSABLE_STATUSES = ("ok", "skipped")
"""What ``resume`` takes from the store: results, and skips (a skip follows from the indexer's
kind and the dataset's content, both part of the match, so running the cell again would only
file the same skip once more). Errors always run again."""


def reusable(record: RunRecord, cell: Cell, seed: int, versions: dict[str, str],
             threads: int | None = None) -> bool:
    """Whether a stored ``ok`` or ``skipped`` record is this cell's result: same indexer and
    options, task, dataset (label and content fingerprint), seed, and the same indexbench and
    plugin versions; with ``threads`` pinned, also run at that thread count (a record whose cell
    never loaded torch has none, and any count gives it)."""
    plugin = f"plugin:{cell.entry.plugin}"
    config_hash = fingerprint_of([cell.entry.name, dataclasses.asdict(cell.config), cell.task.name, seed])
    return (record.status in REUSABLE_STATUSES and record.indexer == cell.spec.label and record.task == cell.task.name
            and record.dataset == cell.dataset.name and int(record.seed) == seed
            and record.dataset_fingerprint == cell.dataset.fingerprint and record.config_hash == config_hash
            and record.versions.get("indexbench") == versions.get("indexbench")
            and record.versions.get(plugin) == plugin_version(cell.entry)
            and (threads is None or record.versions.get("threads", str(threads)) == str(threads)))


def _cell_name(cell: Cell, seed: int, show_seed: bool) -> str:
    return f"{cell.spec.label} × {cell.task.name} × {cell.dataset.name}" + (f" (seed {seed})" if show_seed else "")


def _summary(record: RunRecord) -> tuple[str, str]:
    """A finished cell's one-line report and its log level."""
    head = f"{record.indexer} × {record.task} × {record.dataset}"
    if record.status == "ok":
        shown = ", ".join(f"{k}={v:.4f}" for k, v in list(record.metrics.items())[:4])
        return f"{head}: {shown} ({record.duration_s:.1f}s)", "ok"
    if record.status == "skipped":
        return f"{head}: skipped ({record.reason})", "skipped"
    return f"{head}: error ({record.reason})", "error"
