"""``rqkmeans``: residual k-means semantic IDs (RQ-KMeans, as in OneRec; GRID and cornac report it
level with rq-VAE at no training cost).

Documents are embedded (``encoder`` option, MiniLM by default); k-means into K clusters gives the
first code, and each later code is k-means of what the codes so far leave unexplained: the
residual r_t = r_{t-1} - c_t[code_t], starting from r_0 = the embedding. Unlike ``hc`` every
level clusters the whole corpus (one codebook a position, shared by all prefixes), and unlike
``rqvae`` nothing is trained: the codebooks are the k-means centroids of the raw residuals.
``balanced=true`` caps each cluster at ceil(N / K) documents (`indexbench.kmeans.balanced_kmeans`),
which spreads the codes evenly and bounds how many documents can share a prefix. The last
position de-duplicates (`indexbench.id_indexers`).

The record's details carry each level's mean squared residual norm (``residual_mse``, level 0 =
the embeddings themselves), codebook utilisation and largest cluster. Importing this module is
cheap: numpy and faiss load inside `semantic_codes`.
"""

from __future__ import annotations

from dataclasses import dataclass

from indexbench import IndexerEntry, hookimpl, option
from indexbench.id_indexers import IdIndexerOptions, TwoStageIdIndexer

__version__ = "0.1.0"


@dataclass
class RQKMeansConfig(IdIndexerOptions):
    """Options of ``--indexer rqkmeans:key=value:...``.

    ID options (shared by every ID indexer): ``id_length`` (T, 0 = default 3), ``codebook_size``
    (K, 0 = next power of two >= 2·sqrt(N) in [16, 512]), ``encoder`` (``minilm``, ``simcse``,
    ...), ``encoder_max_length``, ``simcse_steps``; the other options tune the generative engine.
    Own options: ``kmeans_iters`` -- k-means iterations per level; ``balanced`` -- at most
    ceil(N / K) documents a cluster; ``balance_iters`` -- rounds of balanced assignment and
    centroid update after the k-means start.
    """

    kmeans_iters: int = option(25, ge=1)
    balanced: bool = False
    balance_iters: int = option(10, ge=1)


class RQKMeansIndexer(TwoStageIdIndexer):
    """k-means of the embeddings, then of the residuals, one level per semantic position."""

    name = "rqkmeans"
    config_class = RQKMeansConfig

    def semantic_codes(self, emb, n_docs, levels, codebook_size, ctx, details):
        import numpy as np

        from indexbench.kmeans import balanced_kmeans, kmeans

        cfg = self.config
        residual = np.array(emb, dtype=np.float32, copy=True)
        codes = np.zeros((n_docs, levels), dtype=np.int64)
        mse = [float((residual ** 2).sum(1).mean())]
        utilisation, largest = [], []
        for level in ctx.progress.track(range(levels), "rqkmeans: residual k-means", total=levels):
            if cfg.balanced:
                centroids, assign = balanced_kmeans(residual, codebook_size, seed=ctx.seed,
                                                    niter=cfg.kmeans_iters, balance_iters=cfg.balance_iters)
            else:
                centroids, assign = kmeans(residual, codebook_size, seed=ctx.seed, niter=cfg.kmeans_iters)
            codes[:, level] = assign
            residual -= centroids[assign]
            counts = np.bincount(assign, minlength=codebook_size)
            mse.append(float((residual ** 2).sum(1).mean()))
            utilisation.append(float((counts > 0).mean()))
            largest.append(int(counts.max()))
        details["rqkmeans"] = {"residual_mse": mse, "codebook_utilization": utilisation,
                               "largest_cluster": largest, "balanced": bool(cfg.balanced)}
        return codes


@hookimpl
def register_indexers(register):
    register(IndexerEntry(
        name="rqkmeans",
        factory=RQKMeansIndexer,
        config_class=RQKMeansConfig,
        description="residual k-means semantic IDs on text embeddings (RQ-KMeans, OneRec), "
        "optionally balanced, last position de-duplicates",
        kind="ids",
    ))


__all__ = ["RQKMeansConfig", "RQKMeansIndexer", "register_indexers"]
