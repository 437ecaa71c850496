"""Grid expansion and execution: the library call the CLI is a thin layer over.

Everything that can be wrong with the input (an unknown name, a bad option, a missing or
malformed data file) is checked before the first cell runs, so bad input fails fast and leaves
no record behind. After that each cell runs in turn; a cell that crashes is recorded as an error
with its message and the grid carries on.
"""

from __future__ import annotations

import dataclasses
import os
import platform
import random
import subprocess
import sys
import time
import traceback
import uuid
from collections.abc import Sequence
from datetime import datetime, timezone
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from . import distributed, paths
from .cache import ArtifactCache
from .data import Dataset, fingerprint_of
from .errors import ConfigError, DataError, IndexbenchError
from .executors import Executor, LocalExecutor
from .protocols import Progress, RunContext, SilentProgress
from .registry import DatasetSpec, IndexerEntry, IndexerSpec, Registry, get_registry
from .store import ResultStore, RunRecord

_TRACKED_PACKAGES = ("indexbench", "torch", "transformers", "faiss-cpu", "bm25s", "ir-measures",
                     "scikit-learn", "numpy")


@dataclasses.dataclass
class Cell:
    spec: IndexerSpec
    entry: IndexerEntry
    config: Any
    task: Any
    dataset: Dataset
    plugin_builtin: bool = True
    plugin_version: str = ""  # the distribution's version ("" for a plugin passed in code)


def resolve_device(device: str) -> str:
    if device not in {"auto", "cpu", "cuda"}:
        raise IndexbenchError(f"unknown device {device!r}; valid devices: auto, cpu, cuda")
    if device == "cpu":
        return "cpu"
    import importlib.util

    has_cuda = False
    if importlib.util.find_spec("torch") is not None:
        import torch

        has_cuda = torch.cuda.is_available()
    if device == "cuda" and not has_cuda:
        raise IndexbenchError("--device cuda was asked for, but torch sees no CUDA device")
    return "cuda" if has_cuda else "cpu"


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
            raise DataError(path, "is a file; --dataset takes a dataset name or a dataset directory")
        if any(sep in name for sep in ("/", os.sep)) or name.startswith((".", "~")):
            raise DataError(path, "no such directory (--dataset takes a dataset name or a dataset directory)")
    check_dataset(name, registry)


def check_seed(seed: int) -> None:
    """numpy's and torch's generators take seeds in [0, 2**32): refuse others before any work."""
    if not isinstance(seed, int) or not 0 <= seed < 2**32:
        raise ConfigError(f"--seed must be an integer in [0, 4294967295], got {seed!r}")


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
    if not indexers:
        raise IndexbenchError("no indexer given; valid indexers: " + ", ".join(sorted(registry.indexers)))
    if not tasks:
        raise IndexbenchError("no task given; valid tasks: " + ", ".join(sorted(registry.tasks)))
    # Names and options first: they are cheap to check and the commonest mistake.
    plan_grid(indexers, tasks, [], registry)
    seeds = [seed] if isinstance(seed, int) else list(dict.fromkeys(seed))
    if not seeds:
        raise ConfigError("no seed given")
    for one in seeds:
        check_seed(one)
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
        raise ConfigError(f"--threads must be an integer >= 1, got {threads!r}")
    if resume and store is False:
        raise ConfigError("--resume reads finished cells from the results store; it needs one")
    for name in datasets:
        check_dataset_argument(name, registry)
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
        loaded = load_datasets(datasets, registry, data_dir)
        cells = plan_grid(indexers, tasks, loaded, registry)
        cache = ArtifactCache(paths.cache_dir(cache_dir)) if use_cache else ArtifactCache.disabled()
        for stale in cache.remove_stale():
            progress.log(f"[dim]removed {stale}, a temporary artifact its (killed) writer left behind[/]")
        versions = package_versions()
        provenance = {"versions": versions, "git_commit": git_commit(), "device": device}
        plan = [(cell, one) for one in seeds for cell in cells]
        done: dict[int, RunRecord] = {}
        if resume:
            finished = [r for r in store.records() if r.status in REUSABLE_STATUSES]
            for i, (cell, one) in enumerate(plan):
                match = next((r for r in reversed(finished) if reusable(r, cell, one, versions, threads)), None)
                if match is not None:
                    done[i] = match
        # A resumed grid continues the grid its finished cells came from (the latest of them).
        grid_id = done[max(done)].grid_id if done else uuid.uuid4().hex[:12]

        records = GridRecords()
        records.reused = len(done)
        jobs = [CellJob(i, cell, one, cache, grid_id=grid_id, threads=threads, **provenance)
                for i, (cell, one) in enumerate(plan) if i not in done]
        finished: dict[int, RunRecord] = dict(done)

        def keep(job: CellJob, record: RunRecord) -> None:
            finished[job.index] = record
            if distributed.world_size() > 1:
                record.details["data_parallel_processes"] = distributed.world_size()
            if not writes_records:
                return
            if store is not False and (kept := store.add(record)) is not None:
                progress.log(f"[red]could not store the record in {store.path} ({store.recovery_problem}); "
                             f"kept in {kept} -- `indexbench import {kept}` adds it later[/]")
            progress.log(_summary(record))

        with progress.task(f"grid: {len(plan)} cells", total=len(plan)) as grid_bar:
            for i, (cell, one) in enumerate(plan):
                if i in done:
                    progress.log(f"[dim]= {cell.spec.label} × {cell.task.name} × {cell.dataset.name}"
                                 f"{f' (seed {one})' if len(seeds) > 1 else ''}: finished before, reused[/]")
                    grid_bar.advance()
            executor.run(jobs, keep=keep, progress=progress, grid_bar=grid_bar, show_seed=len(seeds) > 1)
        records.extend(finished[i] for i in sorted(finished))
        return records
    finally:
        executor.close()  # a Ray cluster it started stops, even on bad input or Ctrl-C


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
            and record.versions.get(plugin) == _plugin_version(cell.entry)
            and (threads is None or record.versions.get("threads", str(threads)) == str(threads)))


@dataclasses.dataclass
class CellJob:
    """One cell at one seed, with everything needed to run it in this process or another one
    (it pickles: a Ray worker receives it whole)."""

    index: int  # its place in the grid's plan
    cell: Cell
    seed: int
    cache: ArtifactCache
    device: str
    versions: dict[str, str]
    git_commit: str
    grid_id: str
    threads: int | None = None

    @property
    def label(self) -> str:
        return f"{self.cell.spec.label} × {self.cell.task.name} × {self.cell.dataset.name}"

    def new_record(self) -> RunRecord:
        """The record before the cell runs: identity and provenance, status ok, no results."""
        return new_record(self.cell, seed=self.seed, device=self.device, versions=self.versions,
                          git_commit=self.git_commit, grid_id=self.grid_id)

    def run(self, progress: Progress) -> RunRecord:
        return run_cell(self.cell, cache=self.cache, progress=progress, seed=self.seed, device=self.device,
                        versions=self.versions, git_commit=self.git_commit, grid_id=self.grid_id,
                        threads=self.threads)


def new_record(cell: Cell, *, seed: int, device: str, versions: dict[str, str], git_commit: str,
               grid_id: str) -> RunRecord:
    config = dataclasses.asdict(cell.config)
    return RunRecord(
        indexer=cell.spec.label, task=cell.task.name, dataset=cell.dataset.name, status="ok",
        seed=seed, device=device,
        config={"indexer": cell.entry.name, "options": config,
                "plugin": {"name": cell.entry.plugin, "version": cell.plugin_version or _plugin_version(cell.entry),
                           "builtin": cell.plugin_builtin}},
        config_hash=fingerprint_of([cell.entry.name, config, cell.task.name, seed]),
        dataset_fingerprint=cell.dataset.fingerprint,
        versions={**versions, f"plugin:{cell.entry.plugin}": _plugin_version(cell.entry)},
        git_commit=git_commit, grid_id=grid_id,
        started_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
    )


def run_cell(cell: Cell, *, cache: ArtifactCache, progress: Progress, seed: int, device: str,
             versions: dict[str, str], git_commit: str, grid_id: str, threads: int | None = None) -> RunRecord:
    record = new_record(cell, seed=seed, device=device, versions=versions, git_commit=git_commit,
                        grid_id=grid_id)
    started = time.perf_counter()
    if threads is not None:
        pin_threads(threads)
    try:
        indexer = cell.entry.factory(cell.config)
        reason = cell.task.skip_reason(indexer, cell.dataset)
        if reason:
            record.status, record.reason = "skipped", reason
        else:
            seed_everything(seed)
            ctx = RunContext(seed=seed, device=device, cache=cache, progress=progress,
                             dataset_name=cell.dataset.name, task_name=cell.task.name)
            result = cell.task.evaluate(indexer, cell.dataset, ctx)
            record.metrics = {k: float(v) for k, v in result.metrics.items()}
            record.timings = dict(result.timings)
            record.details = dict(result.details)
            record.per_query = {q: dict(v) for q, v in result.per_query.items()}
            record.rankings = {q: [[d, s] for d, s in r] for q, r in result.rankings.items()}
            record.qrels = {q: dict(j) for q, j in result.qrels.items()}
    except KeyboardInterrupt:
        raise
    except Exception as exc:  # a crashing cell is a result to report, not the end of the grid
        record.status = "error"
        record.reason = str(exc) if isinstance(exc, IndexbenchError) else f"{type(exc).__name__}: {exc}"
        record.details = {"traceback": traceback.format_exc()}
    record.duration_s = time.perf_counter() - started
    if (count := torch_threads()) is not None:
        record.versions["threads"] = str(count)
    return record


THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")


def pin_threads(threads: int) -> None:
    """Run torch (and the OpenMP and MKL runtimes it loads) with ``threads`` intra-op threads,
    whatever the machine's core count or ``OMP_NUM_THREADS``: sums split over another number of
    threads round differently, and a trained cell amplifies that into other numbers. The setting
    holds for the rest of the process (torch has one thread pool), and the environment
    variables pass it on to child processes."""
    for name in THREAD_VARIABLES:  # for a torch not imported yet, and for child processes
        os.environ[name] = str(threads)
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(threads)


def torch_threads() -> int | None:
    """torch's intra-op thread count, or None when no cell has imported torch (it then did not
    compute anything)."""
    if "torch" not in sys.modules:
        return None
    return int(sys.modules["torch"].get_num_threads())


def seed_everything(seed: int) -> None:
    random.seed(seed)
    try:
        import numpy as np

        np.random.seed(seed)
    except ImportError:
        pass
    if "torch" in sys.modules:  # seed torch only if a plugin already paid for importing it
        sys.modules["torch"].manual_seed(seed)


def package_versions() -> dict[str, str]:
    found = {"python": platform.python_version(), "cpu": cpu_isa()}
    for name in _TRACKED_PACKAGES:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            pass
    return found


def cpu_isa() -> str:
    """The machine and the widest vector instructions its CPU offers (``x86_64 avx512``): the
    float kernels of torch, MKL and oneDNN pick their code path by it, and a trained cell's
    numbers at one seed differ between paths (a tiny rq-VAE's codes moved between an AVX2 and
    an AVX-512 machine), so records carry it and `compare` names it when it differs."""
    machine = platform.machine() or "unknown"
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            flags = next((line.split(":", 1)[1].split() for line in fh if line.startswith("flags")), [])
    except OSError:  # not Linux: the machine name alone
        return machine
    for level, flag in (("avx512", "avx512f"), ("avx2", "avx2"), ("avx", "avx"), ("sse4.2", "sse4_2")):
        if flag in flags:
            return f"{machine} {level}"
    return machine


def _plugin_version(entry: IndexerEntry) -> str:
    module = sys.modules.get(entry.factory.__module__)
    return str(getattr(module, "__version__", ""))


def git_commit() -> str:
    """The commit of the indexbench checkout, with ``+dirty`` for uncommitted changes."""
    here = Path(__file__).resolve().parent
    try:
        def git(*args: str) -> str:
            return subprocess.run(["git", "-C", str(here), *args], capture_output=True, text=True,
                                  timeout=5, check=True, env={**os.environ, "GIT_OPTIONAL_LOCKS": "0"}
                                  ).stdout.strip()

        commit = git("rev-parse", "HEAD")
        return commit + ("+dirty" if git("status", "--porcelain", "--untracked-files=no") else "")
    except (OSError, subprocess.SubprocessError):
        return ""


def _summary(record: RunRecord) -> str:
    from rich.markup import escape  # labels and reasons are text, not markup

    head = escape(f"{record.indexer} × {record.task} × {record.dataset}")
    if record.status == "ok":
        shown = ", ".join(f"{k}={v:.4f}" for k, v in list(record.metrics.items())[:4])
        return f"[green]✓[/] {head}: {shown} ({record.duration_s:.1f}s)"
    if record.status == "skipped":
        return f"[yellow]–[/] {head}: skipped ({escape(record.reason)})"
    return f"[red]✗[/] {head}: error ({escape(record.reason)})"
