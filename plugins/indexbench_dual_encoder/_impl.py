"""The heavy half of the dual-encoder plugin (imports numpy, torch via the encoder, faiss)."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from indexbench.encoders import TextEncoder, encode_cached, make_encoder, train_in_batch_negatives
from indexbench.errors import ConfigError
from indexbench.protocols import RetrievalProblem, RunContext

FINETUNE_NAMESPACE = "dual-encoder-finetuned"
_HISTORY_FILE = "training.json"

# Config fields that change the fine-tuned weights (and so key the weights cache).
_TRAINING_FIELDS = ("epochs", "batch_size", "lr", "max_steps", "temperature", "symmetric",
                    "doc_max_length", "query_max_length")


class DualEncoderRetriever:
    """Encodes queries on the fly and searches a faiss inner-product index of the documents."""

    def __init__(self, encoder: TextEncoder, index: Any, doc_ids: Sequence[str], *,
                 query_max_length: int, query_truncation: str, batch_size: int = 64):
        self.encoder = encoder
        self.index = index
        self.doc_ids = list(doc_ids)
        self.query_max_length = query_max_length
        self.query_truncation = query_truncation
        self.batch_size = batch_size

    def search(self, queries: Sequence[str], k: int) -> list[list[tuple[str, float]]]:
        if not len(queries):
            return []
        k = min(int(k), len(self.doc_ids))
        if k <= 0:
            return [[] for _ in queries]
        q = self.encoder.encode(list(queries), max_length=self.query_max_length,
                                truncation=self.query_truncation, batch_size=self.batch_size)
        scores, rows = self.index.search(np.ascontiguousarray(q, dtype=np.float32), k)
        return [
            [(self.doc_ids[r], float(s)) for s, r in zip(srow, rrow, strict=True) if r >= 0]
            for srow, rrow in zip(scores, rows, strict=True)
        ]


def training_pairs(problem: RetrievalProblem) -> tuple[list[tuple[str, str]], int]:
    """(query text, document text) pairs, plus how many referenced documents outside the corpus."""
    corpus = problem.corpus
    pairs, missing = [], 0
    for query, doc_id in problem.train_pairs:
        if doc_id not in corpus:
            missing += 1
            continue
        pairs.append((query, corpus.get(doc_id).text))
    return pairs, missing


def finetune(indexer: Any, encoder: TextEncoder, problem: RetrievalProblem, ctx: RunContext) -> dict:
    cfg = indexer.config
    pairs, missing = training_pairs(problem)
    if not pairs:
        raise ConfigError(
            f"dual-encoder: finetune=true but task {problem.task!r} provides no training pairs "
            "(use finetune=false for zero-shot)"
        )

    def train(directory: Path) -> dict:
        history = train_in_batch_negatives(
            encoder, pairs,
            epochs=cfg.epochs, batch_size=cfg.batch_size, lr=cfg.lr, max_steps=cfg.max_steps,
            temperature=cfg.temperature, seed=ctx.seed, symmetric=cfg.symmetric,
            query_max_length=cfg.query_max_length, doc_max_length=cfg.doc_max_length,
            query_truncation=problem.query_truncation, progress=ctx.progress,
            description=f"fine-tuning {encoder.name} ({len(pairs)} pairs)",
        )
        history["missing_documents"] = missing
        encoder.save(directory)
        (directory / _HISTORY_FILE).write_text(json.dumps(history), encoding="utf-8")
        return history

    key = {
        "problem": problem.fingerprint,
        "encoder": encoder.identity,
        "training": {f: getattr(cfg, f) for f in _TRAINING_FIELDS},
        "seed": ctx.seed,
        "device": encoder.precision,
    }

    def load(directory: Path) -> dict:
        encoder.load_weights(directory)
        return json.loads((directory / _HISTORY_FILE).read_text(encoding="utf-8"))

    hits = ctx.cache.hits
    history = ctx.cache.get_or_create(FINETUNE_NAMESPACE, key, lambda d: train(d), load)
    history["cached"] = ctx.cache.hits > hits
    return history


def build_retriever(indexer: Any, problem: RetrievalProblem, ctx: RunContext) -> DualEncoderRetriever:
    import faiss

    cfg = indexer.config
    details: dict[str, Any] = {"config": asdict(cfg)}
    indexer.details = details
    encoder = make_encoder(cfg.encoder, ctx.device)
    details["base_encoder"] = encoder.identity

    if cfg.finetune:
        start = time.perf_counter()
        history = finetune(indexer, encoder, problem, ctx)
        details["finetune_seconds"] = time.perf_counter() - start
        details["training"] = {k: v for k, v in history.items() if k != "losses"}
        details["training"]["losses"] = history.get("losses", [])
    details["encoder"] = encoder.identity

    start = time.perf_counter()
    texts = problem.corpus.texts  # the data model's contract: `text` is what models read
    emb = encode_cached(
        encoder, texts, ctx.cache, max_length=cfg.doc_max_length, truncation="right",
        batch_size=cfg.encode_batch_size, progress=ctx.progress,
        description=f"encoding {len(texts)} documents ({encoder.name})",
    )
    details["encode_seconds"] = time.perf_counter() - start

    index = faiss.IndexFlatIP(encoder.dim)
    if len(emb):
        index.add(np.ascontiguousarray(emb, dtype=np.float32))
    return DualEncoderRetriever(
        encoder, index, problem.corpus.ids,
        query_max_length=cfg.query_max_length, query_truncation=problem.query_truncation,
        batch_size=cfg.encode_batch_size,
    )
