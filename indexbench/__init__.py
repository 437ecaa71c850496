"""indexbench: compare semantic indexers and classic retrieval on the same tasks, data and metrics.

The public API is deliberately small and import-light (no torch at import time)::

    from indexbench import run_grid
    records = run_grid(indexers=["bm25"], tasks=["document-retrieval"], datasets=["scifact"])
"""

from __future__ import annotations

__version__ = "0.1.0"

from .errors import ConfigError, DataError, IndexbenchError, UnknownNameError
from .hookspecs import hookimpl

__all__ = ["ConfigError", "DataError", "IndexbenchError", "UnknownNameError", "hookimpl", "run_grid"]


def __getattr__(name: str):
    if name == "run_grid":
        from .runner import run_grid

        return run_grid
    raise AttributeError(name)
