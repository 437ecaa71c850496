"""The real pipeline on ../shared/data: the numbers the foundation issue promises.

The full dual-encoder SciFact runs (≈4 min of MiniLM encoding, plus fine-tuning) live in
`benchmarks/`, not here; this file keeps CI within minutes with a bounded dense run.
"""

from __future__ import annotations

import pytest

from indexbench.runner import run_grid

pytestmark = pytest.mark.realdata


def grid(shared_data, tmp_path, indexers, tasks, dataset):
    records = run_grid(indexers, tasks, [dataset], data_dir=shared_data, cache_dir=tmp_path / "cache",
                       store=tmp_path / "results.sqlite", device="cpu")
    return {(r.indexer, r.task): r for r in records}


def test_bm25_on_scifact_matches_beir(shared_data, tmp_path):
    cell = grid(shared_data, tmp_path, ["bm25"], ["document-retrieval"], "scifact")[("bm25", "document-retrieval")]
    assert cell.status == "ok", cell.reason
    assert 0.645 <= cell.metrics["ndcg@10"] <= 0.70  # BEIR reports 0.665
    assert cell.details["n_test_queries"] == 300
    assert cell.metrics["recall@100"] > cell.metrics["recall@10"] > cell.metrics["recall@1"] > 0


def test_bm25_grid_on_amazon_scientific(shared_data, tmp_path):
    cells = grid(shared_data, tmp_path, ["bm25"], ["product-search", "recommendation", "id-quality"],
                 "amazon-scientific")
    assert cells[("bm25", "id-quality")].status == "skipped"
    search = cells[("bm25", "product-search")]
    assert search.status == "ok" and search.details["n_test_queries"] == 151
    assert 0.2 < search.metrics["ndcg@5"] < 0.6
    rec = cells[("bm25", "recommendation")]
    assert rec.status == "ok" and rec.details["n_test_queries"] == 8317
    assert rec.metrics["recall@10"] >= rec.metrics["recall@5"] > 0


@pytest.mark.slow
def test_dual_encoder_zero_shot_on_amazon_product_search(shared_data, tmp_path):
    # Short documents keep this to about a minute of MiniLM on two cores.
    spec = "dual-encoder:doc_max_length=48"
    cells = grid(shared_data, tmp_path, [spec, "bm25"], ["product-search"], "amazon-scientific")
    dense = cells[(spec, "product-search")]
    assert dense.status == "ok", dense.reason
    # Zero-shot MiniLM is a real retriever here: far above chance (≈0.001) and in BM25's league.
    assert dense.metrics["ndcg@5"] > 0.5 * cells[("bm25", "product-search")].metrics["ndcg@5"]


@pytest.mark.slow
def test_semantic_ids_on_amazon_scientific_carry_the_categories(shared_data, tmp_path):
    """hc on MiniLM embeddings (32 tokens a product keeps this to well under a minute) against
    the random floor, at the shared default (T, K) = (3, 256)."""
    spec = "hc:encoder_max_length=32"
    cells = grid(shared_data, tmp_path, [spec, "random-ids"], ["id-quality"], "amazon-scientific")
    hc, floor = cells[(spec, "id-quality")], cells[("random-ids", "id-quality")]
    assert hc.status == "ok" and floor.status == "ok", (hc.reason, floor.reason)
    for cell in (hc, floor):
        assert cell.details["codebook_sizes"] == [256, 256, 256]
        assert cell.details["n_documents_l2"] == 4213 and cell.details["n_documents_l3"] == 4107
    assert abs(floor.metrics["ami_l2"]) < 0.02 and abs(floor.metrics["ami_l3"]) < 0.02
    assert hc.metrics["ami_l2"] > 0.3 and hc.metrics["ami_l3"] > 0.3
    assert hc.details["indexer"]["collision_rate"] == hc.metrics["collision_rate"] == 0.0
