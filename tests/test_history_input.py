"""Recommendation histories as semantic-ID input (``input=ids``/``both``, TIGER's format) and the
hashed user token."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from indexbench.cache import ArtifactCache
from indexbench.data import Corpus, Dataset, Document, SemanticIds
from indexbench.protocols import RunContext, needs_histories
from indexbench.registry import get_registry
from indexbench.runner import run_grid
from indexbench.tasks.ranking import history_search
from indexbench.tasks.recommendation import RecommendationTask


def blind_chain(n_items: int = 24, n_users: int = 48, length: int = 26) -> Dataset:
    """Every user walks the item cycle (next item = current + 1) from a start of their own, and
    every item has the same title: the rule is in the items' identities, which a text input
    cannot see. Sequences are long enough that training inputs reach the 20-item cap the test
    inputs have (a model with absolute positions must have seen the last item where it is)."""
    corpus = Corpus(Document(str(i), "a plain item", title="a plain item") for i in range(n_items))
    interactions = {f"u{u}": [str((u * 5 + t) % n_items) for t in range(length)] for u in range(n_users)}
    return Dataset("blind-chain", corpus, interactions=interactions)


def run(dataset: Dataset, tmp_path, **options):
    entry = get_registry().indexer("random-ids")
    settings = {"backbone": "tiny", "codebook_size": 8, "epochs": 60, "max_steps": 500, "batch_size": 32,
                "fresh_lr": 3e-3, "num_beams": 10, **options}
    indexer = entry.factory(entry.config_class(**settings))
    ctx = RunContext(seed=0, cache=ArtifactCache(tmp_path / "cache"))
    return RecommendationTask().evaluate(indexer, dataset, ctx)


@pytest.mark.slow
def test_id_input_learns_a_rule_the_titles_cannot_show(tmp_path):
    dataset = blind_chain()
    text = run(dataset, tmp_path, input="text")
    ids = run(dataset, tmp_path, input="ids")
    # Text sees one title for every item: at best the targets' spread (10 of 24 items a query).
    assert text.metrics["recall@10"] < 0.6, text.metrics
    assert ids.metrics["recall@5"] > 0.9, ids.metrics
    training = ids.details["indexer"]["training"]
    assert training["examples"] == 48 * 23  # every prefix of every training part (26 - 2 items)
    assert "id_init" not in training  # the document-text warm start is a text input's
    for result in (text, ids):
        guards = result.details["indexer"]["protocol"]
        assert guards["collision_policy"] == "dedup-position" and guards["protocol_queries"] == 48
        assert guards["invalid_id_rate"] == 0.0 and 0.0 <= guards["invalid_id_rate_free"] <= 1.0, guards


def test_without_the_trie_an_untrained_model_names_items_that_do_not_exist(tmp_path):
    # 24 items among 8^3 = 512 code sequences, a model one tiny step from its initialisation:
    # the free search's top 10 name items that do not exist, the constrained search's never.
    # (Not ~95 %: nearly equal logits break ties toward low codes, and most items' last code is
    # 0, the de-duplicating position's first.)
    result = run(blind_chain(), tmp_path, input="ids", max_steps=1, fresh_lr=1e-6)
    guards = result.details["indexer"]["protocol"]
    assert guards["invalid_id_rate"] == 0.0
    assert guards["invalid_id_rate_free"] > 0.25, guards


def test_history_tokens_for_both_kinds_of_backbone():
    from indexbench.generative.backbones import load_backbone
    from indexbench.generative.history_input import EXTRA_TOKENS, HistoryInput, user_bucket

    corpus = Corpus(Document(str(i), f"widget number {i}", title=f"widget {i}") for i in range(6))
    ids = SemanticIds({str(i): (i % 3, i // 3, 0) for i in range(6)}, codebook_sizes=(3, 2, 1))
    for name, shared in (("tiny", False), ("t5-small-scratch", True)):
        backbone = load_backbone(name)
        vocabulary = backbone.add_id_tokens(ids.codebook_sizes)
        history = HistoryInput(backbone, corpus, ids, "ids", user_buckets=10)
        table = backbone.model.get_encoder().get_input_embeddings()
        # T5 reads the decoder's own ID rows; a BERT encoder gets rows of its own, trained fresh.
        assert hasattr(table, EXTRA_TOKENS) is not shared
        assert (EXTRA_TOKENS in backbone.fresh_parameters) is not shared
        if shared:
            assert history.id_base == vocabulary.base
        tokens = history.tokens(["4", "1"], user="alice")
        prefix, suffix = backbone.text.prefix, backbone.text.suffix
        body = tokens[len(prefix): len(tokens) - len(suffix)]
        offsets = [o - vocabulary.base for o in vocabulary.offsets]
        item4 = [history.id_base + offsets[0] + 1, history.id_base + offsets[1] + 1, history.id_base + offsets[2]]
        item1 = [history.id_base + offsets[0] + 1, history.id_base + offsets[1] + 0, history.id_base + offsets[2]]
        assert body == [history.user_base + user_bucket("alice", 10), *item4, *item1]
        # The encoder reads every one of these tokens (new rows, or the decoder's own).
        import torch

        input_ids, mask = backbone.text.collate([tokens], backbone.device)
        with torch.no_grad():
            states = backbone.encode(input_ids, mask)
        assert states.shape[:2] == (1, len(tokens)) and torch.isfinite(states).all()
        # Only the last 20 items are kept; ``both`` adds each item's title after its ID tokens.
        long = history.tokens([str(i % 6) for i in range(30)])
        assert len(long) == len(prefix) + 20 * 3 + len(suffix)
    backbone = load_backbone("tiny")
    backbone.add_id_tokens(ids.codebook_sizes)
    both = HistoryInput(backbone, corpus, ids, "both")
    title = backbone.text.tokenize_text_only(["widget 4"], max_length=32)[0]
    tokens = both.tokens(["4"])
    assert tokens[len(backbone.text.prefix):len(tokens) - len(backbone.text.suffix)] == [*both.item_tokens["4"], *title]


def test_user_buckets_are_stable_across_processes_and_spread():
    from indexbench.generative.history_input import user_bucket

    users = [f"A{n:05d}" for n in range(200)]
    here = [user_bucket(u, 2000) for u in users]
    code = ("from indexbench.generative.history_input import user_bucket;"
            f"print([user_bucket(u, 2000) for u in {users!r}])")
    for seed in ("1", "2"):
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                             env={**os.environ, "PYTHONHASHSEED": seed})
        assert eval(out.stdout) == here  # noqa: S307 -- our own printed list
    assert all(0 <= b < 2000 for b in here) and len(set(here)) > 150


def test_id_input_needs_histories_and_is_skipped_on_text_tasks(tmp_path):
    entry = get_registry().indexer("hc")
    assert needs_histories(entry.factory(entry.config_class(input="ids")))
    assert not needs_histories(entry.factory(entry.config_class()))
    records = run_grid(["random-ids:backbone=tiny:input=ids"], ["product-search"], ["sample"], store=False,
                       cache_dir=tmp_path / "cache")
    assert records[0].status == "skipped"
    assert "item histories" in records[0].reason and "product-search" in records[0].reason


def test_the_ranking_task_hands_users_to_a_retriever_that_takes_them():
    seen = {}

    class WithUsers:
        def search_histories(self, histories, k, users=None):
            seen["users"] = users
            return [[] for _ in histories]

    class WithoutUsers:
        def search_histories(self, histories, k):
            seen["plain"] = len(histories)
            return [[] for _ in histories]

    history_search(WithUsers())([("u1", ["a"]), ("u2", ["b"])], 10)
    history_search(WithoutUsers())([("u1", ["a"])], 10)
    assert seen == {"users": ["u1", "u2"], "plain": 1}


@pytest.mark.slow
def test_tiger_presets_run_end_to_end_and_keep_the_best_dev_check(tmp_path):
    dataset = blind_chain()
    # The paper's recipe (Adafactor, rsqrt, user tokens, T = 4) at a toy budget.
    tiger = run(dataset, tmp_path, preset="tiger", max_steps=8, batch_size=16, warmup_steps=4, codebook_size=8,
                backbone="t5-tiger")
    training = tiger.details["indexer"]["training"]
    assert training["steps"] == 8 and tiger.details["indexer"]["id_shape"] == [8, 8, 8, 8]
    assert "selected_step" not in training
    tuned = run(dataset, tmp_path, preset="tiger-tuned", max_steps=60, batch_size=64, warmup_steps=5,
                codebook_size=8, backbone="tiny", lr=3e-3, fresh_lr=3e-3)
    training = tuned.details["indexer"]["training"]
    checks = training["dev_checks"]
    assert len(checks) >= 3
    best = max(checks, key=lambda c: c["ndcg@10"])
    assert training["selected_step"] == best["step"]


def test_dev_every_sets_the_learning_curve_steps(tmp_path):
    dataset = blind_chain(n_users=12)
    # 12 users give 276 training prefixes, 9 batches an epoch: by default checks at 9 and 16.
    default = run(dataset, tmp_path, input="ids", max_steps=16, batch_size=32, num_beams=4)
    curve = run(dataset, tmp_path, input="ids", max_steps=16, batch_size=32, num_beams=4, dev_every=5,
                dev_queries=3)
    steps = [c["step"] for c in curve.details["indexer"]["training"]["dev_checks"]]
    assert steps == [5, 10, 15, 16]
    assert [c["step"] for c in default.details["indexer"]["training"]["dev_checks"]] == [9, 16]
