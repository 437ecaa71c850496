"""indexbench: compare semantic indexers and classic retrieval on the same tasks, data and metrics.

The public API, import-light (no torch at import time)::

    import indexbench
    records = indexbench.evaluate(["bm25", "dual-encoder"], ["product-search"], ["sample"])
    indexbench.list_indexers(), indexbench.get_indexer("bm25:k1=0.9"), indexbench.get_task("id-quality")

Plugins import from here too: `hookimpl` and the entry types they register (`IndexerEntry`, ...).
`indexbench.api` documents the functions, `indexbench.hookspecs` the hooks.
"""

from __future__ import annotations

__version__ = "0.1.0"

from .entries import BackboneEntry, DatasetEntry, EncoderEntry, IndexerEntry, NoOptions
from .errors import ConfigError, DataError, IndexbenchError, UnknownNameError
from .hookspecs import hookimpl
from .options import option

_API = ("evaluate", "get_backbone", "get_dataset", "get_encoder", "get_indexer", "get_task", "list_backbones",
        "list_datasets", "list_encoders", "list_indexers", "list_tasks")

__all__ = [
    "BackboneEntry", "ConfigError", "DataError", "DatasetEntry", "EncoderEntry", "IndexbenchError", "IndexerEntry",
    "NoOptions", "UnknownNameError", "hookimpl", "option", "run_grid", *_API,
]


def __getattr__(name: str):
    # Loaded on first use: the registry (and through it every plugin) stays unloaded until asked for.
    if name in _API:
        from . import api

        return getattr(api, name)
    if name == "run_grid":
        from .runner import run_grid

        return run_grid
    raise AttributeError(name)
