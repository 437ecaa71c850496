"""What ID indexers share: the ID shape (T, K) and its de-duplicating last position, and the
base class of the two-stage ones (hc, rqvae, random-ids: embed every document, then quantise
the embeddings) with their options and the document embeddings they start from.

An ID of length T has T-1 *semantic* positions, chosen by the method, and a last position that
numbers the documents sharing those T-1 codes (0, 1, 2, ...), so every full ID is unique (paper
App. A.3: "the final position is added to distinguish documents sharing the first two position
ID prefixes"). Every position has the same codebook size K, so a grid compares indexers at the
same (T, K) unless told otherwise.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .data import Corpus, SemanticIds
from .encoders import PRECISIONS
from .errors import ConfigError
from .generative.options import GenerativeOptions
from .options import option

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np

    from .protocols import RunContext

DEFAULT_ID_LENGTH = 3
DEDUP_POSITION = "dedup-position"
"""An ID indexer's ``collision_policy`` when its last position numbers the items that share the
semantic codes before it (`append_dedup_position`): every full ID is unique, and the search
reaches each item through its own last code."""
MIN_CODEBOOK_SIZE = 16
MAX_CODEBOOK_SIZE = 512
SIMCSE = "simcse"


@dataclass
class IdIndexerOptions(GenerativeOptions):
    """Options every two-stage ID indexer takes, on top of the generative engine's.

    * ``id_length`` -- T, the ID length including the de-duplicating last position; 0 = the
      shared default (`default_id_shape`).
    * ``codebook_size`` -- K, the codes per position; 0 = the shared default.
    * ``encoder`` -- the text encoder producing the document embeddings: a registered encoder
      (``minilm``, ``tiny``, ...) or ``simcse`` = MiniLM fine-tuned on the corpus with
      unsupervised SimCSE first (``simcse-NAME`` fine-tunes encoder NAME instead).
    * ``encoder_max_length`` -- document tokens the encoder reads.
    * ``encoder_precision`` -- how the encoder computes the embeddings: ``auto`` (the device's
      default), ``fp32``, ``int8`` (CPU) or ``bf16`` (`indexbench.encoders.PRECISIONS`).
    * ``simcse_steps`` -- SimCSE optimiser steps (batch 64, one epoch at most; 0 = whole epoch).
    """

    id_length: int = option(0, ge=0)
    codebook_size: int = option(0, ge=0)
    encoder: str = "minilm"
    encoder_max_length: int = option(256, ge=1)
    encoder_precision: str = option("auto", choices=PRECISIONS)
    simcse_steps: int = option(50, ge=0)

    def validate(self) -> None:
        for name, least in (("id_length", 2), ("codebook_size", 2)):
            if 0 < getattr(self, name) < least:
                raise ConfigError(f"option {name!r} must be 0 (the default) or >= {least}, got {getattr(self, name)}")


def id_options(options: Any) -> dict[str, Any]:
    """The options that decide the IDs: every field except the generative engine's (which only
    matter once the IDs are fixed). Cache keys and reports use this."""
    engine = {f.name for f in dataclasses.fields(GenerativeOptions)}
    return {k: v for k, v in dataclasses.asdict(options).items() if k not in engine}


# --------------------------------------------------------------------------- ID shape


def default_id_shape(n_docs: int) -> tuple[int, int]:
    """The shared default (T, K) for a corpus of ``n_docs`` documents.

    T = 3, as in the paper: two semantic positions plus the de-duplicating one. K is the next
    power of two >= 2·sqrt(N), clamped to [16, 512]: then K² >= 4N, so the two semantic positions
    can give every document its own prefix with room to spare, while a first-level code still
    groups about sqrt(N)/2 documents -- coarse enough to carry a category. amazon-scientific
    (4,344 items) and SciFact (5,183 abstracts) get K = 256; the built-in sample (300) gets 64.
    The paper uses K = 512 / 5,120 / 51,200 for corpora of about 10k / 100k / 1M documents,
    i.e. a codebook that grows with N; on the corpora here the same rule of thumb lands on 256.
    """
    n = max(int(n_docs), 1)
    k = 1
    while k < 2 * math.sqrt(n):
        k *= 2
    return DEFAULT_ID_LENGTH, min(max(k, MIN_CODEBOOK_SIZE), MAX_CODEBOOK_SIZE)


def resolve_id_shape(options: Any, n_docs: int) -> tuple[int, int]:
    """(T, K) from ``options.id_length`` / ``options.codebook_size``, 0 meaning the default."""
    default_t, default_k = default_id_shape(n_docs)
    t = int(getattr(options, "id_length", 0)) or default_t
    k = int(getattr(options, "codebook_size", 0)) or default_k
    if t < 2:
        raise ConfigError(f"id_length must be at least 2 (semantic positions + the de-duplicating one), got {t}")
    if k < 2:
        raise ConfigError(f"codebook_size must be at least 2, got {k}")
    return t, k


# --------------------------------------------------------------------------- de-duplication


def append_dedup_position(prefix_ids: Mapping[str, tuple[int, ...]], codebook_size: int,
                          semantic_sizes: Sequence[int]) -> tuple[SemanticIds, dict[str, float]]:
    """Append the de-duplicating position to semantic prefixes; return the IDs and statistics.

    Documents sharing a prefix get 0, 1, 2, ... at the last position, in the order of
    ``prefix_ids`` (callers build it in corpus order, so the numbering is deterministic). The last
    position has ``codebook_size`` codes; a prefix shared by more documents than that raises
    `ConfigError`.

    Statistics, measured on the prefixes (i.e. before de-duplication), the same definitions as
    id-quality's diagnostics of the final IDs' (T-1)-prefixes:

    * ``collision_rate`` -- the fraction of documents whose prefix is shared with at least one
      other document: sum of the sizes of groups larger than one / N.
    * ``max_docs_per_prefix`` -- the size of the largest group.
    * ``distinct_prefixes`` -- the number of groups.
    """
    sizes = tuple(int(s) for s in semantic_sizes)
    counts = Counter(tuple(p) for p in prefix_ids.values())
    if not counts:
        raise ValueError("no documents to assign IDs to")
    largest_prefix, largest = counts.most_common(1)[0]
    if largest > codebook_size:
        raise ConfigError(
            f"{largest} documents share the semantic ID prefix {largest_prefix}, more than the "
            f"{codebook_size} codes of the de-duplicating position; raise codebook_size or id_length"
        )
    used: Counter[tuple[int, ...]] = Counter()
    ids: dict[str, tuple[int, ...]] = {}
    for doc_id, prefix in prefix_ids.items():
        prefix = tuple(int(c) for c in prefix)
        ids[doc_id] = (*prefix, used[prefix])
        used[prefix] += 1
    semantic = SemanticIds(ids, codebook_sizes=(*sizes, int(codebook_size)))
    semantic.validate()  # shape and range of the method's codes
    n = len(ids)
    stats = {
        "collision_rate": sum(s for s in counts.values() if s > 1) / n,
        "max_docs_per_prefix": float(largest),
        "distinct_prefixes": float(len(counts)),
    }
    return semantic, stats


def ids_from_codes(doc_ids: Sequence[str], codes: np.ndarray,
                   codebook_size: int) -> tuple[SemanticIds, dict[str, float]]:
    """`append_dedup_position` for an (N, T-1) integer array of semantic codes, row i being
    ``doc_ids[i]``; every semantic position has ``codebook_size`` codes."""
    if len(codes) != len(doc_ids):
        raise ValueError(f"{len(codes)} rows of codes for {len(doc_ids)} documents")
    prefixes = {d: tuple(int(c) for c in row) for d, row in zip(doc_ids, codes.tolist())}
    return append_dedup_position(prefixes, codebook_size, (codebook_size,) * codes.shape[1])


# --------------------------------------------------------------------------- embeddings


def corpus_embeddings(corpus: Corpus, options: Any, ctx: RunContext,
                      details: dict[str, Any] | None = None) -> np.ndarray:
    """Embed every document's text (row i = document i) with ``options.encoder``.

    Embeddings come from the artifact cache when present (`encode_cached`). For ``simcse`` the
    encoder is first fine-tuned on the corpus texts (`indexbench.simcse`, itself cached). When
    ``details`` is given it receives the encoder identity, the SimCSE history and the timings.
    """
    from .encoders import encode_cached, make_encoder
    from .registry import get_registry

    details = details if details is not None else {}
    name = str(options.encoder)
    texts = corpus.texts
    start = time.perf_counter()
    if name not in get_registry().encoders and (name == SIMCSE or name.startswith(SIMCSE + "-")):
        from .simcse import SimCSEConfig, simcse_encoder

        base = name[len(SIMCSE) + 1:] or "minilm"
        config = SimCSEConfig(max_steps=int(options.simcse_steps))
        encoder, history = simcse_encoder(base, texts, ctx, config)
        encoder.precision = str(options.encoder_precision)
        details["simcse"] = history
        details["simcse_s"] = time.perf_counter() - start
    else:
        encoder = make_encoder(name, ctx.device, str(options.encoder_precision))
    details["encoder"] = encoder.identity
    details["encoder_precision"] = encoder.precision
    start = time.perf_counter()
    emb = encode_cached(encoder, texts, ctx.cache, max_length=int(options.encoder_max_length),
                        progress=ctx.progress,
                        description=f"encoding {len(texts):,} documents ({encoder.name})")
    details["embed_s"] = time.perf_counter() - start
    return emb


def embeddings_fingerprint(emb: np.ndarray) -> str:
    """A content hash of an embedding matrix (shape, dtype and bytes), for cache keys."""
    import numpy as np

    arr = np.ascontiguousarray(emb)
    digest = hashlib.sha256(f"{arr.shape}:{arr.dtype}".encode())
    digest.update(arr.tobytes())
    return digest.hexdigest()[:16]


# --------------------------------------------------------------------------- the common skeleton


class TwoStageIdIndexer:
    """Base class of an ID indexer built in two stages: document embeddings, then codes.

    `assign_ids` resolves (T, K), embeds the corpus (`corpus_embeddings`), asks the subclass for
    the T-1 semantic codes of every document (`semantic_codes`), appends the de-duplicating
    position and fills ``self.details`` -- the shape, options, encoder, timings and collision
    statistics, plus whatever the subclass adds -- which tasks copy into the run record. A method
    that needs no embeddings sets ``uses_embeddings = False`` and receives None. ``config_class``
    is what a config-less construction uses.
    """

    name = ""
    config_class: type = IdIndexerOptions
    uses_embeddings = True
    collision_policy = DEDUP_POSITION

    def __init__(self, config: IdIndexerOptions | None = None):
        self.config = config if config is not None else self.config_class()
        self.config.apply_preset()  # (T, K) and the quantiser's options come from it too
        self.details: dict[str, Any] = {}

    def semantic_codes(self, emb: np.ndarray | None, n_docs: int, levels: int, codebook_size: int,
                       ctx: RunContext, details: dict[str, Any]) -> np.ndarray:
        """An (n_docs, levels) integer array of codes in [0, codebook_size), row i = document i."""
        raise NotImplementedError

    def assign_ids(self, corpus: Corpus, ctx: RunContext) -> SemanticIds:
        import numpy as np

        t, k = resolve_id_shape(self.config, len(corpus))
        details: dict[str, Any] = {"id_length": t, "codebook_size": k, "options": id_options(self.config)}
        self.details = details
        emb = corpus_embeddings(corpus, self.config, ctx, details) if self.uses_embeddings else None
        start = time.perf_counter()
        codes = np.asarray(self.semantic_codes(emb, len(corpus), t - 1, k, ctx, details))
        details["fit_s"] = time.perf_counter() - start
        if codes.shape != (len(corpus), t - 1):
            raise ValueError(f"{self.name}: codes of shape {codes.shape}, expected {(len(corpus), t - 1)}")
        ids, stats = ids_from_codes(corpus.ids, codes, k)
        details.update(stats)
        return ids

    def __repr__(self) -> str:
        return f"{type(self).__name__}({dataclasses.asdict(self.config)})"


__all__ = [
    "DEDUP_POSITION", "DEFAULT_ID_LENGTH", "IdIndexerOptions", "TwoStageIdIndexer", "append_dedup_position",
    "corpus_embeddings", "default_id_shape", "embeddings_fingerprint", "id_options", "ids_from_codes",
    "resolve_id_shape",
]
