"""The data model every loader produces and every task and indexer consumes.

Plain, immutable-by-convention containers with no dependency beyond the standard library, so
that importing them is free. Each container can compute a content fingerprint: a SHA-256 over
its canonical serialisation, which keys the artifact cache and is stored with every result so
that two numbers are only ever compared when they were computed on the same bytes.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

Queries = Mapping[str, str]
"""Query id -> query text."""

Qrels = Mapping[str, Mapping[str, int]]
"""Query id -> {document id -> graded relevance (> 0 is relevant)}."""

Interactions = Mapping[str, Sequence[str]]
"""User id -> the document (item) ids the user interacted with, oldest first."""


def fingerprint_of(obj: Any) -> str:
    """SHA-256 (hex, first 16 chars) of the canonical JSON form of ``obj``."""
    blob = json.dumps(obj, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:16]


@dataclass(frozen=True, slots=True)
class Document:
    """One retrievable unit: a paper abstract, a product, a passage.

    ``text`` is what models read. ``categories`` is the category path, root first, when the
    dataset has one; it is ground truth for id-quality and the source of product-search queries,
    so loaders must never fold it into ``text``.
    """

    id: str
    text: str
    title: str = ""
    categories: tuple[str, ...] = ()


class Corpus(Sequence[Document]):
    """An ordered collection of documents with unique ids.

    The order is part of the identity (row ``i`` of an embedding matrix is document ``i``), so it
    is part of the fingerprint too.
    """

    def __init__(self, documents: Iterable[Document]):
        self._docs: tuple[Document, ...] = tuple(documents)
        self._row: dict[str, int] = {}
        for row, doc in enumerate(self._docs):
            if doc.id in self._row:
                raise ValueError(f"duplicate document id {doc.id!r}")
            self._row[doc.id] = row
        self._fingerprint: str | None = None

    def __len__(self) -> int:
        return len(self._docs)

    def __getitem__(self, index):  # type: ignore[override]
        return self._docs[index]

    def __iter__(self) -> Iterator[Document]:
        return iter(self._docs)

    def __contains__(self, doc_id: object) -> bool:
        return doc_id in self._row

    def get(self, doc_id: str) -> Document:
        return self._docs[self._row[doc_id]]

    def row_of(self, doc_id: str) -> int:
        return self._row[doc_id]

    @property
    def ids(self) -> list[str]:
        return [d.id for d in self._docs]

    @property
    def texts(self) -> list[str]:
        return [d.text for d in self._docs]

    def subset(self, doc_ids: Iterable[str]) -> Corpus:
        """A corpus of the given ids, in this corpus's order."""
        wanted = set(doc_ids)
        return Corpus(d for d in self._docs if d.id in wanted)

    @property
    def fingerprint(self) -> str:
        if self._fingerprint is None:
            self._fingerprint = fingerprint_of(
                [[d.id, d.title, d.text, list(d.categories)] for d in self._docs]
            )
        return self._fingerprint


@dataclass
class Dataset:
    """Everything one dataset provides; tasks pick the parts they need.

    ``qrels`` maps a split name ("train", "dev", "test") to that split's judgements.
    ``interactions`` is set for datasets with user sequences (recommendation).
    """

    name: str
    corpus: Corpus
    queries: dict[str, str] = field(default_factory=dict)
    qrels: dict[str, dict[str, dict[str, int]]] = field(default_factory=dict)
    interactions: dict[str, list[str]] | None = None
    source: str = ""
    identity: dict[str, str] | None = field(default=None, repr=False, compare=False)
    """Which known public split this is, if any (`indexbench.datasets.identity.identify`), set
    when the runner loads it; None until then."""
    _fingerprint: str | None = field(default=None, repr=False, compare=False)

    @property
    def has_categories(self) -> bool:
        return any(d.categories for d in self.corpus)

    @property
    def fingerprint(self) -> str:
        if self._fingerprint is None:
            self._fingerprint = fingerprint_of(
                {
                    "corpus": self.corpus.fingerprint,
                    "queries": self.queries,
                    "qrels": self.qrels,
                    "interactions": self.interactions,
                }
            )
        return self._fingerprint


@dataclass(frozen=True)
class SemanticIds:
    """A semantic ID (a tuple of ints, one per position) for every document of a corpus.

    ``codebook_sizes[t]`` is the number of codes position ``t`` may take. The last position of an
    indexer's IDs conventionally de-duplicates documents that share the rest of the ID, so full
    IDs are unique; ``validate`` checks that together with shape and range.
    """

    ids: Mapping[str, tuple[int, ...]]
    codebook_sizes: tuple[int, ...]

    @property
    def length(self) -> int:
        return len(self.codebook_sizes)

    def validate(self, corpus: Corpus | None = None) -> None:
        seen: dict[tuple[int, ...], str] = {}
        for doc_id, code in self.ids.items():
            if len(code) != self.length:
                raise ValueError(f"ID of {doc_id!r} has length {len(code)}, expected {self.length}")
            for t, (c, k) in enumerate(zip(code, self.codebook_sizes)):
                if not 0 <= c < k:
                    raise ValueError(f"ID of {doc_id!r} has code {c} at position {t}, outside [0, {k})")
            if code in seen:
                raise ValueError(f"documents {seen[code]!r} and {doc_id!r} share the full ID {code}")
            seen[code] = doc_id
        if corpus is not None:
            missing = [d for d in corpus.ids if d not in self.ids]
            if missing:
                raise ValueError(f"{len(missing)} documents have no ID, e.g. {missing[0]!r}")

    def prefixes(self, doc_ids: Sequence[str], length: int) -> list[tuple[int, ...]]:
        return [tuple(self.ids[d][:length]) for d in doc_ids]


__all__ = ["Corpus", "Dataset", "Document", "Interactions", "Qrels", "Queries", "SemanticIds", "fingerprint_of"]
