"""Metric values against hand-computed examples."""

from __future__ import annotations

import itertools
import math
import random

import pytest

from indexbench.data import SemanticIds
from indexbench.errors import ConfigError, IndexbenchError
from indexbench.metrics import ami, id_diagnostics, per_query_metrics, ranking_metrics

L3 = math.log2(3)
L5 = math.log2(5)


def run(*doc_ids: str) -> list[tuple[str, float]]:
    """A ranking with arbitrary (here: all equal) scores; only the order may matter."""
    return [(d, 1.0) for d in doc_ids]


# q1: 3 relevant (a, b, c), retrieved at ranks 2 and 4; c never retrieved.
# q2: graded, p (rel 2) at rank 1, q (rel 1) at rank 3.
QRELS = {
    "q1": {"a": 1, "b": 1, "c": 1, "n": 0},
    "q2": {"p": 2, "q": 1},
}
RANKINGS = {
    "q1": run("x", "a", "y", "b", "z", "w"),
    "q2": run("p", "r", "q"),
}

# q1  DCG@5 = 1/log2(3) + 1/log2(5)            IDCG@5 = 1 + 1/log2(3) + 1/log2(4)
#     AP@5 = (1/2 + 2/4) / 3 = 1/3               R@5 = 2/3, R@1 = 0, RR@10 = 1/2
# q2  DCG@5 = 2/log2(2) + 1/log2(4) = 2.5       IDCG@5 = 2 + 1/log2(3)   (gain = grade)
#     AP@5 = (1/1 + 2/3) / 2 = 5/6               R@5 = 1,  R@1 = 1/2,    RR@10 = 1
Q1 = {
    "ndcg@5": (1 / L3 + 1 / L5) / (1 + 1 / L3 + 0.5),
    "map@5": 1 / 3,
    "recall@5": 2 / 3,
    "recall@1": 0.0,
    "mrr@10": 0.5,
}
Q2 = {
    "ndcg@5": 2.5 / (2 + 1 / L3),
    "map@5": 5 / 6,
    "recall@5": 1.0,
    "recall@1": 0.5,
    "mrr@10": 1.0,
}


def test_hand_computed_two_queries():
    got = ranking_metrics(RANKINGS, QRELS, list(Q1))
    assert set(got) == set(Q1)
    for name in Q1:
        assert got[name] == pytest.approx((Q1[name] + Q2[name]) / 2, abs=1e-9), name


def test_per_query_values():
    got = per_query_metrics(RANKINGS, QRELS, list(Q1))
    assert set(got) == {"q1", "q2"}
    for name in Q1:
        assert got["q1"][name] == pytest.approx(Q1[name], abs=1e-9), name
        assert got["q2"][name] == pytest.approx(Q2[name], abs=1e-9), name


def test_ap_at_k_divides_by_all_relevant_not_min_r_k():
    # One relevant document at rank 1 of three: P@1 = 1, divided by R = 3 (not min(3, 1) = 1).
    got = ranking_metrics({"q": run("a", "x")}, {"q": {"a": 1, "b": 1, "c": 1}}, ["map@1"])
    assert got["map@1"] == pytest.approx(1 / 3, abs=1e-9)


def test_mrr_respects_its_cutoff():
    # First relevant document at rank 3: RR@2 = 0, RR@10 = 1/3.
    got = ranking_metrics({"q": run("x", "y", "a")}, {"q": {"a": 1}}, ["mrr@2", "mrr@10"])
    assert got["mrr@2"] == 0.0
    assert got["mrr@10"] == pytest.approx(1 / 3, abs=1e-9)


def test_tied_scores_keep_the_retrievers_order():
    # pytrec_eval alone would break the tie by document id (descending), putting "b" first and
    # scoring RR = 1/2; the retriever ranked "a" first, so RR must be 1.
    qrels = {"q": {"a": 1}}
    tied = {"q": [("a", 0.7), ("b", 0.7)]}
    assert ranking_metrics(tied, qrels, ["mrr@10"])["mrr@10"] == 1.0
    # Scores that disagree with the order do not re-order it either: the list is best first.
    misordered = {"q": [("a", 0.1), ("b", 0.9)]}
    assert ranking_metrics(misordered, qrels, ["mrr@10", "ndcg@1"]) == {"mrr@10": 1.0, "ndcg@1": 1.0}


def test_queries_without_a_ranking_count_as_zero():
    qrels = {"q1": {"a": 1}, "q2": {"b": 1}, "q3": {"c": 1}, "q_unjudged": {"d": 0}}
    # q1 perfect, q2 empty ranking, q3 missing: mean over the 3 judged queries = (1 + 0 + 0) / 3.
    # q_unjudged (no relevant document) is left out; "q_extra" is not in the qrels and ignored.
    rankings = {"q1": run("a"), "q2": [], "q_extra": run("zzz")}
    got = ranking_metrics(rankings, qrels, ["recall@10", "ndcg@10", "mrr@10", "map@10"])
    assert got == {name: pytest.approx(1 / 3, abs=1e-9) for name in got}
    per_query = per_query_metrics(rankings, qrels, ["recall@10"])
    assert per_query == {"q1": {"recall@10": 1.0}, "q2": {"recall@10": 0.0}, "q3": {"recall@10": 0.0}}


def test_duplicate_documents_count_at_their_first_position():
    # "a" listed at ranks 1 and 3: it counts once, at rank 1; recall@10 = 1/2 (b missing).
    got = ranking_metrics({"q": run("a", "x", "a")}, {"q": {"a": 1, "b": 1}}, ["mrr@10", "recall@10"])
    assert got == {"mrr@10": 1.0, "recall@10": 0.5}


def test_unknown_metric_lists_valid_ones():
    for bad in ["precision@5", "ndcg", "ndcg@0", "map@x"]:
        with pytest.raises(ConfigError, match="valid metrics: ndcg@K, map@K, recall@K, mrr@K"):
            ranking_metrics(RANKINGS, QRELS, [bad])


def test_nothing_judged_is_an_error():
    with pytest.raises(IndexbenchError, match="no query"):
        ranking_metrics(RANKINGS, {"q": {"a": 0}}, ["ndcg@10"])


# --------------------------------------------------------------------------- AMI


def test_ami_identical_partitions_with_any_labels():
    truth = ["x", "x", "y", "y", "z", "z"]
    pred = [(1, 0), (1, 0), (0, 2), (0, 2), (5,), (5,)]  # tuples: one label each, not a 2-D array
    assert ami(truth, pred) == pytest.approx(1.0, abs=1e-12)


def test_ami_independent_labels_is_near_zero():
    rng = random.Random(0)
    truth = [rng.randrange(5) for _ in range(5000)]
    pred = [rng.randrange(8) for _ in range(5000)]
    assert abs(ami(truth, pred)) < 0.01


def test_ami_rejects_unequal_lengths():
    with pytest.raises(ValueError):
        ami([1, 2], [1])


# --------------------------------------------------------------------------- ID diagnostics

HAND_IDS = SemanticIds(
    ids={
        "d1": (0, 0, 0),
        "d2": (0, 0, 1),
        "d3": (0, 1, 0),
        "d4": (1, 2, 0),
        "d5": (1, 2, 1),
        "d6": (2, 1, 0),
    },
    codebook_sizes=(4, 3, 8),
)


def test_diagnostics_hand_computed():
    got = id_diagnostics(HAND_IDS)
    expected = {
        # position 1 codes 0,0,0,1,1,2: p = 1/2, 1/3, 1/6; exp(H) = 2^(1/2) 3^(1/3) 6^(1/6)
        "perplexity@1": 2 ** (1 / 2) * 3 ** (1 / 3) * 6 ** (1 / 6),
        "utilization@1": 3 / 4,
        # all 15 pairs share the empty prefix; same first code: C(3,2) + C(2,2) = 4 -> 11/15
        "diff_ratio@1": 11 / 15,
        # position 2 codes 0,0,1,2,2,1: uniform over 3 codes
        "perplexity@2": 3.0,
        "utilization@2": 3 / 3,
        # groups by 1st code {d1,d2,d3} {d4,d5} {d6}: 3 + 1 pairs; same 2nd code: (d1,d2), (d4,d5)
        "diff_ratio@2": 2 / 4,
        # position 3 codes 0,1,0,0,1,0: p = 2/3, 1/3; exp(H) = (3/2)^(2/3) 3^(1/3)
        "perplexity@3": (3 / 2) ** (2 / 3) * 3 ** (1 / 3),
        "utilization@3": 2 / 8,
        # pairs sharing 2 codes: (d1,d2), (d4,d5); both differ at position 3
        "diff_ratio@3": 1.0,
        # 2-prefixes (0,0) and (1,2) are shared by d1,d2 and d4,d5: 4 of 6 documents
        "collision_rate": 4 / 6,
        "max_docs_per_prefix": 2.0,
    }
    assert set(got) == set(expected)
    for name, value in expected.items():
        assert got[name] == pytest.approx(value, abs=1e-9), name


def test_diff_ratio_closed_form_matches_pair_enumeration():
    rng = random.Random(1)
    codes = {(rng.randrange(3), rng.randrange(3), i) for i in range(60)}
    ids = SemanticIds({f"d{i}": c for i, c in enumerate(sorted(codes))}, codebook_sizes=(3, 3, 60))
    got = id_diagnostics(ids)
    for t in range(3):
        pairs = [(a, b) for a, b in itertools.combinations(ids.ids.values(), 2) if a[:t] == b[:t]]
        brute = sum(a[t] != b[t] for a, b in pairs) / len(pairs)
        assert got[f"diff_ratio@{t + 1}"] == pytest.approx(brute, abs=1e-12)


def test_diagnostics_without_collisions():
    ids = SemanticIds({"a": (0, 0), "b": (1, 0), "c": (2, 0)}, codebook_sizes=(3, 1))
    got = id_diagnostics(ids)
    assert got["collision_rate"] == 0.0
    assert got["max_docs_per_prefix"] == 1.0
    assert got["perplexity@2"] == 1.0  # one code used: no diversity
    assert got["diff_ratio@2"] == 1.0  # no pair shares the prefix: nothing left to separate


def test_diagnostics_reject_empty_ids():
    with pytest.raises(ValueError):
        id_diagnostics(SemanticIds({}, codebook_sizes=(4, 4)))
