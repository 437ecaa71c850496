"""ID tokens and the prefix trie of a corpus's valid IDs.

`IdVocabulary`: one new decoder token per (position, code), appended after the backbone's text
vocabulary, position by position; so the rows of position ``t`` form one contiguous slice and
the decoder scores only those K rows at step ``t``.

`IdTrie`: the valid IDs as one CSR adjacency per position. Node ``n`` at depth ``t`` has
children ``edge_code[t][indptr[t][n]:indptr[t][n+1]]`` (sorted codes) leading to nodes
``edge_child[t][...]`` at depth ``t+1``; at the last depth a child is a leaf, and
``leaf_doc[leaf]`` is the index of the document with that full ID. Memory is O(corpus × T)
whatever the codebook size, and looking up the children of a whole batch of beams is a few
vectorised tensor operations (`children`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class IdVocabulary:
    base: int
    """Token index of (position 0, code 0): the size of the text vocabulary before the IDs."""
    codebook_sizes: tuple[int, ...]

    @property
    def offsets(self) -> tuple[int, ...]:
        out, total = [], self.base
        for k in self.codebook_sizes:
            out.append(total)
            total += k
        return tuple(out)

    @property
    def size(self) -> int:
        """Number of ID tokens."""
        return sum(self.codebook_sizes)

    @property
    def length(self) -> int:
        return len(self.codebook_sizes)

    def rows(self, position: int) -> slice:
        """Token indices of position ``position``'s codes."""
        start = self.offsets[position]
        return slice(start, start + self.codebook_sizes[position])

    def tokens(self, codes: Any) -> Any:
        """Token indices of ID codes: ``codes[..., t]`` → its token (numpy array or torch tensor)."""
        offsets = self.offsets
        if hasattr(codes, "new_tensor"):  # torch
            return codes + codes.new_tensor(offsets)[: codes.shape[-1]]
        codes = np.asarray(codes)
        return codes + np.asarray(offsets[: codes.shape[-1]], dtype=codes.dtype)


class IdTrie:
    """The prefix trie of the valid IDs ``codes`` (an (N, T) integer array, one row per document,
    rows unique)."""

    def __init__(self, codes: np.ndarray, codebook_sizes: tuple[int, ...]):
        codes = np.asarray(codes, dtype=np.int64)
        if codes.ndim != 2 or codes.shape[1] != len(codebook_sizes):
            raise ValueError(f"codes must have shape (N, {len(codebook_sizes)}), got {codes.shape}")
        if len(codes) == 0:
            raise ValueError("an ID trie needs at least one ID")
        self.codebook_sizes = tuple(int(k) for k in codebook_sizes)
        n, length = codes.shape
        order = np.lexsort(codes.T[::-1])  # sort rows lexicographically, position 0 first
        ordered = codes[order]
        self.indptr: list[np.ndarray] = []
        self.edge_code: list[np.ndarray] = []
        self.edge_child: list[np.ndarray] = []
        parent = np.zeros(n, dtype=np.int64)  # node of each row's prefix at the current depth
        n_nodes = 1
        for t in range(length):
            # A new edge starts wherever (parent node, code) changes between consecutive rows.
            new_edge = np.ones(n, dtype=bool)
            new_edge[1:] = (parent[1:] != parent[:-1]) | (ordered[1:, t] != ordered[:-1, t])
            child = np.cumsum(new_edge) - 1
            counts = np.bincount(parent[new_edge], minlength=n_nodes)
            self.indptr.append(np.concatenate([[0], np.cumsum(counts)]).astype(np.int64))
            self.edge_code.append(ordered[new_edge, t])
            self.edge_child.append(child[new_edge])
            parent, n_nodes = child, int(child[-1]) + 1
        if n_nodes != n:
            raise ValueError(f"{n - n_nodes} documents share a full ID; IDs must be unique")
        self.leaf_doc = order
        self._on: dict[str, tuple] = {}

    @property
    def length(self) -> int:
        return len(self.codebook_sizes)

    def __len__(self) -> int:
        return len(self.leaf_doc)

    def contains(self, code: tuple[int, ...]) -> bool:
        node = 0
        for t, c in enumerate(code):
            lo, hi = self.indptr[t][node], self.indptr[t][node + 1]
            at = lo + np.searchsorted(self.edge_code[t][lo:hi], c)
            if at >= hi or self.edge_code[t][at] != c:
                return False
            node = int(self.edge_child[t][at])
        return len(code) == self.length

    def tensors(self, device: str):
        """The CSR arrays as torch tensors on ``device`` (converted once per device)."""
        if device not in self._on:
            import torch

            def move(arrays):
                return [torch.as_tensor(a, device=device) for a in arrays]

            self._on[device] = (move(self.indptr), move(self.edge_code), move(self.edge_child),
                                torch.as_tensor(self.leaf_doc, device=device))
        return self._on[device]

    def children(self, depth: int, nodes: Any):
        """Every (row, code, child) edge leaving ``nodes`` (a 1-D long tensor of node ids at
        ``depth``): three flat tensors, ``row`` indexing into ``nodes``."""
        import torch

        indptr, edge_code, edge_child, _ = self.tensors(str(nodes.device))
        starts = indptr[depth][nodes]
        counts = indptr[depth][nodes + 1] - starts
        row = torch.repeat_interleave(torch.arange(len(nodes), device=nodes.device), counts)
        first_of_row = torch.cumsum(counts, 0) - counts
        edge = starts[row] + torch.arange(len(row), device=nodes.device) - first_of_row[row]
        return row, edge_code[depth][edge], edge_child[depth][edge]
