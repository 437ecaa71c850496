"""The unit of work both executors run: one cell (indexer x task x dataset) at one seed, and the
record it produces. A crashing cell is a record with status ``error``, never an exception."""

from __future__ import annotations

import dataclasses
import sys
import time
import traceback
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

from .cache import ArtifactCache
from .data import Dataset, fingerprint_of
from .entries import IndexerEntry
from .environment import kernel_levels, pin_threads, seed_everything, torch_threads
from .errors import IndexbenchError
from .protocols import Progress, RunContext
from .specs import IndexerSpec
from .store import RunRecord


@dataclasses.dataclass
class Cell:
    spec: IndexerSpec
    entry: IndexerEntry
    config: Any
    task: Any
    dataset: Dataset
    plugin_builtin: bool = True
    plugin_version: str = ""  # the distribution's version ("" for a plugin passed in code)


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
                "plugin": {"name": cell.entry.plugin, "version": cell.plugin_version or plugin_version(cell.entry),
                           "builtin": cell.plugin_builtin}},
        config_hash=fingerprint_of([cell.entry.name, config, cell.task.name, seed]),
        dataset_fingerprint=cell.dataset.fingerprint,
        versions={**versions, f"plugin:{cell.entry.plugin}": plugin_version(cell.entry)},
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
    if cell.dataset.identity:  # which public split the numbers are on (or how it differs)
        record.details["dataset_identity"] = dict(cell.dataset.identity)
    record.duration_s = time.perf_counter() - started
    if (count := torch_threads()) is not None:
        record.versions["threads"] = str(count)
    record.versions.update(kernel_levels())
    return record


def plugin_version(entry: IndexerEntry) -> str:
    module = sys.modules.get(entry.factory.__module__)
    return str(getattr(module, "__version__", ""))



Keep = Callable[[CellJob, RunRecord], None]
"""What an executor calls with each finished cell's record (`run_grid` stores it)."""


@dataclasses.dataclass
class CellResources:
    """What one cell asks a scheduler for; None means "derive it from the cell"."""

    cpus: float | None = None
    gpus: float | None = None

    def for_cell(self, job: CellJob) -> dict[str, Any]:
        """One CPU; one GPU when the cells run on cuda and the indexer uses the device (its
        `IndexerEntry.uses_device`); either overridden by the user's figure."""
        uses_gpu = job.device == "cuda" and job.cell.entry.uses_device
        return {"num_cpus": 1.0 if self.cpus is None else self.cpus,
                "num_gpus": (1.0 if uses_gpu else 0.0) if self.gpus is None else self.gpus}


__all__ = ["Cell", "CellJob", "CellResources", "Keep", "new_record", "plugin_version", "run_cell"]
