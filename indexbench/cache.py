"""A content-addressed cache for expensive artifacts (embeddings, fitted or fine-tuned models).

An artifact is keyed by a namespace plus any JSON-serialisable key (typically a data fingerprint
and the config that produced it), so a changed input or option can never return a stale result.
Writes go to a temporary sibling and are renamed into place only once complete: an interrupted run
leaves no half-written artifact behind. A temporary sibling is named after the host and process
writing it, so one left by a killed process (SIGKILL runs no cleanup) is recognised and removed
by `ArtifactCache.remove_stale` when the next grid starts.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from . import distributed
from .data import fingerprint_of
from .paths import staging_path

STALE_AFTER_S = 24 * 3600.0
"""A temporary directory this old is abandoned whoever wrote it (no artifact takes a day to write)."""

_HOST = re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname()) or "host"
_WRITER = re.compile(r"^\.[^.]+\.(?P<host>[A-Za-z0-9-]+)-(?P<pid>\d+)\.")



class ArtifactCache:
    def __init__(self, root: str | Path, enabled: bool = True):
        self.root = Path(root)
        self.enabled = enabled
        self.hits = 0
        self.misses = 0

    @classmethod
    def disabled(cls) -> ArtifactCache:
        """A cache that stores nothing: every artifact is created in a temporary directory."""
        return cls(Path(tempfile.gettempdir()) / "indexbench-disabled-cache", enabled=False)

    def path(self, namespace: str, key: Any) -> Path:
        return self.root / namespace / fingerprint_of(key)

    def has(self, namespace: str, key: Any) -> bool:
        return self.enabled and self.path(namespace, key).exists()

    @contextmanager
    def writing(self, namespace: str, key: Any) -> Iterator[Path]:
        """Yield an empty directory to fill; it becomes the artifact only if the block succeeds."""
        final = self.path(namespace, key)
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = staging_path(final.parent, f".{final.name}.{_HOST}-{os.getpid()}.", directory=True)
        try:
            yield tmp
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        try:
            tmp.rename(final)  # atomic: readers see no artifact or a whole one
        except OSError:
            # Another writer renamed theirs into place first (rename onto a non-empty directory
            # fails): keep theirs, which is as valid as ours.
            shutil.rmtree(tmp, ignore_errors=True)
            if not final.exists():
                raise

    def remove_stale(self, *, max_age_s: float = STALE_AFTER_S) -> list[Path]:
        """Remove temporary directories that no live writer owns: those of a process of this host
        that has gone, and any older than ``max_age_s`` (a writer on another host, or one from
        before writers were named). Returns what was removed."""
        removed: list[Path] = []
        if not self.enabled or not self.root.is_dir():
            return removed
        now = time.time()
        for namespace in self.root.iterdir():
            if not namespace.is_dir() or namespace.name.startswith("."):
                continue
            for tmp in namespace.glob(".*"):
                if not tmp.is_dir():
                    continue
                owner = _WRITER.match(tmp.name)
                try:
                    age = now - tmp.stat().st_mtime
                except OSError:
                    continue
                gone = owner is not None and owner["host"] == _HOST and not _alive(int(owner["pid"]))
                if gone or age > max_age_s:
                    shutil.rmtree(tmp, ignore_errors=True)
                    removed.append(tmp)
        return removed

    def get_or_create(
        self,
        namespace: str,
        key: Any,
        create: Callable[[Path], None],
        load: Callable[[Path], Any],
    ) -> Any:
        """Load the artifact if cached, else ``create`` it into a fresh directory, then load it."""
        if self.has(namespace, key):
            self.hits += 1
            return load(self.path(namespace, key))
        self.misses += 1
        if not self.enabled or not distributed.is_main():
            # Under torchrun only the main process writes the cache; the others compute the
            # same artifact in lockstep (its training's collectives need them) and drop it.
            with tempfile.TemporaryDirectory() as tmp:
                create(Path(tmp))
                return load(Path(tmp))
        with self._creating(namespace, key):
            if self.path(namespace, key).exists():  # created by another worker while we waited
                return load(self.path(namespace, key))
            with self.writing(namespace, key) as tmp:
                create(tmp)
        return load(self.path(namespace, key))

    @contextmanager
    def _creating(self, namespace: str, key: Any) -> Iterator[None]:
        """Hold an advisory lock on one artifact while creating it, so that workers sharing the
        cache (a Ray grid, two runs) compute it once: the second waits, then loads the first's.
        Correctness does not rest on it -- the atomic rename does -- so a filesystem without
        locks (some network mounts) only costs the duplicate work."""
        try:
            import fcntl
        except ImportError:  # Windows: no flock
            yield
            return
        if distributed.launched():
            # torchrun's processes create an artifact together (collectives inside its training):
            # one waiting on another's lock would deadlock both.
            yield
            return
        # Lock files live apart from the artifacts (never removed: unlinking a lock another
        # process waits on would let a third take a fresh one beside it).
        lock_path = self.root / ".locks" / f"{namespace}-{self.path(namespace, key).name}.lock"
        lock_path.parent.mkdir(parents=True, exist_ok=True)
        with open(lock_path, "a+b") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX)
            except OSError:
                pass  # locks unsupported here: both may compute, the rename keeps one
            yield

    def array(self, namespace: str, key: Any, compute: Callable[[], Any]) -> Any:
        """A numpy array, cached as ``array.npy``."""
        import numpy as np

        def create(directory: Path) -> None:
            np.save(directory / "array.npy", np.asarray(compute()))

        return self.get_or_create(namespace, key, create, lambda d: np.load(d / "array.npy"))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):  # exists but is not ours, or cannot be asked: keep its files
        return True
    return True
