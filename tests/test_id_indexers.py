"""The two-stage ID indexers: hc, rqvae, rqkmeans and random-ids (plugins registered through entry points).

Everything runs on the ``tiny`` encoder and small codebooks; the AMI comparison on the built-in
sample data uses MiniLM (random tiny embeddings would prove little) and is marked slow.
"""

from __future__ import annotations

import numpy as np
import pytest

from indexbench.cache import ArtifactCache
from indexbench.data import Corpus, Document
from indexbench.protocols import IdIndexer, RunContext
from indexbench.registry import get_registry
from indexbench.runner import run_grid

WORDS = ["pipette tips sterile lab", "safety gloves nitrile", "drill bits cobalt steel",
         "soldering iron station", "glass beakers borosilicate", "cable ties nylon"]


def small_corpus(n: int = 36) -> Corpus:
    return Corpus(Document(id=f"d{i}", text=f"{WORDS[i % len(WORDS)]} model {i} pack of {i % 5 + 1}")
                  for i in range(n))


def make(name: str, **options):
    entry = get_registry().indexer(name)
    config = entry.config_class(**{"encoder": "tiny", "codebook_size": 8, **options})
    return entry.factory(config)


RQ_FAST = {"vae_steps": 300, "hidden_dims": "32", "latent_dim": 8}


@pytest.mark.parametrize("name, options", [("hc", {}), ("rqvae", RQ_FAST), ("rqkmeans", {}),
                                           ("rqkmeans", {"balanced": True}), ("random-ids", {})])
def test_valid_ids_of_the_requested_shape_and_details(name, options):
    corpus = small_corpus()
    entry = get_registry().indexer(name)
    assert entry.kind == "ids" and entry.plugin == name
    for t, k in ((2, 16), (3, 8)):  # T = 2 de-duplicates whole first-level groups: a larger K
        indexer = make(name, id_length=t, codebook_size=k, **options)
        assert isinstance(indexer, IdIndexer)
        ids = indexer.assign_ids(corpus, RunContext(seed=0))
        ids.validate(corpus)
        assert ids.codebook_sizes == (k,) * t
        details = indexer.details
        assert (details["id_length"], details["codebook_size"]) == (t, k)
        assert 0 <= details["collision_rate"] <= 1 and details["max_docs_per_prefix"] >= 1
        assert details["fit_s"] >= 0


@pytest.mark.parametrize("name, options", [("hc", {}), ("rqvae", RQ_FAST), ("rqkmeans", {"balanced": True}),
                                           ("random-ids", {})])
def test_same_seed_same_ids(name, options):
    corpus = small_corpus()
    a = make(name, **options).assign_ids(corpus, RunContext(seed=3))
    b = make(name, **options).assign_ids(corpus, RunContext(seed=3))
    assert dict(a.ids) == dict(b.ids)


@pytest.mark.parametrize("name, options", [("rqvae", RQ_FAST), ("random-ids", {})])
def test_different_seed_different_ids(name, options):
    corpus = small_corpus()
    a = make(name, **options).assign_ids(corpus, RunContext(seed=0))
    b = make(name, **options).assign_ids(corpus, RunContext(seed=1))
    assert dict(a.ids) != dict(b.ids)


def test_default_shape_comes_from_the_corpus_size():
    indexer = make("random-ids", codebook_size=0)
    ids = indexer.assign_ids(small_corpus(300), RunContext())
    assert ids.codebook_sizes == (64, 64, 64)


def test_hc_puts_separated_clusters_under_different_first_codes():
    rng = np.random.default_rng(0)
    centres = np.eye(16, dtype=np.float32)[:4] * 5
    emb = np.concatenate([c + rng.normal(scale=0.05, size=(25, 16)) for c in centres]).astype(np.float32)
    truth = np.repeat(np.arange(4), 25)
    indexer = make("hc", codebook_size=4)
    codes = indexer.semantic_codes(emb, len(emb), 2, 4, RunContext(), {})
    first = codes[:, 0]
    assert all(len(set(first[truth == b])) == 1 for b in range(4))
    assert len(set(first)) == 4
    # Level 2 splits each 25-document cluster into K = 4 sub-clusters.
    assert all(len(set(codes[truth == b, 1])) == 4 for b in range(4))


def _blobs(seed: int = 0, n: int = 240, dim: int = 16):
    """Points around 6 centres of unequal size (a fifth of them in one centre), with a second,
    smaller scale of structure inside each: what residual quantisation is for."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=4.0, size=(6, dim))
    sizes = [n // 5] + [(n - n // 5) // 5] * 5
    sizes[-1] += n - sum(sizes)
    parts = [c + rng.normal(scale=1.0, size=(m, dim)) for c, m in zip(centres, sizes)]
    return np.concatenate(parts).astype(np.float32)


@pytest.mark.parametrize("balanced", [False, True])
def test_rqkmeans_residuals_shrink_level_by_level(balanced):
    emb = _blobs()
    details: dict = {}
    codes = make("rqkmeans", codebook_size=8, balanced=balanced).semantic_codes(
        emb, len(emb), 3, 8, RunContext(seed=0), details)
    mse = details["rqkmeans"]["residual_mse"]
    assert len(mse) == 4 and mse[0] == pytest.approx(float((emb ** 2).sum(1).mean()), rel=1e-5)
    assert all(later < earlier for earlier, later in zip(mse, mse[1:])), mse
    # The first level takes out most of the spread (the six centres); later levels refine.
    assert mse[1] < 0.5 * mse[0]
    assert codes.shape == (len(emb), 3) and codes.min() >= 0 and codes.max() < 8
    # Every level clusters the whole corpus with its own codebook: a code means the same
    # residual direction under any prefix, so level-2 codes recur across first-level codes.
    assert len({tuple(p) for p in codes[:, :2]}) > len(set(codes[:, 0]))


def test_rqkmeans_balanced_bounds_cluster_sizes():
    emb = _blobs(n=243)
    k = 8
    cap = -(-len(emb) // k)  # ceil(243 / 8) = 31, while one centre alone holds 48 points
    free: dict = {}
    make("rqkmeans", codebook_size=k).semantic_codes(emb, len(emb), 2, k, RunContext(seed=0), free)
    assert max(free["rqkmeans"]["largest_cluster"]) > cap  # unbalanced k-means exceeds the cap here
    kept: dict = {}
    codes = make("rqkmeans", codebook_size=k, balanced=True).semantic_codes(
        emb, len(emb), 2, k, RunContext(seed=0), kept)
    for level in range(2):
        counts = np.bincount(codes[:, level], minlength=k)
        assert counts.max() <= cap and counts.sum() == len(emb)
    assert kept["rqkmeans"]["largest_cluster"] == [int(np.bincount(codes[:, i]).max()) for i in range(2)]
    assert kept["rqkmeans"]["codebook_utilization"] == [1.0, 1.0]


def test_balanced_assignment_fills_nearest_first_and_respects_the_cap():
    from indexbench.kmeans import balanced_assignment

    x = np.array([[0.0], [0.1], [0.2], [10.0]], dtype=np.float32)
    centroids = np.array([[0.0], [10.0]], dtype=np.float32)
    # Cap 2: the two points closest to 0 stay there, the third is pushed to the other centroid.
    assert balanced_assignment(x, centroids, 2).tolist() == [0, 0, 1, 1]
    assert balanced_assignment(x, centroids, 4).tolist() == [0, 0, 0, 1]
    with pytest.raises(ValueError, match="cannot hold"):
        balanced_assignment(x, centroids, 1)


def test_rqvae_reports_losses_collisions_and_is_cached(tmp_path):
    corpus = small_corpus()
    ctx = RunContext(seed=0, cache=ArtifactCache(tmp_path))
    first = make("rqvae", **RQ_FAST)
    ids = first.assign_ids(corpus, ctx)
    report = first.details["rqvae"]
    # The reconstruction error falls steadily; the codebook terms may grow as the latent spreads.
    assert report["final_reconstruction_mse"] < 0.8 * report["first_reconstruction_mse"]
    assert report["final_loss"] < report["first_loss"]
    assert report["steps"] == 300 and not report["cached"]
    assert len(report["codebook_utilization"]) == 2
    assert all(0 < u <= 1 for u in report["codebook_utilization"])
    assert "collision_rate" in first.details and "final_reconstruction_mse" in report

    again = make("rqvae", **RQ_FAST)
    assert dict(again.assign_ids(corpus, ctx).ids) == dict(ids.ids)
    assert again.details["rqvae"]["cached"]


def test_rqvae_rejects_malformed_hidden_dims():
    from indexbench.errors import ConfigError

    with pytest.raises(ConfigError, match="hidden_dims"):
        make("rqvae", hidden_dims="wide").assign_ids(small_corpus(), RunContext())


def test_a_too_small_codebook_is_a_config_error_in_the_grid(tmp_path):
    records = run_grid(["random-ids:id_length=2:codebook_size=2"], ["id-quality"], ["sample"],
                       cache_dir=tmp_path, store=False)
    assert records[0].status == "error"
    assert "raise codebook_size or id_length" in records[0].reason


@pytest.mark.slow
def test_two_stage_indexers_ami_clear_the_random_floor_on_sample(tmp_path):
    """MiniLM embeddings of the 300 sample products: a few seconds on a 2-core CPU."""
    records = run_grid(["hc", "rqvae:vae_steps=300", "rqkmeans:balanced=true", "random-ids"], ["id-quality"],
                       ["sample"], cache_dir=tmp_path, store=False)
    by_name = {r.indexer.split(":")[0]: r for r in records}
    assert all(r.status == "ok" for r in records), [r.reason for r in records]
    random_ami = by_name["random-ids"].metrics["ami_l2@1"]
    assert abs(random_ami) < 0.05
    for name in ("hc", "rqvae", "rqkmeans"):
        # Prefix length 1, as the paper's Table 1: the first code against the category.
        assert by_name[name].metrics["ami_l2@1"] > random_ami + 0.25, name
        details = by_name[name].details["indexer"]
        assert details["encoder"]["encoder"] == "minilm" and details["codebook_size"] == 64
