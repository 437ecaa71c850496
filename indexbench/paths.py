"""Where data, artifacts and results live, resolved once from flags and the environment."""

from __future__ import annotations

import os
from pathlib import Path


def _user_dir(kind: str) -> Path:
    import platformdirs

    if kind == "data":
        return Path(platformdirs.user_data_dir("indexbench"))
    return Path(platformdirs.user_cache_dir("indexbench"))


def data_dir(explicit: str | Path | None = None) -> Path:
    """``--data-dir``, else ``$INDEXBENCH_DATA``, else the per-user data directory."""
    if explicit:
        return Path(explicit).expanduser()
    if os.environ.get("INDEXBENCH_DATA"):
        return Path(os.environ["INDEXBENCH_DATA"]).expanduser()
    return _user_dir("data") / "datasets"


def cache_dir(explicit: str | Path | None = None) -> Path:
    """``--cache-dir``, else ``$INDEXBENCH_CACHE``, else the per-user cache directory."""
    if explicit:
        return Path(explicit).expanduser()
    if os.environ.get("INDEXBENCH_CACHE"):
        return Path(os.environ["INDEXBENCH_CACHE"]).expanduser()
    return _user_dir("cache") / "artifacts"


def results_path(explicit: str | Path | None = None) -> Path:
    """``--store``, else ``$INDEXBENCH_RESULTS``, else ``results.sqlite`` in the user data dir."""
    if explicit:
        return Path(explicit).expanduser()
    if os.environ.get("INDEXBENCH_RESULTS"):
        return Path(os.environ["INDEXBENCH_RESULTS"]).expanduser()
    return _user_dir("data") / "results.sqlite"
