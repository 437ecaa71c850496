"""most-popular and sasrec: the recommenders that read item-ID histories."""

from __future__ import annotations

import pytest

from indexbench.cache import ArtifactCache
from indexbench.data import Corpus, Dataset, Document
from indexbench.errors import ConfigError
from indexbench.protocols import RunContext
from indexbench.registry import get_registry
from indexbench.runner import run_grid
from indexbench.tasks.recommendation import RecommendationTask


def chain_dataset(n_items: int = 30, n_users: int = 120, length: int = 8) -> Dataset:
    """Every user walks the item cycle from a start of their own: the next item is the current
    one plus one, which a sequence model learns and popularity cannot."""
    corpus = Corpus(Document(str(i), f"item {i}", title=f"item {i}") for i in range(n_items))
    interactions = {f"u{u}": [str((u * 7 + t) % n_items) for t in range(length)] for u in range(n_users)}
    return Dataset("chain", corpus, interactions=interactions)


def evaluate(name: str, dataset: Dataset, tmp_path, **options):
    entry = get_registry().indexer(name)
    indexer = entry.factory(entry.config_class(**options))
    ctx = RunContext(seed=0, cache=ArtifactCache(tmp_path / "cache"))
    return indexer, RecommendationTask().evaluate(indexer, dataset, ctx)


def test_most_popular_counts_training_parts_only_and_breaks_ties_by_corpus_order(tmp_path):
    corpus = Corpus(Document(str(i), f"item {i}") for i in range(6))
    # Item 5 is everyone's dev and test target: it must not count. Item 2 is bought most before.
    interactions = {"a": ["2", "1", "5", "5"], "b": ["2", "3", "5", "5"], "c": ["4", "0", "5", "5"]}
    dataset = Dataset("toy", corpus, interactions=interactions)
    problem, _ = RecommendationTask().split(dataset)
    indexer = get_registry().indexer("most-popular").factory(None)
    ranking = indexer.build_retriever(problem, RunContext()).search_histories([["0"], []], 6)
    assert [doc for doc, _ in ranking[0]] == ["2", "0", "1", "3", "4", "5"]  # 2 twice; then 1 each by order
    assert ranking[0] == ranking[1]
    assert indexer.details["n_counted_interactions"] == 6


def test_history_recommenders_skip_text_tasks_with_the_reason(tmp_path):
    records = run_grid(["most-popular", "sasrec"], ["product-search", "id-quality"], ["sample"], store=False,
                       cache_dir=tmp_path / "cache", device="cpu")
    reasons = {(r.indexer, r.task): (r.status, r.reason) for r in records}
    assert reasons[("sasrec", "product-search")] == (
        "skipped", "sasrec ranks items from users' item histories; product-search's queries are text")
    assert reasons[("most-popular", "id-quality")][0] == "skipped"


def test_sasrec_learns_the_next_item_where_popularity_cannot(tmp_path):
    dataset = chain_dataset()
    _, popular = evaluate("most-popular", dataset, tmp_path)
    indexer, sasrec = evaluate("sasrec", dataset, tmp_path, hidden=32, max_epochs=40, patience=40, lr=5e-3,
                               dropout=0.0)
    assert popular.metrics["recall@10"] < 0.5
    assert sasrec.metrics["recall@10"] > 0.9, sasrec.metrics
    training = indexer.details["training"]
    assert 1 <= training["best_epoch"] <= training["epochs_run"] == 40
    assert len(indexer.details["dev_curve"]) == 40


@pytest.mark.parametrize("loss", ["ce", "bce"])
def test_sasrec_learns_with_negatives_shared_by_the_batch(tmp_path, loss):
    indexer, sasrec = evaluate("sasrec", chain_dataset(), tmp_path, hidden=32, max_epochs=40, patience=40, lr=5e-3,
                               dropout=0.0, loss=loss, negatives=8, batch_size=8)
    assert sasrec.metrics["recall@10"] > 0.9, sasrec.metrics


def test_shared_negatives_follow_training_counts_and_never_draw_unseen_items():
    import numpy as np
    from indexbench_sasrec._train import popularity

    windows = np.array([[0, 1, 1, 1, 1], [0, 0, 0, 2, 1]])  # item 1 five times, item 2 once, 3 never
    weights = popularity(windows, n_items=3, exponent=0.5)
    assert weights.tolist() == pytest.approx([5 ** 0.5 / (5 ** 0.5 + 1), 1 / (5 ** 0.5 + 1), 0.0])
    assert popularity(windows, n_items=3, exponent=0.0).tolist() == pytest.approx([0.5, 0.5, 0.0])


def test_sasrec_same_seed_same_rankings_and_the_weights_are_cached(tmp_path):
    dataset = chain_dataset(n_users=40)
    options = {"hidden": 16, "max_epochs": 3, "loss": "bce"}
    cache = ArtifactCache(tmp_path / "cache")
    results = []
    for _ in range(2):
        entry = get_registry().indexer("sasrec")
        indexer = entry.factory(entry.config_class(**options))
        results.append(RecommendationTask().evaluate(indexer, dataset, RunContext(seed=3, cache=cache)))
    assert results[0].rankings == results[1].rankings
    assert (cache.misses, cache.hits) == (1, 1)


def test_sasrec_early_stopping_keeps_the_best_epoch(tmp_path):
    indexer, _ = evaluate("sasrec", chain_dataset(n_users=40), tmp_path, hidden=16, max_epochs=50, patience=2,
                          lr=0.05)
    training, curve = indexer.details["training"], indexer.details["dev_curve"]
    best = max(point["dev_ndcg@10"] for point in curve)
    assert training["best_dev_ndcg@10"] == best
    assert training["epochs_run"] - training["best_epoch"] == 2 or training["epochs_run"] == 50


def test_padding_does_not_change_a_history_state():
    import torch
    from indexbench_sasrec._model import SASRecModel

    torch.manual_seed(0)
    model = SASRecModel(n_items=10, hidden=8, blocks=2, heads=2, max_len=6, dropout=0.1).eval()
    with torch.no_grad():
        short = model(torch.tensor([[3, 4, 5]]))[:, -1]
        padded = model(torch.tensor([[0, 0, 0, 3, 4, 5]]))[:, -1]
    assert torch.allclose(short, padded, atol=1e-6) and torch.isfinite(padded).all()


def test_sasrec_refuses_options_that_cannot_work():
    entry = get_registry().indexer("sasrec")
    with pytest.raises(ConfigError, match="hidden \\(30\\) must be a multiple of heads \\(4\\)"):
        entry.factory(entry.config_class(hidden=30, heads=4))
    from indexbench.specs import IndexerSpec

    with pytest.raises(ConfigError, match="loss"):
        IndexerSpec.parse("sasrec:loss=hinge").build_config(entry)


def test_sasrec_ranks_items_absent_from_training_last(tmp_path):
    # Four catalogue items occur in no sequence: with a binary loss over sampled negatives their
    # embeddings never move, and their initial scores would outrank the trained items.
    base = chain_dataset(n_users=60)
    extra = [Document(f"x{i}", f"extra {i}", title=f"extra {i}") for i in range(4)]
    dataset = Dataset("chain+", Corpus([*base.corpus, *extra]), interactions=base.interactions)
    problem, _ = RecommendationTask().split(dataset)
    entry = get_registry().indexer("sasrec")
    indexer = entry.factory(entry.config_class(hidden=16, max_epochs=5, lr=5e-3, loss="bce", negatives=8))
    retriever = indexer.build_retriever(problem, RunContext(seed=0, cache=ArtifactCache(tmp_path / "cache")))
    rankings = retriever.search_histories([["3", "4", "5"], ["10"]], k=34)
    for ranking in rankings:
        assert len(ranking) == 34
        assert {doc for doc, _ in ranking[-4:]} == {"x0", "x1", "x2", "x3"}
        assert all(score > ranking[-1][1] for _, score in ranking[:30])
