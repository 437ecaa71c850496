"""The Python API: look up what the installed plugins provide, and evaluate a grid.

Everything here is re-exported from `indexbench`::

    import indexbench

    [entry.name for entry in indexbench.list_indexers()]       # bm25, dual-encoder, hc, ...
    bm25 = indexbench.get_indexer("bm25:k1=0.9")               # options checked, as on the CLI
    records = indexbench.evaluate(["bm25"], ["product-search"])  # writes nothing
    records[0].metrics["ndcg@5"]

`evaluate` is `indexbench run` without the files: it returns one `RunRecord` per cell and seed
and stores, caches and prints nothing unless asked. Names are looked up in the process-wide
registry (`indexbench.registry.get_registry`), which loads every installed plugin on first use.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .entries import BackboneEntry, DatasetEntry, EncoderEntry, IndexerEntry
from .registry import get_registry

if TYPE_CHECKING:  # pragma: no cover
    from .data import Dataset
    from .executors import Executor
    from .protocols import Progress, Task
    from .store import ResultStore, RunRecord


def list_indexers() -> list[IndexerEntry]:
    """Every registered indexer, by name."""
    return [entry for _, entry in sorted(get_registry().indexers.items())]


def list_tasks() -> list[Task]:
    """Every registered task, by name."""
    return [task for _, task in sorted(get_registry().tasks.items())]


def list_datasets() -> list[DatasetEntry]:
    """Every registered dataset, by name (whether its files are present or not)."""
    return [entry for _, entry in sorted(get_registry().datasets.items())]


def list_encoders() -> list[EncoderEntry]:
    """Every registered text encoder, by name."""
    return [entry for _, entry in sorted(get_registry().encoders.items())]


def list_backbones() -> list[BackboneEntry]:
    """Every registered seq2seq backbone, by name."""
    return [entry for _, entry in sorted(get_registry().backbones.items())]


def get_indexer(spec: str) -> Any:
    """A new indexer from ``name[:key=value...]``, its options converted and checked as
    ``--indexer`` does; `UnknownNameError` or `ConfigError` otherwise."""
    from .specs import IndexerSpec

    parsed = IndexerSpec.parse(spec)
    entry = get_registry().indexer(parsed.name)
    return entry.factory(parsed.build_config(entry))


def get_task(name: str) -> Task:
    """The registered task ``name``."""
    return get_registry().task(name)


def get_dataset(name: str, *, data_dir: str | Path | None = None) -> Dataset:
    """A loaded dataset: a registered name (``sample``, ``scifact``, with ``:key=value`` options)
    looked for under ``data_dir`` (default: ``$INDEXBENCH_DATA``, else the per-user data
    directory), or a dataset directory of a known format."""
    from .runner import check_dataset_argument, load_datasets

    registry = get_registry()
    check_dataset_argument(name, registry)
    (dataset,) = load_datasets([name], registry, data_dir)
    return dataset


def get_encoder(name: str, *, device: str = "cpu", precision: str = "auto") -> Any:
    """A new `indexbench.encoders.TextEncoder` of the registered encoder ``name``."""
    from .encoders import make_encoder

    return make_encoder(name, device=device, precision=precision)


def get_backbone(name: str, *, device: str = "cpu", seed: int = 0, decoder_layers: int | None = None) -> Any:
    """A new `indexbench.generative.backbones.Seq2SeqBackbone`: a registered backbone by name,
    else a local checkpoint directory."""
    from .generative.backbones import load_backbone

    return load_backbone(name, device=device, seed=seed, decoder_layers=decoder_layers)


def evaluate(
    indexers: str | Sequence[str],
    tasks: str | Sequence[str],
    datasets: str | Sequence[str] = ("sample",),
    *,
    seeds: int | Sequence[int] = 0,
    data_dir: str | Path | None = None,
    store: str | Path | ResultStore | None = None,
    cache_dir: str | Path | None = None,
    device: str = "auto",
    threads: int | None = None,
    progress: Progress | None = None,
    executor: Executor | None = None,
    resume: bool = False,
) -> list[RunRecord]:
    """Run every indexer x task x dataset cell at every seed and return one record per cell and
    seed, in plan order (indexers fastest, then tasks, datasets, seeds).

    Writes nothing unless asked: ``store`` (a path or `ResultStore`) also files the records
    there, as ``indexbench run`` does with the default store; ``cache_dir`` keeps trained
    artifacts between calls -- without it they live in a temporary directory for this call only
    (cells of one call still share them, e.g. one trained indexer for several tasks).
    ``threads`` pins torch's threads in every cell; ``progress`` (an `indexbench.protocols.Progress`)
    receives bars and messages; ``executor`` runs the cells elsewhere (`indexbench.ray_executor`);
    ``resume`` reuses the matching records of ``store``. Bad input raises before any cell runs.
    """
    from .runner import run_grid

    def names(value: str | Sequence[str]) -> list[str]:
        return [value] if isinstance(value, str) else list(value)

    options = dict(data_dir=data_dir, store=False if store is None else store, seed=seeds, device=device,
                   threads=threads, progress=progress, executor=executor, resume=resume)
    if cache_dir is not None:
        return list(run_grid(names(indexers), names(tasks), names(datasets), cache_dir=cache_dir, **options))
    with tempfile.TemporaryDirectory(prefix="indexbench-cache-") as temporary:
        return list(run_grid(names(indexers), names(tasks), names(datasets), cache_dir=temporary, **options))


__all__ = [
    "evaluate", "get_backbone", "get_dataset", "get_encoder", "get_indexer", "get_task", "list_backbones",
    "list_datasets", "list_encoders", "list_indexers", "list_tasks",
]
