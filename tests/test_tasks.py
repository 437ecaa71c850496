"""The task protocols of DESIGN.md, on toy datasets built here and on the real data."""

from __future__ import annotations

import statistics

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from indexbench.data import Corpus, Dataset, Document
from indexbench.protocols import RunContext
from indexbench.tasks.document_retrieval import DocumentRetrievalTask
from indexbench.tasks.product_search import ProductSearchTask, build_queries, category_query, split_queries
from indexbench.tasks.recommendation import MAX_HISTORY, RecommendationTask, leave_one_out

STOP = frozenset({"and", "for", "the"})


def test_category_query_drops_root_stop_words_and_repeats():
    path = ("Industrial & Scientific", "Tapes, Adhesives & Sealants", "Tapes", "Duct Tapes")
    assert category_query(path, STOP) == "tapes adhesives sealants duct"
    assert category_query(("Root",), STOP) == ""
    assert category_query(("Root", "Lab & Scientific Products", "Lab Tubing"), STOP) == "lab scientific products tubing"


def toy_catalog() -> Corpus:
    def doc(i, *path):
        return Document(str(i), f"product {i}", title=f"Title {i}", categories=("Store", *path))

    return Corpus([
        doc(0, "Tapes", "Duct Tapes"),
        doc(1, "Tapes", "Duct Tapes"),
        doc(2, "Tapes", "Tapes Duct"),   # same words, other order: a different query
        doc(3, "Lab", "Tubing"),
        doc(4),                          # no path below the root: no query
    ])


def test_identical_queries_are_merged_and_list_every_item():
    queries = build_queries(toy_catalog())
    assert queries == {"tapes duct": ["0", "1", "2"], "lab tubing": ["3"]}


def test_split_is_70_10_20_fixed_and_disjoint():
    texts = [f"query {i}" for i in range(100)]
    train, dev, test = split_queries(texts)
    assert (len(train), len(dev), len(test)) == (70, 10, 20)
    assert set(train) | set(dev) | set(test) == set(texts)
    assert not set(train) & set(test) and not set(dev) & set(test)
    assert split_queries(list(reversed(texts))) == (train, dev, test)  # order of input is irrelevant


def sequences_dataset(sequences: dict[str, list[int]]) -> Dataset:
    n = 1 + max(i for seq in sequences.values() for i in seq)
    corpus = Corpus(Document(str(i), f"text {i}", title=f"T{i}") for i in range(n))
    return Dataset("toy", corpus, interactions={u: [str(i) for i in s] for u, s in sequences.items()})


def test_leave_one_out_targets_and_histories():
    ds = sequences_dataset({"u": [0, 1, 2, 3, 4]})
    pairs, dev, test, sequences = leave_one_out(ds.corpus, ds.interactions)
    # Items 1 and 2 are training targets; 3 is the dev target; 4 the test target.
    assert pairs == [("T0", "1"), ("T0 ; T1", "2")]
    assert dev.queries == {"u": "T0 ; T1 ; T2"} and dev.qrels == {"u": {"3": 1}}
    assert test.queries == {"u": "T0 ; T1 ; T2 ; T3"} and test.qrels == {"u": {"4": 1}}
    assert sequences == {"u": ["0", "1", "2"]} and dev.histories == {"u": ["0", "1", "2"]}
    assert test.histories == {"u": ["0", "1", "2", "3"]}


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.sampled_from("abcdefgh"), st.lists(st.integers(0, 9), min_size=1, max_size=30),
                       min_size=1))
def test_no_dev_or_test_target_leaks_into_what_an_indexer_sees(raw):
    """Positions, not item ids, are what must not leak: a user may buy the dev target's item
    earlier too, and then it is a fair training target there."""
    ds = sequences_dataset(raw)
    pairs, dev, test, sequences = leave_one_out(ds.corpus, ds.interactions)
    problem, test_set = RecommendationTask().split(ds)
    assert problem.sequences == sequences and problem.dev == dev and test_set == test
    titles = lambda items: " ; ".join(f"T{i}" for i in items)  # noqa: E731
    expected_pairs = []
    for user, items in ds.interactions.items():
        n = len(items)
        # Training targets are positions 1 .. n-3, each after the titles of (at most) 20 before it.
        expected_pairs += [(titles(items[max(0, t - MAX_HISTORY):t]), items[t]) for t in range(1, n - 2)]
        if n >= 3:
            assert sequences[user] == items[: n - 2] and dev.histories[user] == items[: n - 2]
            assert dev.qrels[user] == {items[n - 2]: 1}
        else:
            assert user not in dev.queries and len(sequences[user]) == max(1, n - 1)
        if n >= 2:  # the test input is exactly the sequence before the target
            assert test.histories[user] == items[: n - 1] and test.qrels[user] == {items[n - 1]: 1}
            assert test.queries[user] == titles(items[max(0, n - 1 - MAX_HISTORY): n - 1])
        else:
            assert user not in test.queries
    assert pairs == expected_pairs


def test_history_is_capped_to_the_most_recent_items():
    ds = sequences_dataset({"u": list(range(30))})
    pairs, _, test, _ = leave_one_out(ds.corpus, ds.interactions)
    history = test.queries["u"].split(" ; ")
    assert len(history) == MAX_HISTORY and history[-1] == "T28" and history[0] == "T9"
    assert len(pairs) == 30 - 3
    problem, _ = RecommendationTask().split(ds)
    assert problem.query_truncation == "left"


def test_document_retrieval_uses_train_for_pairs_and_test_for_scoring():
    corpus = Corpus(Document(d, f"doc {d}") for d in "abc")
    ds = Dataset("toy", corpus, queries={"q1": "one", "q2": "two", "q3": "three"},
                 qrels={"train": {"q1": {"a": 1, "b": 0}}, "test": {"q2": {"c": 2}, "q3": {"a": 0}}})
    problem, test = DocumentRetrievalTask().split(ds)
    assert problem.train_pairs == [("one", "a")]
    assert test.queries == {"q2": "two"}  # q3 has no relevant document and cannot be scored


class Oracle:
    """Returns the relevant documents of each query first: every metric must be 1."""

    name = "oracle"

    def __init__(self, answers: dict[str, list[str]]):
        self.answers = answers

    def build_retriever(self, problem, ctx):
        return self

    def search(self, queries, k):
        return [[(d, 1.0 / (r + 1)) for r, d in enumerate(self.answers[q][:k])] for q in queries]


def test_ranking_task_scores_a_perfect_retriever_as_one_and_times_it():
    ds = Dataset("toy", toy_catalog())
    queries = build_queries(ds.corpus)
    result = ProductSearchTask().evaluate(Oracle(queries), ds, RunContext())
    assert result.metrics == {"ndcg@5": 1.0, "map@5": 1.0, "recall@10": 1.0}
    assert {"fit_s", "search_s", "queries_per_s", "latency_p50_ms", "latency_p95_ms"} <= set(result.timings)


def test_tasks_skip_datasets_they_cannot_use():
    plain = Dataset("plain", Corpus([Document("a", "x")]))
    oracle = Oracle({})
    assert "no category paths" in ProductSearchTask().skip_reason(oracle, plain)
    assert "no user interaction" in RecommendationTask().skip_reason(oracle, plain)
    assert "no test qrels" in DocumentRetrievalTask().skip_reason(oracle, plain)
    assert "neither build_retriever nor assign_ids" in ProductSearchTask().skip_reason(object(), plain)


@pytest.mark.realdata
def test_product_search_protocol_on_amazon_scientific(amazon_scientific):
    problem, test = ProductSearchTask().split(amazon_scientific)
    n_queries = len(problem.dev) + len(test) + len({q for q, _ in problem.train_pairs})
    assert n_queries == 755
    assert statistics.median(len(v) for v in build_queries(amazon_scientific.corpus).values()) == 2
    assert (len(problem.dev), len(test)) == (76, 151)


@pytest.mark.realdata
def test_recommendation_protocol_on_amazon_scientific(amazon_scientific):
    problem, test = RecommendationTask().split(amazon_scientific)
    assert len(test) == len(problem.dev) == 8317
    assert len(problem.train_pairs) == 58492 - 3 * 8317
