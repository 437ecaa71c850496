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
        "device": encoder.training_precision,
    }

    def load(directory: Path) -> dict:
        encoder.load_weights(directory)
        return json.loads((directory / _HISTORY_FILE).read_text(encoding="utf-8"))

    hits = ctx.cache.hits
    history = ctx.cache.get_or_create(FINETUNE_NAMESPACE, key, lambda d: train(d), load)
    history["cached"] = ctx.cache.hits > hits
    return history


INDEX_KINDS = ("flat", "ivf")


def check_index_kind(kind: str) -> None:
    if kind not in INDEX_KINDS:
        raise ConfigError(f"dual-encoder option 'index' must be one of {', '.join(INDEX_KINDS)}, not {kind!r}")


def dense_index(emb: np.ndarray, kind: str, *, nlist: int = 0, nprobe: int = 16, seed: int = 0) -> Any:
    """A faiss inner-product index over the rows of ``emb``: exact (``flat``) or an inverted file
    (``ivf``) of ``nlist`` cells (0: 4·√n, at most one per 39 rows, faiss's training minimum)
    whose k-means is seeded, searching ``nprobe`` cells."""
    import faiss

    check_index_kind(kind)
    data = np.ascontiguousarray(emb, dtype=np.float32)
    dim = data.shape[1]
    if kind == "flat" or len(data) == 0:
        index = faiss.IndexFlatIP(dim)
    else:
        cells = nlist or int(4 * np.sqrt(len(data)))
        cells = max(1, min(cells, len(data) // 39 or 1))
        index = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, cells, faiss.METRIC_INNER_PRODUCT)
        index.cp.seed = int(seed)
        index.train(data)
        index.nprobe = min(max(1, int(nprobe)), cells)
    if len(data):
        index.add(data)
    return index


def build_retriever(indexer: Any, problem: RetrievalProblem, ctx: RunContext) -> DualEncoderRetriever:
    cfg = indexer.config
    details: dict[str, Any] = {"config": asdict(cfg)}
    indexer.details = details
    encoder = make_encoder(cfg.encoder, ctx.device, cfg.precision)
    details["base_encoder"] = encoder.identity
    details["precision"] = encoder.precision

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

    start = time.perf_counter()
    index = dense_index(emb, cfg.index, nlist=cfg.nlist, nprobe=cfg.nprobe, seed=ctx.seed)
    details["index"] = {"kind": cfg.index, "seconds": time.perf_counter() - start,
                        **({"nlist": index.nlist, "nprobe": index.nprobe} if cfg.index == "ivf" else {})}
    return DualEncoderRetriever(
        encoder, index, problem.corpus.ids,
        query_max_length=cfg.query_max_length, query_truncation=problem.query_truncation,
        batch_size=cfg.encode_batch_size,
    )
