"""``random-ids``: random semantic IDs of the same (T, K) shape, the floor every ID indexer must
clear.

Each semantic position gets a code drawn uniformly from [0, K) with a generator seeded by the
run's seed; the last position de-duplicates (`indexbench.id_indexers`). The codes carry no
information about the documents, so their AMI with any category is about 0. No text is embedded.
"""

from __future__ import annotations

from dataclasses import dataclass

from indexbench import IndexerEntry, hookimpl
from indexbench.id_indexers import IdIndexerOptions, TwoStageIdIndexer

__version__ = "0.1.0"


@dataclass
class RandomIdsConfig(IdIndexerOptions):
    """Options of ``--indexer random-ids:key=value:...``: the shared ID options ``id_length``
    (T, 0 = default 3) and ``codebook_size`` (K, 0 = next power of two >= 2·sqrt(N) in
    [16, 512]); ``encoder`` and its options are ignored (nothing is embedded); the other options
    tune the generative engine."""


class RandomIdsIndexer(TwoStageIdIndexer):
    name = "random-ids"
    config_class = RandomIdsConfig
    uses_embeddings = False

    def semantic_codes(self, emb, n_docs, levels, codebook_size, ctx, details):
        import numpy as np

        return np.random.default_rng(ctx.seed).integers(0, codebook_size, size=(n_docs, levels))


@hookimpl
def register_indexers(register):
    register(IndexerEntry(
        name="random-ids",
        factory=RandomIdsIndexer,
        config_class=RandomIdsConfig,
        description="uniformly random semantic IDs of the same shape (the floor), last position "
        "de-duplicates",
        kind="ids",
    ))


__all__ = ["RandomIdsConfig", "RandomIdsIndexer", "register_indexers"]
