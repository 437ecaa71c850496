"""A content-addressed cache for expensive artifacts (embeddings, fitted or fine-tuned models).

An artifact is keyed by a namespace plus any JSON-serialisable key (typically a data fingerprint
and the config that produced it), so a changed input or option can never return a stale result.
Writes go to a temporary sibling and are renamed into place only once complete: an interrupted run
leaves no half-written artifact behind.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .data import fingerprint_of


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
        tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=final.parent))
        try:
            yield tmp
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        if final.exists():  # another process won the race; keep theirs
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            tmp.rename(final)

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
        if not self.enabled:
            with tempfile.TemporaryDirectory() as tmp:
                create(Path(tmp))
                return load(Path(tmp))
        with self.writing(namespace, key) as tmp:
            create(tmp)
        return load(self.path(namespace, key))

    def array(self, namespace: str, key: Any, compute: Callable[[], Any]) -> Any:
        """A numpy array, cached as ``array.npy``."""
        import numpy as np

        def create(directory: Path) -> None:
            np.save(directory / "array.npy", np.asarray(compute()))

        return self.get_or_create(namespace, key, create, lambda d: np.load(d / "array.npy"))
