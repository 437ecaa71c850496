"""The dual-encoder plugin, on the ``tiny`` encoder and a handful of documents."""

from __future__ import annotations

import subprocess
import sys

import indexbench_dual_encoder as plugin
import pytest

from indexbench import registry
from indexbench.cache import ArtifactCache
from indexbench.data import Corpus, Document
from indexbench.encoders import builtin_encoders
from indexbench.errors import ConfigError
from indexbench.protocols import QuerySet, RetrievalProblem, Retriever, RunContext
from indexbench.specs import IndexerSpec

DOCS = [
    "Aspirin reduces the risk of heart attack in adults over fifty.",
    "Vitamin D deficiency is common in northern latitudes during winter.",
    "Statins lower LDL cholesterol but may raise blood glucose.",
    "Exercise improves insulin sensitivity in type 2 diabetes.",
    "Smoking cessation lowers lung cancer incidence within ten years.",
    "Sleep deprivation impairs memory consolidation in students.",
    "Green tea catechins show weak antioxidant effects in vivo.",
    "Antibiotic overuse drives resistance in hospital bacteria.",
]
CORPUS = Corpus(Document(id=f"d{i}", text=t) for i, t in enumerate(DOCS))
PAIRS = [
    ("does aspirin prevent heart attacks", "d0"), ("vitamin d in winter", "d1"),
    ("statins and glucose", "d2"), ("exercise and insulin", "d3"), ("quitting smoking cancer", "d4"),
    ("sleep and memory", "d5"), ("green tea antioxidants", "d6"), ("antibiotic resistance", "d7"),
]


@pytest.fixture(autouse=True)
def encoders_only_registry(monkeypatch):
    """A registry with just the core encoders, independent of whatever else is installed."""
    monkeypatch.setattr(registry, "_registry",
                        registry.Registry(encoders={e.name: e for e in builtin_encoders()}))


def problem(pairs=(), query_truncation="right"):
    return RetrievalProblem(task="toy", corpus=CORPUS, train_pairs=list(pairs),
                            dev=QuerySet(queries={}, qrels={}), query_truncation=query_truncation)


def indexer(**options):
    return plugin.DualEncoderIndexer(plugin.DualEncoderConfig(encoder="tiny", **options))


def test_plugin_import_does_not_import_torch():
    code = "import indexbench_dual_encoder, sys; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_registers_a_retrieval_indexer_with_typed_options():
    entries = []
    plugin.register_indexers(register=entries.append)
    (entry,) = entries
    assert entry.name == "dual-encoder" and entry.kind == "retrieval"
    spec = IndexerSpec.parse("dual-encoder:finetune=true:max_steps=5:lr=1e-3:encoder=tiny")
    config = spec.build_config(entry)
    assert config == plugin.DualEncoderConfig(finetune=True, max_steps=5, lr=1e-3, encoder="tiny")
    assert entry.factory(config).name == "dual-encoder"


def test_retriever_ranks_exact_duplicate_first_in_descending_order():
    retriever = indexer().build_retriever(problem(), RunContext())
    assert isinstance(retriever, Retriever)
    rankings = retriever.search([DOCS[3], DOCS[6]], k=5)
    assert len(rankings) == 2
    for ranking, expected in zip(rankings, ["d3", "d6"], strict=True):
        assert len(ranking) == 5
        assert ranking[0][0] == expected and ranking[0][1] == pytest.approx(1.0, abs=1e-5)
        scores = [s for _, s in ranking]
        assert scores == sorted(scores, reverse=True)
    assert len(retriever.search(["anything"], k=100)[0]) == len(DOCS)
    assert retriever.search([], k=3) == []


def test_left_query_truncation_keeps_the_end_of_long_queries():
    tokens = len(indexer().build_retriever(problem(), RunContext()).encoder.tokenize([DOCS[5]])[0])
    long_query = "unrelated words about astronomy and telescopes " * 10 + DOCS[5]
    left = indexer(query_max_length=tokens).build_retriever(problem(query_truncation="left"), RunContext())
    top_id, top_score = left.search([long_query], k=1)[0][0]
    assert top_id == "d5" and top_score == pytest.approx(1.0, abs=1e-5)
    right = indexer(query_max_length=tokens).build_retriever(problem(), RunContext())
    assert right.search([long_query], k=1)[0][0][1] < 0.999


def test_finetuned_weights_and_embeddings_are_cached(tmp_path):
    options = dict(finetune=True, max_steps=3, batch_size=4, lr=1e-3)
    cache = ArtifactCache(tmp_path)
    first = indexer(**options)
    r1 = first.build_retriever(problem(PAIRS), RunContext(seed=0, cache=cache))
    assert cache.misses == 2 and cache.hits == 0  # weights + corpus embeddings
    assert first.details["training"]["steps"] == 3 and not first.details["training"]["cached"]
    assert first.details["encoder"]["weights"].startswith("sha256:")

    second = indexer(**options)
    r2 = second.build_retriever(problem(PAIRS), RunContext(seed=0, cache=cache))
    assert cache.hits == 2 and second.details["training"]["cached"]
    assert second.details["encoder"] == first.details["encoder"]
    queries = [q for q, _ in PAIRS]
    assert r1.search(queries, k=3) == r2.search(queries, k=3)

    indexer(**options).build_retriever(problem(PAIRS), RunContext(seed=1, cache=cache))
    assert cache.misses == 4  # another seed: new weights, new embeddings


def test_finetune_without_cache_and_without_pairs():
    retriever = indexer(finetune=True, max_steps=2, batch_size=4).build_retriever(problem(PAIRS), RunContext())
    assert len(retriever.search(["aspirin"], k=2)[0]) == 2
    with pytest.raises(ConfigError, match="no training pairs"):
        indexer(finetune=True).build_retriever(problem(), RunContext())


def test_ivf_index_finds_most_exact_neighbours_and_repeats():
    import numpy as np
    from indexbench_dual_encoder._impl import dense_index

    rng = np.random.default_rng(0)
    centres = rng.normal(size=(20, 16))
    emb = centres[rng.integers(0, 20, size=2000)] + 0.3 * rng.normal(size=(2000, 16))
    emb = (emb / np.linalg.norm(emb, axis=1, keepdims=True)).astype(np.float32)
    queries = emb[:100] + 0.05 * rng.normal(size=(100, 16)).astype(np.float32)
    _, exact = dense_index(emb, "flat").search(queries, 10)
    ivf = dense_index(emb, "ivf", nprobe=8, seed=3)
    assert ivf.nlist == 2000 // 39 and ivf.nprobe == 8  # 4·√n = 178 cells, capped by faiss's 39 rows a cell
    _, approx = ivf.search(queries, 10)
    overlap = np.mean([len(set(a) & set(e)) / 10 for a, e in zip(approx, exact)])
    assert overlap >= 0.8
    _, again = dense_index(emb, "ivf", nprobe=8, seed=3).search(queries, 10)
    np.testing.assert_array_equal(again, approx)  # seeded k-means: the same cells every time
    # All cells searched: exactly the flat index's neighbours.
    _, every_cell = dense_index(emb, "ivf", nprobe=10_000, seed=3).search(queries, 10)
    np.testing.assert_array_equal(np.sort(every_cell, axis=1), np.sort(exact, axis=1))


def test_ivf_dual_encoder_on_a_tiny_corpus_and_a_bad_index_kind():
    retriever = indexer(index="ivf").build_retriever(problem(), RunContext())
    assert retriever.index.nlist == 1  # 8 documents: one cell, so exact
    (ranking,) = retriever.search([DOCS[3]], k=3)
    assert ranking[0][0] == "d3"
    with pytest.raises(ConfigError, match="option 'index' must be one of flat, ivf, got 'hnsw'"):
        indexer(index="hnsw")
