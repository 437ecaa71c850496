"""The core pieces every two-stage ID indexer shares: k-means, the default (T, K), de-duplication."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from indexbench.errors import ConfigError
from indexbench.generative.options import GenerativeOptions
from indexbench.id_indexers import (
    IdIndexerOptions,
    append_dedup_position,
    default_id_shape,
    id_options,
    ids_from_codes,
    resolve_id_shape,
)
from indexbench.kmeans import kmeans
from indexbench.metrics import id_diagnostics


def test_core_modules_import_neither_torch_nor_faiss():
    code = ("import sys, indexbench.kmeans, indexbench.id_indexers, indexbench.simcse, "
            "indexbench_hc, indexbench_rqvae, indexbench_random_ids; "
            "heavy = [m for m in ('torch', 'faiss', 'transformers') if m in sys.modules]; "
            "assert not heavy, heavy")
    subprocess.run([sys.executable, "-c", code], check=True)


# --------------------------------------------------------------------------- kmeans


def _blobs(seed: int = 0, per_blob: int = 30, dim: int = 8):
    rng = np.random.default_rng(seed)
    centres = np.eye(dim, dtype=np.float32)[:3] * 10
    x = np.concatenate([c + rng.normal(scale=0.1, size=(per_blob, dim)) for c in centres])
    return x.astype(np.float32), np.repeat(np.arange(3), per_blob)


def test_kmeans_is_deterministic_for_a_seed_and_finds_blobs():
    x, truth = _blobs()
    c1, a1 = kmeans(x, 3, seed=7)
    c2, a2 = kmeans(x, 3, seed=7)
    assert c1.dtype == np.float32 and c1.shape == (3, 8)
    assert a1.dtype == np.int64 and a1.shape == (90,)
    np.testing.assert_array_equal(a1, a2)
    np.testing.assert_array_equal(c1, c2)
    # Each blob is one cluster (whatever its number).
    assert all(len(set(a1[truth == b])) == 1 for b in range(3))
    assert len(set(a1)) == 3


def test_kmeans_with_fewer_points_than_clusters_numbers_the_points():
    x = np.arange(12, dtype=np.float32).reshape(4, 3)
    centroids, assign = kmeans(x, 10, seed=0)
    assert centroids.shape == (4, 3)
    np.testing.assert_array_equal(assign, [0, 1, 2, 3])
    np.testing.assert_array_equal(centroids, x)


def test_kmeans_rejects_empty_input():
    with pytest.raises(ValueError):
        kmeans(np.zeros((0, 3), dtype=np.float32), 2, seed=0)


# --------------------------------------------------------------------------- ID shape


@pytest.mark.parametrize("n, k", [(1, 16), (60, 16), (300, 64), (4_344, 256), (5_183, 256),
                                  (20_000, 512), (1_000_000, 512)])
def test_default_id_shape(n, k):
    assert default_id_shape(n) == (3, k)


def test_resolve_id_shape_uses_options_and_rejects_nonsense():
    assert resolve_id_shape(IdIndexerOptions(), 4_344) == (3, 256)
    assert resolve_id_shape(IdIndexerOptions(id_length=4, codebook_size=32), 4_344) == (4, 32)
    with pytest.raises(ConfigError, match="id_length"):
        resolve_id_shape(IdIndexerOptions(id_length=1), 10)
    with pytest.raises(ConfigError, match="codebook_size"):
        resolve_id_shape(IdIndexerOptions(codebook_size=1), 10)


def test_options_inherit_the_engine_and_id_options_leave_it_out():
    options = IdIndexerOptions(codebook_size=8)
    assert isinstance(options, GenerativeOptions)
    chosen = id_options(options)
    assert chosen["codebook_size"] == 8 and chosen["encoder"] == "minilm"
    assert "backbone" not in chosen and "num_beams" not in chosen


# --------------------------------------------------------------------------- de-duplication


def test_dedup_numbers_shared_prefixes_in_order_and_reports_collisions():
    prefixes = {"a": (0, 1), "b": (2, 0), "c": (0, 1), "d": (3, 3), "e": (0, 1), "f": (2, 0)}
    ids, stats = append_dedup_position(prefixes, 4, (4, 4))
    assert dict(ids.ids) == {"a": (0, 1, 0), "b": (2, 0, 0), "c": (0, 1, 1), "d": (3, 3, 0),
                             "e": (0, 1, 2), "f": (2, 0, 1)}
    assert ids.codebook_sizes == (4, 4, 4)
    # a, c, e share one prefix and b, f another: 5 of 6 documents collide; d is alone.
    assert stats["collision_rate"] == pytest.approx(5 / 6)
    assert stats["max_docs_per_prefix"] == 3
    assert stats["distinct_prefixes"] == 3
    # The same definitions as id-quality's diagnostics of the final IDs.
    diag = id_diagnostics(ids)
    assert diag["collision_rate"] == pytest.approx(stats["collision_rate"])
    assert diag["max_docs_per_prefix"] == stats["max_docs_per_prefix"]


def test_dedup_raises_a_config_error_when_a_group_outgrows_the_codebook():
    prefixes = {f"d{i}": (1,) for i in range(5)}
    with pytest.raises(ConfigError, match="5 documents share the semantic ID prefix.*raise codebook_size"):
        append_dedup_position(prefixes, 4, (4,))


def test_codes_out_of_range_are_rejected():
    with pytest.raises(ValueError, match="outside"):
        ids_from_codes(["a", "b"], np.array([[0, 1], [5, 0]]), 4)


def test_ids_from_codes_follows_row_order():
    ids, stats = ids_from_codes(["x", "y", "z"], np.array([[1, 0], [1, 0], [0, 2]]), 3)
    assert dict(ids.ids) == {"x": (1, 0, 0), "y": (1, 0, 1), "z": (0, 2, 0)}
    assert stats["collision_rate"] == pytest.approx(2 / 3)
