"""Unsupervised SimCSE fine-tuning (indexbench.simcse) on the tiny encoder."""

from __future__ import annotations

import numpy as np

from indexbench.cache import ArtifactCache
from indexbench.data import Corpus, Document
from indexbench.encoders import build_tiny_encoder
from indexbench.id_indexers import IdIndexerOptions, corpus_embeddings
from indexbench.protocols import RunContext
from indexbench.simcse import SimCSEConfig, simcse_encoder, train_simcse

TEXTS = [f"{w} for the laboratory, item {i}" for i, w in enumerate(
    ["nitrile gloves", "glass pipettes", "digital scale", "safety goggles", "centrifuge tubes",
     "magnetic stirrer", "petri dishes", "ph meter", "lab coat", "fume hood filter",
     "microscope slides", "wash bottle", "test tube rack", "bunsen burner", "thermometer",
     "graduated cylinder"])]
FAST = SimCSEConfig(max_steps=12, epochs=6, batch_size=8, lr=1e-3, max_length=16)


def test_simcse_lowers_the_loss_and_changes_the_weights():
    encoder = build_tiny_encoder()
    before = encoder.identity["weights"]
    history = train_simcse(encoder, TEXTS * 2 + [" "], FAST, seed=0)
    assert history["texts"] == len(TEXTS)  # duplicates and blanks dropped
    assert history["steps"] == 12 and len(history["losses"]) == 12
    assert history["final_loss"] < history["first_loss"]
    assert encoder.identity["weights"] != before
    assert not encoder.model.training


def test_simcse_is_deterministic_for_a_seed():
    def run(seed):
        encoder = build_tiny_encoder()
        history = train_simcse(encoder, TEXTS, SimCSEConfig(max_steps=2, batch_size=8), seed=seed)
        return encoder, history

    (a, ha), (b, hb), (c, _) = run(0), run(0), run(1)
    assert ha["losses"] == hb["losses"]
    assert a.identity == b.identity != c.identity


def test_simcse_encoder_is_cached(tmp_path):
    ctx = RunContext(seed=0, cache=ArtifactCache(tmp_path))
    first, history = simcse_encoder("tiny", TEXTS, ctx, FAST)
    assert not history["cached"] and ctx.cache.misses == 1
    second, again = simcse_encoder("tiny", TEXTS, ctx, FAST)
    assert again["cached"] and ctx.cache.hits == 1
    assert again["losses"] == history["losses"]
    assert first.identity == second.identity and first.name == "simcse-tiny"
    np.testing.assert_array_equal(first.encode(TEXTS), second.encode(TEXTS))


def test_id_indexers_embed_with_simcse_on_request(tmp_path):
    corpus = Corpus(Document(id=str(i), text=t) for i, t in enumerate(TEXTS))
    ctx = RunContext(seed=0, cache=ArtifactCache(tmp_path))
    details: dict = {}
    # 16 texts make one batch of 64: one step, whatever the cap.
    emb = corpus_embeddings(corpus, IdIndexerOptions(encoder="simcse-tiny", simcse_steps=2), ctx, details)
    plain = corpus_embeddings(corpus, IdIndexerOptions(encoder="tiny"), ctx)
    assert emb.shape == plain.shape == (len(TEXTS), 32)
    assert not np.allclose(emb, plain)
    assert details["simcse"]["steps"] == 1 and details["encoder"]["encoder"] == "simcse-tiny"
