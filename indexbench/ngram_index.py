"""An index over a corpus of token-id documents that answers n-gram questions: does this token
sequence occur, how often, which tokens can follow it, and which documents hold it.

It is what an n-gram generative retriever (SEAL) needs: the decoder may only produce n-grams
that occur in the corpus (`children` is the decoding constraint), and a generated n-gram is
evidence for every document that contains it (`documents`).

The corpus is one stream of token ids, each document followed by a separator that is not a
token, so no n-gram crosses a document boundary. The heavy part -- sorting every suffix of the
stream -- is libdivsufsort's (``pydivsufsort``, which handles integer alphabets); SEAL itself
uses an FM-index (a compressed suffix array) from sdsl-lite. An uncompressed suffix array
answers the same questions with plain binary searches and costs 4 bytes a token, which for the
corpora here (SciFact ~1.7 M tokens, amazon-scientific ~0.5 M) is a few MB; it is built in well
under a second (benchmarks/LOG.md has the figures).

Every query is a binary search over suffix-array rows: the rows whose suffixes start with an
n-gram form one contiguous range, and the token that follows the n-gram is sorted within it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

ARRAYS = ("stream", "suffixes", "starts")


@dataclass(frozen=True)
class Node:
    """The suffix-array rows [lo, hi) whose suffixes start with an n-gram of ``length`` tokens."""

    lo: int
    hi: int
    length: int

    @property
    def count(self) -> int:
        return self.hi - self.lo


class CorpusIndex:
    """Suffix array of a corpus's token stream, with document boundaries."""

    def __init__(self, stream: np.ndarray, suffixes: np.ndarray, starts: np.ndarray):
        self.stream = stream
        """Every document's tokens followed by the separator (``stream.max()`` + ... is never a token)."""
        self.suffixes = suffixes
        """Start positions of the stream's suffixes, in lexicographic order (non-separator only)."""
        self.starts = starts
        """Where each document begins in the stream; ``starts[-1]`` is the stream's length."""
        self.separator = int(stream[starts[1] - 1]) if len(starts) > 1 else -1
        self._children = lru_cache(maxsize=65536)(self._compute_children)

    # ----------------------------------------------------------------- building

    @classmethod
    def build(cls, documents: Sequence[Sequence[int]]) -> CorpusIndex:
        """Index ``documents`` (each a sequence of non-negative token ids)."""
        from pydivsufsort import divsufsort

        lengths = np.fromiter((len(d) for d in documents), dtype=np.int64, count=len(documents))
        tokens = np.fromiter((t for d in documents for t in d), dtype=np.int64, count=int(lengths.sum()))
        if len(tokens) and tokens.min() < 0:
            raise ValueError("token ids must be non-negative")
        separator = int(tokens.max()) + 1 if len(tokens) else 0
        dtype = np.uint16 if separator < 2**16 else np.uint32
        stream = np.empty(len(tokens) + len(documents), dtype=dtype)
        starts = np.zeros(len(documents) + 1, dtype=np.int64)
        starts[1:] = np.cumsum(lengths + 1)
        ends = starts[1:] - 1  # each document's separator slot
        is_token = np.ones(len(stream), dtype=bool)
        is_token[ends] = False
        stream[is_token] = tokens
        stream[ends] = separator
        order = divsufsort(stream) if len(stream) else np.zeros(0, dtype=np.int64)
        # Suffixes that start at a separator match no n-gram: leave them out (they sort last,
        # the separator being the largest value, so this keeps the order).
        suffixes = np.asarray(order)[is_token[np.asarray(order)]].astype(np.int32 if len(stream) < 2**31 else np.int64)
        return cls(stream, suffixes, starts)

    def save(self, directory: Path) -> None:
        np.savez(directory / "corpus-index.npz", stream=self.stream, suffixes=self.suffixes, starts=self.starts)

    @classmethod
    def load(cls, directory: Path) -> CorpusIndex:
        with np.load(directory / "corpus-index.npz") as saved:
            return cls(*(saved[name] for name in ARRAYS))

    # ----------------------------------------------------------------- size

    @property
    def n_documents(self) -> int:
        return len(self.starts) - 1

    @property
    def n_tokens(self) -> int:
        """Tokens in the corpus (separators not counted)."""
        return len(self.suffixes)

    @property
    def nbytes(self) -> int:
        return int(self.stream.nbytes + self.suffixes.nbytes + self.starts.nbytes)

    # ----------------------------------------------------------------- queries

    @property
    def root(self) -> Node:
        """The empty n-gram: every suffix."""
        return Node(0, len(self.suffixes), 0)

    def find(self, ngram: Iterable[int]) -> Node | None:
        """The node of ``ngram``, or None when it does not occur."""
        node = self.root
        for token in ngram:
            node = self.extend(node, int(token))
            if node is None:
                return None
        return node

    def count(self, ngram: Iterable[int]) -> int:
        node = self.find(ngram)
        return 0 if node is None else node.count

    def extend(self, node: Node, token: int) -> Node | None:
        """The node of the n-gram one token longer, or None."""
        tokens, nodes = self.children(node)
        at = int(np.searchsorted(tokens, token))
        if at < len(tokens) and tokens[at] == token:
            return nodes[at]
        return None

    def children(self, node: Node) -> tuple[np.ndarray, list[Node]]:
        """The tokens that follow the n-gram somewhere in the corpus (sorted), and their nodes."""
        return self._children(node)

    def _compute_children(self, node: Node) -> tuple[np.ndarray, list[Node]]:
        following = self.stream[self.suffixes[node.lo : node.hi] + node.length]  # sorted within a node
        if len(following) == 0:
            return np.zeros(0, dtype=np.int64), []
        edges = np.flatnonzero(following[1:] != following[:-1]) + 1
        los = np.concatenate([[0], edges])
        his = np.concatenate([edges, [len(following)]])
        tokens = following[los].astype(np.int64)
        keep = tokens != self.separator  # the n-gram ends a document there: nothing follows
        return tokens[keep], [Node(node.lo + int(lo), node.lo + int(hi), node.length + 1)
                              for lo, hi in zip(los[keep], his[keep])]

    def positions(self, node: Node) -> np.ndarray:
        """Stream positions where the n-gram starts (in suffix order)."""
        return self.suffixes[node.lo : node.hi].astype(np.int64)

    def document_of(self, positions: np.ndarray) -> np.ndarray:
        """The document (its index in the corpus) each stream position lies in."""
        return np.searchsorted(self.starts, positions, side="right") - 1

    def documents(self, ngram: Iterable[int] | Node) -> np.ndarray:
        """The distinct documents (corpus indices, ascending) that contain the n-gram."""
        node = ngram if isinstance(ngram, Node) else self.find(ngram)
        if node is None:
            return np.zeros(0, dtype=np.int64)
        return np.unique(self.document_of(self.positions(node)))

    def document_tokens(self, doc: int) -> np.ndarray:
        return self.stream[self.starts[doc] : self.starts[doc + 1] - 1].astype(np.int64)

    def describe(self) -> dict[str, Any]:
        return {"documents": self.n_documents, "tokens": self.n_tokens, "bytes": self.nbytes}


__all__ = ["CorpusIndex", "Node"]
