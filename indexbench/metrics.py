"""Metrics: ranking quality (through ir-measures), clustering agreement (AMI) and ID diagnostics.

Importing this module is free: ir-measures and scikit-learn are imported inside the functions
that need them, so the CLI can list tasks without loading either.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Hashable, Mapping, Sequence

from .data import SemanticIds
from .errors import ConfigError, IndexbenchError

# Our metric names -> the ir-measures measure family computing them.
_FAMILIES = {"ndcg": "nDCG", "map": "AP", "recall": "R", "mrr": "RR"}
_NAME = re.compile(r"^(ndcg|map|recall|mrr)@([1-9][0-9]*)$")
VALID_METRIC_FORMS = ("ndcg@K", "map@K", "recall@K", "mrr@K")


def _parse_name(name: str) -> tuple[str, int]:
    match = _NAME.match(name.strip().lower())
    if match is None:
        raise ConfigError(
            f"unknown ranking metric {name!r}; valid metrics: {', '.join(VALID_METRIC_FORMS)} "
            "with K a positive integer (e.g. ndcg@10, map@5, recall@100, mrr@10)"
        )
    return match.group(1), int(match.group(2))


def _positional_run(
    rankings: Mapping[str, Sequence[tuple[str, float]]], qids: set[str]
) -> dict[str, list[str]]:
    """Each judged query's ranking as document ids, best first, duplicates dropped.

    A document listed twice keeps its first (best) position: a run cannot hold it twice, and
    keeping the later score would silently move it down.
    """
    run: dict[str, list[str]] = {}
    for qid, ranking in rankings.items():
        qid = str(qid)
        if qid not in qids:
            continue  # queries absent from the qrels are not evaluated
        seen: dict[str, None] = {}
        for doc_id, _score in ranking:
            seen.setdefault(str(doc_id), None)
        if seen:
            run[qid] = list(seen)
    return run


def _scored(run: dict[str, list[str]], depth: int) -> dict[str, dict[str, float]]:
    """The top ``depth`` documents of each ranking with strictly decreasing scores.

    pytrec_eval re-sorts every ranking by score and breaks ties by document id, so the scores a
    retriever returns (ties are common: beam search, BM25 on short texts) could re-order it.
    Scores derived from the rank position make the retriever's own order the one evaluated.
    """
    return {
        qid: {doc_id: float(depth - rank) for rank, doc_id in enumerate(docs[:depth])}
        for qid, docs in run.items()
    }


def per_query_metrics(
    rankings: Mapping[str, Sequence[tuple[str, float]]],
    qrels: Mapping[str, Mapping[str, int]],
    names: Sequence[str],
) -> dict[str, dict[str, float]]:
    """Per-query values ``{query id: {metric name: value}}``; see `ranking_metrics`.

    Every query of ``qrels`` with at least one relevant document is present; one with no ranking
    (or an empty one) scores 0 on every metric.
    """
    import ir_measures

    parsed = {name: _parse_name(name) for name in names}
    judged = {
        str(qid): {str(d): int(r) for d, r in docs.items()}
        for qid, docs in qrels.items()
        if any(int(r) > 0 for r in docs.values())
    }
    values = {qid: dict.fromkeys(parsed, 0.0) for qid in judged}
    if not judged or not parsed:
        return values
    run = _positional_run(rankings, set(judged))

    # Measures grouped by cutoff; each group is evaluated on the rankings cut at that depth.
    # That changes nothing for nDCG@k, AP@k and R@k (they only read the top k anyway) and is what
    # makes RR an RR@k: pytrec_eval's recip_rank has no cutoff of its own.
    by_depth: dict[int, dict[object, list[str]]] = {}
    for name, (family, k) in parsed.items():
        measure = getattr(ir_measures, _FAMILIES[family])
        measure = measure if family == "mrr" else measure @ k
        by_depth.setdefault(k, {}).setdefault(measure, []).append(name)

    for depth, measures in by_depth.items():
        evaluator = ir_measures.pytrec_eval.evaluator(list(measures), judged)
        for metric in evaluator.iter_calc(_scored(run, depth)):
            if metric.query_id in values:
                for name in measures[metric.measure]:
                    values[metric.query_id][name] = float(metric.value)
    return values


def ranking_metrics(
    rankings: Mapping[str, Sequence[tuple[str, float]]],
    qrels: Mapping[str, Mapping[str, int]],
    names: Sequence[str],
) -> dict[str, float]:
    """Mean ranking metrics over the judged queries, computed by ir-measures on pytrec_eval.

    ``rankings`` maps a query id to its documents, best first; only the order counts (the scores
    are replaced by ones derived from the rank position before evaluation, see `_scored`), and a
    document listed twice counts at its first position. ``names`` are lower-case
    ``ndcg@K``, ``map@K``, ``recall@K`` or ``mrr@K``; the result is keyed by the same names.

    The mean runs over every query of ``qrels`` with at least one document of relevance > 0: a
    judged query with no ranking scores 0 rather than vanishing from the mean, queries whose
    judgements are all 0 are left out, and rankings of queries absent from ``qrels`` are ignored.

    Definitions (R = the number of documents of relevance >= 1 in the query's qrels):

    * ``ndcg@K`` -- trec_eval ``ndcg_cut_K``: gain = the graded relevance itself, discount
      log2(rank + 1); the ideal DCG sorts all of the query's judged documents.
    * ``map@K`` -- trec_eval ``map_cut_K``: the sum, over relevant documents in the top K, of the
      precision at their rank, divided by R -- the *total* number of relevant documents, not
      min(R, K). A single relevant document at rank 1 of a query with R = 3 scores 1/3 at K = 1.
    * ``recall@K`` -- relevant documents in the top K divided by R.
    * ``mrr@K`` -- the reciprocal rank of the first relevant document if it lies in the top K,
      else 0 (trec_eval ``recip_rank`` on the ranking cut at K).
    """
    return mean_metrics(per_query_metrics(rankings, qrels, names), names)


def mean_metrics(per_query: Mapping[str, Mapping[str, float]], names: Sequence[str]) -> dict[str, float]:
    """The mean of each metric over the queries of `per_query_metrics`' result."""
    if not per_query:
        raise IndexbenchError("no query in the qrels has a relevant document; nothing to evaluate")
    return {
        name: math.fsum(values[name] for values in per_query.values()) / len(per_query)
        for name in dict.fromkeys(names)
    }


# --------------------------------------------------------------------------- clustering


def _as_ints(labels: Sequence[Hashable]) -> list[int]:
    # scikit-learn reads a sequence of tuples as a 2-D array, so every label becomes an int.
    index: dict[Hashable, int] = {}
    return [index.setdefault(label, len(index)) for label in labels]


def ami(labels_true: Sequence[Hashable], labels_pred: Sequence[Hashable]) -> float:
    """Adjusted mutual information (scikit-learn, arithmetic normalisation) of two labelings.

    Labels may be any hashable values (strings, tuples of ints, category paths).
    """
    if len(labels_true) != len(labels_pred):
        raise ValueError(f"label sequences differ in length: {len(labels_true)} vs {len(labels_pred)}")
    from sklearn.metrics import adjusted_mutual_info_score

    return float(adjusted_mutual_info_score(_as_ints(labels_true), _as_ints(labels_pred)))


# --------------------------------------------------------------------------- ID diagnostics


def _pairs(n: int) -> int:
    return n * (n - 1) // 2


def id_diagnostics(ids: SemanticIds) -> dict[str, float]:
    """Per-position usage statistics of semantic IDs, plus duplication before de-duplication.

    For each position t (reported 1-based as ``@t``), over all documents:

    * ``perplexity@t`` -- exp of the entropy of the distribution of codes at t: the effective
      number of codes in use (1 = every document has the same code).
    * ``utilization@t`` -- distinct codes used at t / ``codebook_sizes[t-1]``.
    * ``diff_ratio@t`` -- among pairs of documents sharing the first t-1 codes, the fraction
      whose code at t differs (for t = 1 the shared prefix is empty: all pairs). Computed from
      group sizes: pairs sharing the prefix minus pairs sharing the prefix plus code t. When no
      pair shares the prefix there is nothing left to separate and the value is 1.0.

    The last position conventionally de-duplicates, so duplication is measured on the first
    T-1 positions (for T = 1 that prefix is empty and every document collides with every other):

    * ``collision_rate`` -- fraction of documents whose (T-1)-prefix is shared with another.
    * ``max_docs_per_prefix`` -- the most documents sharing one (T-1)-prefix.
    """
    codes = [tuple(code) for code in ids.ids.values()]
    if not codes or ids.length == 0:
        raise ValueError("no semantic IDs to diagnose")
    n = len(codes)
    out: dict[str, float] = {}
    for t, size in enumerate(ids.codebook_sizes):
        usage = Counter(code[t] for code in codes)
        entropy = -math.fsum(c / n * math.log(c / n) for c in usage.values())
        out[f"perplexity@{t + 1}"] = math.exp(entropy)
        out[f"utilization@{t + 1}"] = len(usage) / size
        shared = sum(_pairs(s) for s in Counter(code[:t] for code in codes).values())
        same = sum(_pairs(s) for s in Counter(code[: t + 1] for code in codes).values())
        out[f"diff_ratio@{t + 1}"] = (shared - same) / shared if shared else 1.0
    prefixes = Counter(code[: ids.length - 1] for code in codes)
    out["collision_rate"] = sum(s for s in prefixes.values() if s > 1) / n
    out["max_docs_per_prefix"] = float(max(prefixes.values()))
    return out


__all__ = ["VALID_METRIC_FORMS", "ami", "id_diagnostics", "per_query_metrics", "ranking_metrics"]
