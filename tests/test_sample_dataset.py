"""The built-in sample dataset: deterministic, and enough for every task."""

from __future__ import annotations

import re
import subprocess
import sys
from collections import Counter
from itertools import pairwise

import pytest

from indexbench.datasets import builtin_datasets, load_dataset
from indexbench.datasets.sample import ROOT, load_sample

# Cached artifacts and committed baselines are keyed by this fingerprint: a change to the
# generator must be deliberate, and comes with re-running the baselines.
PINNED_FINGERPRINT = "1e2bd9d250017df5"


@pytest.fixture(scope="module")
def sample():
    return load_sample()


def test_sizes(sample):
    assert sample.name == "sample"
    assert len(sample.corpus) == 300
    assert len(sample.interactions) == 300
    assert len(sample.qrels["train"]) == 150
    assert len(sample.qrels["test"]) == 60
    assert set(sample.queries) == set(sample.qrels["train"]) | set(sample.qrels["test"])


def test_deterministic_in_process_and_across_processes(sample):
    assert load_sample().fingerprint == sample.fingerprint
    code = "from indexbench.datasets.sample import load_sample; print(load_sample().fingerprint)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == sample.fingerprint


def test_fingerprint_is_pinned(sample):
    assert sample.fingerprint == PINNED_FINGERPRINT


def test_registered_entry_loads_without_files(tmp_path):
    entry = next(e for e in builtin_datasets() if e.name == "sample")
    assert load_dataset(entry, tmp_path / "no-such-dir").fingerprint == PINNED_FINGERPRINT


def test_texts_are_short_and_carry_no_category_path(sample):
    for doc in sample.corpus:
        assert 5 <= len(doc.title.split()) <= 12
        assert doc.text.startswith(doc.title)
        assert 25 <= len(doc.text.split()) <= 60
        assert ROOT not in doc.text


def test_id_quality_has_levels_2_and_3(sample):
    docs = list(sample.corpus)
    assert {d.categories[0] for d in docs if d.categories} == {ROOT}
    level2 = Counter(d.categories[1] for d in docs if len(d.categories) > 1)
    level3 = Counter(d.categories[2] for d in docs if len(d.categories) > 2)
    assert len(level2) == 5 and sum(level2.values()) == 295
    assert len(level3) == 15 and sum(level3.values()) == 290
    # Like the real data, some items lack a level (tasks must leave them out of that level).
    assert sum(1 for d in docs if not d.categories) == 5


def test_product_search_gets_enough_distinct_queries(sample):
    queries = set()
    for doc in sample.corpus:
        words: list[str] = []
        for word in re.findall(r"[a-z]+", " ".join(doc.categories[1:]).lower()):
            if word not in {"and", "of", "the"} and word not in words:
                words.append(word)
        if words:
            queries.add(" ".join(words))
    assert len(queries) >= 50


def test_recommendation_sequences(sample):
    same_department = pairs = 0
    for user, items in sample.interactions.items():
        assert 5 <= len(items) <= 12, user
        assert len(set(items)) == len(items), user
        assert all(item in sample.corpus for item in items)
        for a, b in pairwise(items):
            ca, cb = sample.corpus.get(a).categories, sample.corpus.get(b).categories
            if len(ca) > 1 and len(cb) > 1:
                pairs += 1
                same_department += ca[1] == cb[1]
    assert same_department / pairs > 0.6  # users mostly stay in one department: signal


def test_document_retrieval_qrels(sample):
    assert not set(sample.qrels["train"]) & set(sample.qrels["test"])
    for split in sample.qrels.values():
        for query_id, relevant in split.items():
            assert 1 <= len(relevant) <= 3
            assert all(doc_id in sample.corpus and score == 1 for doc_id, score in relevant.items())
            assert 2 <= len(sample.queries[query_id].split()) <= 12


def test_query_words_point_at_the_relevant_products(sample):
    """A plain word-overlap ranking finds the answers: the text carries signal."""
    def words(text: str) -> set[str]:
        return set(re.findall(r"[a-z0-9]+", text.lower()))

    docs = [(d.id, words(d.text)) for d in sample.corpus]
    found = 0
    for query_id, relevant in sample.qrels["test"].items():
        q = words(sample.queries[query_id])
        top = sorted(docs, key=lambda doc: -len(q & doc[1]))[:10]
        found += any(doc_id in relevant for doc_id, _ in top)
    assert found / len(sample.qrels["test"]) > 0.8
