"""`encode_cached`: embeddings stored in an `ArtifactCache`, keyed by the encoder's identity and
precision, a fingerprint of the texts, the token budget and the truncation side."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ..data import fingerprint_of
from ..protocols import Progress
from ..tokenization import Truncation
from .text_encoder import TextEncoder

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np

    from ..cache import ArtifactCache


def embedding_key(encoder: TextEncoder, texts: Sequence[str], *, max_length: int,
                  truncation: Truncation) -> dict[str, Any]:
    """The cache key of ``encoder.encode(texts, max_length=..., truncation=...)``."""
    return {
        "encoder": encoder.identity,
        "precision": encoder.precision,
        "texts": fingerprint_of(list(texts)),
        "n": len(texts),
        "max_length": min(int(max_length), encoder.max_positions),
        "truncation": truncation,
    }


def encode_cached(
    encoder: TextEncoder,
    texts: Sequence[str],
    cache: ArtifactCache | None,
    *,
    namespace: str = "embeddings",
    max_length: int = 256,
    truncation: Truncation = "right",
    batch_size: int = 64,
    progress: Progress | None = None,
    description: str = "encoding",
) -> np.ndarray:
    """`TextEncoder.encode`, stored in ``cache`` (when given) under `embedding_key`."""

    def compute():
        return encoder.encode(texts, max_length=max_length, truncation=truncation,
                              batch_size=batch_size, progress=progress, description=description)

    if cache is None:
        return compute()
    key = embedding_key(encoder, texts, max_length=max_length, truncation=truncation)
    return cache.array(namespace, key, compute)


__all__ = ["embedding_key", "encode_cached"]
