"""SEAL's evidence aggregation (Bevilacqua et al., 2022, §3.3; `aggregate_evidence` in the
authors' seal/keys.py): from the n-grams a query generated to a score per document.

An n-gram n is evidence in proportion to how much likelier the model finds it for this query than
the corpus does:

    w(n) = max(0, log(P(n|q) · (1 − P(n))) − log(P(n) · (1 − P(n|q))))^α

with P(n|q) the model's probability of writing n (the beam's score) and P(n) its smoothed corpus
frequency (count + s) / (tokens + s). A document scores the weights of the n-grams it contains,
best first, each discounted by how much of it is already covered: an n-gram whose token types
all appeared in better n-grams of that document counts (1 − β) of its weight, one with only new
types counts fully (the coverage weight β = 0.8 in SEAL).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from indexbench.ngram_index import CorpusIndex

MAX_LOG_PROB = -1e-10
"""log P(n|q) is capped just below 0 (as the authors' code does), so 1 − P(n|q) stays positive."""


@dataclass(frozen=True)
class EvidenceOptions:
    alpha: float = 2.0
    coverage: float = 0.8
    smoothing: float = 5.0


def ngram_weight(log_p_query: float, count: int, n_tokens: int, options: EvidenceOptions) -> float:
    """w(n) from log P(n|q), the n-gram's corpus count and the corpus size in tokens."""
    if count <= 0:
        return 0.0
    log_p_query = min(log_p_query, MAX_LOG_PROB)
    log_p_corpus = math.log((count + options.smoothing) / (n_tokens + options.smoothing))
    score = (log_p_query + math.log1p(-math.exp(log_p_corpus))) - (log_p_corpus + math.log1p(-math.exp(log_p_query)))
    return max(score, 0.0) ** options.alpha


def unigram_weight(log_p_query: float, count: int, n_tokens: int, options: EvidenceOptions) -> float:
    """The weight of a first-step token used as unigram evidence: w(n) without the power α, as
    in the authors' code."""
    return ngram_weight(log_p_query, count, n_tokens, EvidenceOptions(1.0, options.coverage, options.smoothing))


def score_documents(weights: Mapping[tuple[int, ...], float], index: CorpusIndex,
                    options: EvidenceOptions) -> dict[int, float]:
    """Aggregate weighted n-grams into document scores (document index → score)."""
    per_doc: dict[int, list[tuple[float, tuple[int, ...]]]] = {}
    for ngram, weight in weights.items():
        if weight <= 0.0:
            continue
        node = index.find(ngram)
        if node is None:  # generated under the constraint, so it occurs; a hand-made input may not
            continue
        for doc in index.documents(node).tolist():
            per_doc.setdefault(doc, []).append((weight, ngram))
    scores = {}
    for doc, found in per_doc.items():
        covered: set[int] = set()
        total = 0.0
        for weight, ngram in sorted(found, key=lambda x: (-x[0], x[1])):
            types = set(ngram)
            fresh = len(types - covered) / len(types)
            total += weight * (1.0 - options.coverage + options.coverage * fresh)
            covered |= types
        scores[doc] = total
    return scores


def rank(scores: Mapping[int, float], k: int) -> list[tuple[int, float]]:
    """The ``k`` best documents, best first (ties by corpus order, so the ranking is stable)."""
    if not scores:
        return []
    docs = np.fromiter(scores.keys(), dtype=np.int64, count=len(scores))
    values = np.fromiter(scores.values(), dtype=np.float64, count=len(scores))
    order = np.lexsort((docs, -values))[:k]
    return [(int(docs[i]), float(values[i])) for i in order]


__all__ = ["EvidenceOptions", "ngram_weight", "rank", "score_documents", "unigram_weight"]
