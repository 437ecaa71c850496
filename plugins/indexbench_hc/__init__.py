"""``hc``: hierarchical-clustering semantic IDs (DSI, Tay et al. 2022), the paper's HC indexer.

Documents are embedded (``encoder`` option, MiniLM by default), then clustered top-down: k-means
into K clusters gives the first code; inside each cluster k-means into min(K, cluster size)
clusters gives the next, and so on for the T-1 semantic positions. A cluster of at most K
documents is simply numbered, one code per document, as DSI does at its leaves (k-means with
k = n finds exactly that). The last position de-duplicates (`indexbench.id_indexers`).

Importing this module is cheap: numpy and faiss load inside `semantic_codes`.
"""

from __future__ import annotations

from dataclasses import dataclass

from indexbench import IndexerEntry, hookimpl, option
from indexbench.id_indexers import IdIndexerOptions, TwoStageIdIndexer

__version__ = "0.1.0"


@dataclass
class HCConfig(IdIndexerOptions):
    """Options of ``--indexer hc:key=value:...``.

    ID options (shared by every ID indexer): ``id_length`` (T, 0 = default 3), ``codebook_size``
    (K, 0 = next power of two >= 2·sqrt(N) in [16, 512]), ``encoder`` (``minilm``, ``simcse``,
    ...), ``encoder_max_length``, ``simcse_steps``; the other options tune the generative engine.
    Own options: ``kmeans_iters`` -- k-means iterations per clustering; ``spherical`` -- cosine
    k-means (normalised centroids) instead of Euclidean.
    """

    kmeans_iters: int = option(25, ge=1)
    spherical: bool = False


class HCIndexer(TwoStageIdIndexer):
    """Top-down k-means over document embeddings; one level per semantic position."""

    name = "hc"
    config_class = HCConfig

    def semantic_codes(self, emb, n_docs, levels, codebook_size, ctx, details):
        import numpy as np

        from indexbench.kmeans import kmeans

        cfg = self.config
        codes = np.zeros((n_docs, levels), dtype=np.int64)
        groups = [np.arange(n_docs)]
        details["clusterings_per_level"] = []
        for level in range(levels):
            children = []
            details["clusterings_per_level"].append(sum(len(g) > codebook_size for g in groups))
            for rows in ctx.progress.track(groups, f"hc: k-means, level {level + 1}", total=len(groups)):
                _, assign = kmeans(emb[rows], codebook_size, seed=ctx.seed, niter=cfg.kmeans_iters,
                                   spherical=cfg.spherical)
                codes[rows, level] = assign
                children.extend(rows[assign == c] for c in np.unique(assign))
            groups = children
        return codes


@hookimpl
def register_indexers(register):
    register(IndexerEntry(
        name="hc",
        factory=HCIndexer,
        config_class=HCConfig,
        description="hierarchical k-means semantic IDs on text embeddings (DSI; paper's HC "
        "indexer), last position de-duplicates",
        kind="ids",
    ))


__all__ = ["HCConfig", "HCIndexer", "register_indexers"]
