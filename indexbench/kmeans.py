"""k-means, the one implementation every clustering-based ID indexer shares (faiss underneath).

`kmeans` adds three things to ``faiss.Kmeans``: it accepts fewer points than clusters (each point
then is its own cluster, which is what hierarchical clustering needs at its leaves), it returns the
final assignment of every point, and it silences faiss's "too few points per centroid" warnings,
which recursive clustering of small clusters would otherwise print by the hundred.

Determinism: faiss seeds its choice of initial centroids (and its subsampling of inputs larger
than 256 points per centroid) with ``seed``; the assignment step (BLAS) and the centroid update
are reproducible, so the same input and seed give the same result run after run. (Checked: 5,000
x 384 points into 256 clusters gave bit-identical centroids with 1 and 2 OpenMP threads; a
different BLAS or thread count could in principle break exact distance ties differently.)

`balanced_kmeans` caps every cluster at ceil(n / k) points (OneRec's balanced RQ-KMeans): faiss's
centroids, then Lloyd rounds whose assignment step fills the clusters nearest-first under the cap.

faiss and numpy are imported inside the functions, so importing this module is free.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np


def kmeans(x: np.ndarray, k: int, *, seed: int, niter: int = 25,
           spherical: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Cluster the rows of ``x`` into at most ``k`` clusters.

    Returns ``(centroids, assignments)``: float32 centroids of shape (k', d) with
    k' = min(k, n), and the int64 cluster of every row, shape (n,). When n <= k every row is its
    own cluster, numbered in row order (k-means would find exactly that, at a cost). With
    ``spherical=True`` centroids are L2-normalised after each update and rows are assigned by
    inner product (for normalised embeddings, cosine k-means).
    """
    import faiss
    import numpy as np

    x = np.ascontiguousarray(x, dtype=np.float32)
    if x.ndim != 2 or len(x) == 0:
        raise ValueError(f"kmeans needs a non-empty 2-d array, got shape {x.shape}")
    if k < 1:
        raise ValueError(f"kmeans needs k >= 1, got {k}")
    n, d = x.shape
    if n <= k:
        return x.copy(), np.arange(n, dtype=np.int64)
    km = faiss.Kmeans(d, int(k), niter=int(niter), seed=int(seed), spherical=spherical,
                      verbose=False, min_points_per_centroid=1)
    km.train(x)
    _, rows = km.index.search(x, 1)
    return np.asarray(km.centroids, dtype=np.float32), rows[:, 0].astype(np.int64)


def balanced_assignment(x: np.ndarray, centroids: np.ndarray, capacity: int) -> np.ndarray:
    """Assign every row of ``x`` to a centroid, at most ``capacity`` rows a centroid.

    Greedy in rounds: each unassigned row proposes its nearest centroid that still has room;
    a centroid takes its closest proposers up to its room and is closed once full; the others
    propose again. Every round assigns at least one row or closes a centroid, so it ends within
    n + k rounds (far fewer in practice). Deterministic: ties go to the lower row index.
    """
    import numpy as np

    x = np.asarray(x, dtype=np.float32)
    centroids = np.asarray(centroids, dtype=np.float32)
    n, k = len(x), len(centroids)
    if capacity * k < n:
        raise ValueError(f"{k} clusters of at most {capacity} cannot hold {n} points")
    dist = ((x * x).sum(1, keepdims=True) - 2.0 * x @ centroids.T + (centroids * centroids).sum(1)[None, :])
    assign = np.full(n, -1, dtype=np.int64)
    load = np.zeros(k, dtype=np.int64)
    waiting = np.arange(n)
    while waiting.size:
        sub = dist[waiting]
        choice = sub.argmin(axis=1)
        order = np.lexsort((waiting, sub[np.arange(len(waiting)), choice], choice))
        chosen = choice[order]
        rank = np.arange(len(order)) - np.searchsorted(chosen, chosen, side="left")
        taken = rank < (capacity - load[chosen])
        assign[waiting[order[taken]]] = chosen[taken]
        np.add.at(load, chosen[taken], 1)
        dist[:, load >= capacity] = np.inf
        waiting = np.sort(waiting[order[~taken]])
    return assign


def balanced_kmeans(x: np.ndarray, k: int, *, seed: int, niter: int = 25,
                    balance_iters: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """k-means whose clusters hold at most ceil(n / k) rows each.

    Starts from `kmeans`'s centroids, then alternates `balanced_assignment` and the centroid
    update (a cluster left empty keeps its centroid) for at most ``balance_iters`` rounds,
    stopping early once the assignment no longer changes. Same return value as `kmeans`.
    """
    import numpy as np

    centroids, assign = kmeans(x, k, seed=seed, niter=niter)
    n = len(assign)
    if n <= k:
        return centroids, assign
    x = np.ascontiguousarray(x, dtype=np.float32)
    capacity = -(-n // k)
    previous = None
    for _ in range(max(int(balance_iters), 1)):
        assign = balanced_assignment(x, centroids, capacity)
        if previous is not None and np.array_equal(assign, previous):
            break
        previous = assign
        counts = np.bincount(assign, minlength=len(centroids))
        sums = np.zeros_like(centroids)
        np.add.at(sums, assign, x)
        filled = counts > 0
        centroids[filled] = sums[filled] / counts[filled, None]
    return centroids, assign


__all__ = ["balanced_assignment", "balanced_kmeans", "kmeans"]
