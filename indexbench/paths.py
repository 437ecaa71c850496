"""Where data, artifacts and results live, resolved once from flags and the environment."""

from __future__ import annotations

import os
from pathlib import Path


def _user_dir(kind: str) -> Path:
    import platformdirs

    if kind == "data":
        return Path(platformdirs.user_data_dir("indexbench"))
    return Path(platformdirs.user_cache_dir("indexbench"))


def staging_path(folder: str | Path, prefix: str, *, directory: bool = False) -> Path:
    """A new, uniquely named empty file (or ``directory``) in ``folder``, to be filled and then
    renamed into place. Made as a plain ``open`` / ``mkdir`` makes it, so it gets the process's
    umask permissions (a baseline or report others may read), not the owner-only 0600 / 0700 of
    `tempfile.mkstemp` / `mkdtemp`."""
    import uuid

    while True:
        path = Path(folder) / f"{prefix}{uuid.uuid4().hex[:12]}"
        try:
            if directory:
                path.mkdir()
            else:
                os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
            return path
        except FileExistsError:
            continue


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


def _nearest_existing(folder: Path) -> Path:
    """``folder`` or its nearest ancestor that exists (what creating it would write into)."""
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    return folder


def check_directory(path: Path, option: str) -> None:
    """Raise `IndexbenchError` unless ``path`` is a directory or could be made one: neither it nor
    its nearest existing ancestor is a file. Creates nothing."""
    from .errors import IndexbenchError

    if path.exists() and not path.is_dir():
        raise IndexbenchError(f"{path}: is not a directory; {option} needs one")
    folder = _nearest_existing(path.parent)
    if not folder.is_dir():
        raise IndexbenchError(f"{path}: cannot be created, {folder} is not a directory")


def check_writable_file(path: Path, option: str) -> None:
    """Raise `IndexbenchError` unless ``path`` could be created (or replaced) as a file: it is not
    a directory, and the nearest folder that exists is a writable directory. Creates nothing."""
    from .errors import IndexbenchError

    if path.is_dir():
        raise IndexbenchError(f"{path}: is a directory; {option} takes a file path")
    folder = _nearest_existing(path.parent)
    if not folder.is_dir():
        raise IndexbenchError(f"{path}: cannot be created, {folder} is not a directory")
    import tempfile

    try:  # a real probe: permission bits say nothing to root, or on a read-only mount
        fd, probe = tempfile.mkstemp(prefix=".indexbench-probe-", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise IndexbenchError(f"{path}: cannot be written in {folder} ({exc.strerror or exc})") from None
