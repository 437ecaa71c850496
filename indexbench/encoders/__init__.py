"""Text -> embedding, shared by every method that needs dense text vectors.

* `TextEncoder` (`text_encoder`) wraps a Hugging Face tokenizer + encoder model.
* `encode_cached` (`caching`) stores embeddings in an `ArtifactCache`.
* `train_in_batch_negatives` and `train_steps` (`contrastive`) fine-tune an encoder.
* `PRECISIONS`, `resolve_precision`, `int8_copy` (`precision`): how it computes at inference.
* the built-in encoders ``minilm`` and ``tiny``, their hook and `make_encoder` (`builtin`); this
  package is the built-in plugin the registry loads by name.

Every name is importable from ``indexbench.encoders``. Nothing heavy is imported at module level:
torch and transformers load inside the functions.
"""

from __future__ import annotations

from .builtin import (
    TINY_CONFIG,
    build_tiny_encoder,
    builtin_encoders,
    load_minilm,
    make_encoder,
    register_encoders,
)
from .caching import embedding_key, encode_cached
from .contrastive import (
    conflict_free_batches,
    loss_summary,
    other_positives_mask,
    train_in_batch_negatives,
    train_steps,
)
from .loading import MINILM_SOURCE
from .precision import DEFAULT_PRECISION, PRECISIONS, cpu_has_amx_bf16, int8_copy, resolve_precision
from .text_encoder import TextEncoder

__all__ = [
    "DEFAULT_PRECISION", "MINILM_SOURCE", "PRECISIONS", "TINY_CONFIG", "TextEncoder", "build_tiny_encoder",
    "builtin_encoders", "conflict_free_batches", "cpu_has_amx_bf16", "embedding_key", "encode_cached", "int8_copy",
    "load_minilm", "loss_summary", "make_encoder", "other_positives_mask", "register_encoders", "resolve_precision",
    "train_in_batch_negatives", "train_steps",
]
