"""SEAL: the corpus n-gram index against brute-force search, the constrained n-gram decoder
against a plain loop and the corpus, the evidence formula against a hand computation, and the
plugin through every ranking task on the sample data."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from indexbench.ngram_index import CorpusIndex


def occurrences(docs, ngram):
    """Brute force: (document, start) of every occurrence of ``ngram``."""
    n = len(ngram)
    return sorted((d, i) for d, doc in enumerate(docs) for i in range(len(doc) - n + 1)
                  if tuple(doc[i : i + n]) == tuple(ngram))


def followers(docs, ngram):
    n = len(ngram)
    return sorted({doc[i + n] for doc in docs for i in range(len(doc) - n)
                   if tuple(doc[i : i + n]) == tuple(ngram)})


corpora = st.lists(st.lists(st.integers(0, 6), min_size=0, max_size=12), min_size=1, max_size=8)


@settings(max_examples=60, deadline=None)
@given(docs=corpora, ngram=st.lists(st.integers(0, 6), min_size=1, max_size=4))
def test_count_locate_and_children_equal_brute_force(docs, ngram):
    index = CorpusIndex.build(docs)
    found = occurrences(docs, ngram)
    assert index.count(ngram) == len(found)
    assert index.documents(ngram).tolist() == sorted({d for d, _ in found})
    node = index.find(ngram)
    if found:
        starts = sorted((int(index.document_of(np.array([p]))[0]), int(p - index.starts[index.document_of(np.array([p]))[0]]))
                        for p in index.positions(node))
        assert starts == found
        tokens, children = index.children(node)
        assert tokens.tolist() == followers(docs, ngram)  # never the separator: no n-gram crosses documents
        assert [c.count for c in children] == [len(occurrences(docs, [*ngram, t])) for t in tokens.tolist()]
    else:
        assert node is None
    assert index.n_tokens == sum(len(d) for d in docs)
    assert [index.document_tokens(d).tolist() for d in range(len(docs))] == [list(d) for d in docs]


def test_the_index_takes_real_vocabulary_sizes_and_round_trips_through_a_file(tmp_path):
    rng = np.random.default_rng(0)
    docs = [rng.integers(0, 70_000, rng.integers(1, 40)).tolist() for _ in range(50)]  # beyond uint16
    index = CorpusIndex.build(docs)
    assert index.stream.dtype == np.uint32
    ngram = docs[7][3:6]
    assert index.count(ngram) == len(occurrences(docs, ngram)) >= 1
    index.save(tmp_path)
    again = CorpusIndex.load(tmp_path)
    assert again.count(ngram) == index.count(ngram) and 7 in again.documents(ngram).tolist()
    assert CorpusIndex.build([[1, 2], [2, 1]]).children(CorpusIndex.build([[1, 2], [2, 1]]).root)[0].tolist() == [1, 2]


# --------------------------------------------------------------------------- decoding


@pytest.fixture(scope="module")
def tiny():
    from indexbench.generative.backbones import load_backbone

    return load_backbone("tiny", seed=1)


CORPUS = ["red wooden toy train for children", "stainless steel lab thermometer for liquids",
          "glass beaker set with lab grade glass", "wooden train tracks and a red engine",
          "digital thermometer with steel probe"]
QUERIES = ["red train", "lab thermometer", "glass beaker", "steel probe for liquids"]


def tokens_of(backbone, texts):
    return backbone.text.tokenize_text_only(texts, max_length=64)


def test_text_logits_are_the_models_own_logits_of_the_text_vocabulary(tiny):
    import torch

    ids, mask = tiny.text.collate(tiny.text.tokenize(["red train"], max_length=16))
    start = torch.tensor([[tiny.decoder_start_token_id, 2000]])
    with torch.no_grad():
        full = tiny.model(input_ids=ids, attention_mask=mask, decoder_input_ids=start).logits
        hidden, _ = tiny.decode(start, tiny.encode(ids, mask), mask)
        assert torch.allclose(tiny.text_logits(hidden), full, atol=1e-4)


def test_the_batched_search_returns_only_corpus_ngrams_and_equals_the_plain_loop(tiny):
    import torch

    from indexbench.generative.ngram_decoding import reference_ngram_search, search_ngrams_batched

    docs = tokens_of(tiny, CORPUS)
    index = CorpusIndex.build(docs)
    queries = tiny.text.tokenize(QUERIES, max_length=16)
    with torch.no_grad():
        batched = search_ngrams_batched(tiny, index, queries, num_beams=4, max_ngram=5, batch_size=3)
        for q, found in zip(queries, batched.ngrams):
            assert found and max(len(n) for n in found) == 5
            for ngram in found:  # every n-gram occurs in the corpus, checked by brute force
                assert occurrences(docs, ngram), ngram
            plain = reference_ngram_search(tiny, index, q, num_beams=4, max_ngram=5)
            assert set(found) == set(plain)
            assert all(found[n] == pytest.approx(plain[n], abs=1e-4) for n in found)
            # A prefix is likelier than any n-gram that extends it.
            assert all(found[n[:-1]] >= found[n] for n in found if len(n) > 1 and n[:-1] in found)


def test_the_copy_bias_favours_the_querys_own_tokens_in_search_and_loss(tiny):
    import torch

    from indexbench.generative.ngram_decoding import (
        input_token_bias,
        reference_ngram_search,
        search_ngrams_batched,
        text_batch_loss,
    )

    docs = tokens_of(tiny, CORPUS)
    index = CorpusIndex.build(docs)
    queries = tiny.text.tokenize(QUERIES, max_length=16)
    ids, mask = tiny.text.collate(queries)
    bias = input_token_bias(tiny, ids, mask, 3.0)
    for row, q in enumerate(queries):
        own = set(q) - set(tiny.tokenizer.all_special_ids)
        assert set(bias[row].nonzero().flatten().tolist()) == own and bool((bias[row][sorted(own)] == 3.0).all())
    assert input_token_bias(tiny, ids, mask, 0.0) is None
    words = tiny.text.tokenize_text_only(QUERIES, max_length=16)
    with torch.no_grad():
        # Writing the query's own words costs less with the bias; the batched search still equals
        # the plain loop, and the query's words now open its likeliest n-grams.
        assert text_batch_loss(tiny, queries, words, copy_bias=3.0) < text_batch_loss(tiny, queries, words)
        batched = search_ngrams_batched(tiny, index, queries, num_beams=4, max_ngram=3, batch_size=2, copy_bias=8.0)
        for q, w, found in zip(queries, words, batched.ngrams):
            plain = reference_ngram_search(tiny, index, q, num_beams=4, max_ngram=3, copy_bias=8.0)
            assert set(found) == set(plain)
            assert all(found[n] == pytest.approx(plain[n], abs=1e-4) for n in found)
            in_corpus = [t for t in w if index.count((t,))]
            if in_corpus:
                assert max(found, key=found.get)[0] in in_corpus


def test_beams_that_reach_a_documents_end_stop_while_the_others_go_on(tiny):
    import torch

    from indexbench.generative.ngram_decoding import ngram_beam_search

    docs = [[5, 6], [7, 8, 9, 10, 11, 12], [6, 5]]
    index = CorpusIndex.build(docs)
    ids, mask = tiny.text.collate(tiny.text.tokenize(["anything"], max_length=8))
    with torch.no_grad():  # beams enough for every n-gram: the search enumerates exactly the corpus's
        found = ngram_beam_search(tiny, index, ids, mask, num_beams=10, max_ngram=6).ngrams[0]
    every = {tuple(d[i:j]) for d in docs for i in range(len(d)) for j in range(i + 1, len(d) + 1)}
    assert set(found) == every


# --------------------------------------------------------------------------- scoring


def test_the_ngram_weight_matches_a_hand_computation():
    from indexbench_seal._scoring import EvidenceOptions, ngram_weight

    # P(n|q) = 0.5, count 3 of 1,000 tokens, smoothing 5: P(n) = 8 / 1005.
    p_n = 8 / 1005
    expected = (math.log(0.5 * (1 - p_n)) - math.log(p_n * 0.5)) ** 2
    assert ngram_weight(math.log(0.5), 3, 1000, EvidenceOptions()) == pytest.approx(expected)
    assert expected == pytest.approx(23.2836, rel=1e-5)  # log(997 / 8) = 4.82531, squared
    # An n-gram the model finds no likelier than the corpus does is no evidence; nor is an absent one.
    assert ngram_weight(math.log(p_n / 2), 3, 1000, EvidenceOptions()) == 0.0
    assert ngram_weight(-1.0, 0, 1000, EvidenceOptions()) == 0.0
    assert math.isfinite(ngram_weight(0.0, 1, 1000, EvidenceOptions()))  # P(n|q) = 1 is capped


def test_documents_sum_their_ngrams_with_the_coverage_discount_and_come_back_in_score_order():
    from indexbench_seal._scoring import EvidenceOptions, rank, score_documents

    index = CorpusIndex.build([[1, 2, 3], [2, 3, 4], [9, 9], [1, 2]])
    weights = {(2, 3): 4.0, (3,): 1.0, (1, 2): 2.0, (7,): 5.0}  # (7,) occurs nowhere
    scores = score_documents(weights, index, EvidenceOptions(coverage=0.8))
    # doc 0: (2,3) 4.0 in full; (1,2) shares type 2 -> 2.0 * (0.2 + 0.8 * 1/2) = 1.2; (3,) all covered -> 0.2
    assert scores[0] == pytest.approx(4.0 + 1.2 + 0.2)
    assert scores[1] == pytest.approx(4.0 + 0.2)  # (2,3), then (3,) covered
    assert scores[3] == pytest.approx(2.0) and 2 not in scores
    assert rank(scores, 10) == [(0, pytest.approx(5.4)), (1, pytest.approx(4.2)), (3, pytest.approx(2.0))]
    assert rank(scores, 2) == rank(scores, 10)[:2]
    assert rank({5: 1.0, 2: 1.0}, 2) == [(2, 1.0), (5, 1.0)]  # ties by corpus order


# --------------------------------------------------------------------------- the plugin


def test_an_untrained_model_still_returns_valid_scored_rankings(tiny):
    """Without training the decoder is a near-uniform LM: P(n|q) ≈ 1/V. SEAL's weight is positive
    only for n-grams rarer than that in the corpus, so the corpus here is big enough (400k tokens)
    for its rare n-grams to count -- as on SciFact (1.7 M tokens)."""
    from indexbench_seal import SealConfig
    from indexbench_seal._retriever import SealRetriever

    rng = np.random.default_rng(0)
    docs = [rng.integers(1000, 29000, 100).tolist() for _ in range(4000)]
    index = CorpusIndex.build(docs)
    config = SealConfig(num_beams=5, max_ngram=3, query_max_length=16)
    retriever = SealRetriever(tiny, index, [f"d{i}" for i in range(len(docs))], config)
    results = retriever.search(["red train", "lab thermometer"], 10)
    for ranking in results:
        assert 0 < len(ranking) <= 10 and len({d for d, _ in ranking}) == len(ranking)
        values = [s for _, s in ranking]
        assert values == sorted(values, reverse=True) and all(v > 0 for v in values)
        assert all(d.startswith("d") and 0 <= int(d[1:]) < len(docs) for d, _ in ranking)


def test_seal_train_false_runs_a_task_end_to_end(tmp_path):
    from indexbench.runner import run_grid

    (record,) = run_grid(["seal:backbone=tiny:train=false:num_beams=5:max_ngram=4"], ["product-search"], ["sample"],
                         cache_dir=tmp_path, store=False, device="cpu")
    assert record.status == "ok", record.reason
    assert record.details["indexer"]["training"]["steps"] == 0 and record.rankings  # (empty: see above)


def test_seal_trains_through_the_engine_loop_in_every_ranking_task_and_caches_its_model(tmp_path):
    from indexbench.runner import run_grid

    spec = "seal:backbone=tiny:max_steps=3:batch_size=8:num_beams=4:max_ngram=3:eval_batch_size=32"
    tasks = ["document-retrieval", "product-search", "recommendation", "id-quality"]
    records = run_grid([spec], tasks, ["sample"], cache_dir=tmp_path, store=False, device="cpu")
    by_task = {r.task: r for r in records}
    for task in tasks[:3]:
        record = by_task[task]
        assert record.status == "ok", record.reason
        training = record.details["indexer"]["training"]
        assert training["steps"] == 3 and math.isfinite(training["final_loss"])
        assert record.details["indexer"]["index"]["tokens"] > 0
    assert by_task["id-quality"].status == "skipped"
    again = run_grid([spec], ["product-search"], ["sample"], cache_dir=tmp_path, store=False, device="cpu")[0]
    assert again.metrics == by_task["product-search"].metrics  # same seed, cached model: same metrics


def test_training_targets_are_spans_of_the_relevant_document_starting_on_a_query_token():
    from indexbench_seal._retriever import _span_near_query

    rng = np.random.default_rng(0)
    doc = list(range(100, 160))
    query = [130, 157, 999]  # 999 is not in the document
    spans = [_span_near_query(doc, query, 5, rng) for _ in range(200)]
    assert {s[0] for s in spans} == {130, 157}
    assert all(s == doc[doc.index(s[0]) : doc.index(s[0]) + 5] for s in spans)  # 157's runs off the end: 3 tokens
    assert 60 < sum(s[0] == 130 for s in spans) < 140
    unrelated = [_span_near_query(doc, [1, 2], 5, rng) for _ in range(50)]
    assert all(len(s) == 5 and s == doc[s[0] - 100 : s[0] - 95] for s in unrelated)
    assert len({s[0] for s in unrelated}) > 10  # no query token in it: a random span


def test_target_spans_start_on_the_querys_rare_words_rather_than_its_stopwords():
    from indexbench_seal._retriever import _span_near_query

    from indexbench.tokenization import token_idf

    the, period, protein, kinase = 1, 2, 50, 51
    corpus = [[the, 10 + i, period, the, 20 + i, period] for i in range(30)]  # 'the' and '.' everywhere
    doc = [the, protein, the, kinase, period, the, 7, the, period]
    corpus.append(doc)
    corpus += [[protein, 8], [kinase, 9, protein]]
    idf = token_idf(corpus)
    assert idf[the] == idf[period] == pytest.approx(np.log(33 / 31)) and idf[protein] > 2 > idf[the]
    query = [the, protein, kinase, period]
    rng = np.random.default_rng(0)
    starts = [_span_near_query(doc, query, 3, rng, idf)[0] for _ in range(400)]
    rare = sum(s in (protein, kinase) for s in starts) / len(starts)
    assert rare > 0.85  # 2 rare positions against 6 of 'the'/'.', by IDF weight
    uniform = [_span_near_query(doc, query, 3, rng)[0] for _ in range(400)]
    assert sum(s in (protein, kinase) for s in uniform) / len(uniform) < 0.4  # 2 of 8 matches
    # Only stopword-like matches (IDF 0 in a corpus they fill): uniformly among them.
    assert _span_near_query([1, 1], [1], 1, rng, np.zeros(2)) == [1]


def test_bad_seal_options_are_one_clear_error():
    from indexbench_seal import SealConfig, SealIndexer

    from indexbench.errors import ConfigError

    with pytest.raises(ConfigError, match="indexer 'seal' option 'coverage' must be <= 1, got 1.5"):
        SealIndexer(SealConfig(coverage=1.5))
    with pytest.raises(ConfigError, match="indexer 'seal' option 'max_ngram' must be >= 1, got 0"):
        SealIndexer(SealConfig(max_ngram=0))
    with pytest.raises(ConfigError, match="indexer 'seal' option 'text_head' must be one of lexical, none"):
        SealIndexer(SealConfig(text_head="neural"))
