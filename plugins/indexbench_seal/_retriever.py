"""SEAL's pipeline: index the corpus's n-grams, train the backbone to write n-grams of relevant
documents, and rank by the evidence of the n-grams a query makes it write.

Everything generic comes from the core: the corpus index (`indexbench.ngram_index`), backbone
loading, the training loop (`train_seq2seq`), the constrained n-gram beam search and its loss
(`indexbench.generative.ngram_decoding`), and the artifact cache. What is SEAL's is the choice of
training targets (here) and the evidence aggregation (`_scoring`).
"""

from __future__ import annotations

import functools
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from indexbench.data import fingerprint_of
from indexbench.protocols import RetrievalProblem, RunContext
from indexbench.tokenization import token_idf

from ._scoring import EvidenceOptions, ngram_weight, rank, score_documents, unigram_weight


class SealRetriever:
    """`Retriever` over a trained backbone and the corpus index."""

    def __init__(self, backbone, index, doc_ids: Sequence[str], config, truncation: str = "right"):
        self.backbone = backbone
        self.index = index
        self.doc_ids = list(doc_ids)
        self.config = config
        self.truncation = truncation
        self.evidence = EvidenceOptions(alpha=config.alpha, coverage=config.coverage, smoothing=config.smoothing)

    def search(self, queries: Sequence[str], k: int, progress=None) -> list[list[tuple[str, float]]]:
        import torch

        from indexbench.generative import search_ngrams_batched

        cfg = self.config
        tokens = self.backbone.text.tokenize(list(queries), max_length=cfg.query_max_length,
                                             truncation=self.truncation)
        with torch.inference_mode(), self.backbone.autocast():
            found = search_ngrams_batched(self.backbone, self.index, tokens, cfg.num_beams, cfg.max_ngram,
                                          cfg.eval_batch_size, keep_first_step=cfg.unigram_evidence > 0,
                                          copy_bias=cfg.copy_bias,
                                          progress=progress, description="seal: decoding n-grams")
        results = []
        for i, ngrams in enumerate(found.ngrams):
            weights = self.weights(ngrams, None if found.first_step_log_probs is None else found.first_step_log_probs[i])
            scores = score_documents(weights, self.index, self.evidence)
            results.append([(self.doc_ids[d], s) for d, s in rank(scores, k)])
        return results

    def weights(self, ngrams: dict[tuple[int, ...], float], first_step=None) -> dict[tuple[int, ...], float]:
        """Each generated n-gram's evidence weight, plus unigram evidence when it is on."""
        n_tokens = self.index.n_tokens
        weights = {n: ngram_weight(lp, self.index.count(n), n_tokens, self.evidence) for n, lp in ngrams.items()}
        if first_step is not None:  # the best first tokens, as unigrams the beams did not keep
            top = np.argsort(-first_step.numpy(), kind="stable")[: self.config.unigram_evidence]
            for token in top.tolist():
                unigram = (int(token),)
                if unigram not in weights:
                    weights[unigram] = unigram_weight(float(first_step[token]), self.index.count(unigram),
                                                      n_tokens, self.evidence)
        return weights


def document_tokens(backbone, problem: RetrievalProblem, max_length: int) -> list[list[int]]:
    """Each document's text tokens (no special tokens), as the index holds them."""
    return backbone.text.tokenize_text_only([d.text for d in problem.corpus], max_length=max_length)


def training_examples(problem: RetrievalProblem, backbone, docs: list[list[int]], config, seed: int) -> list:
    """SEAL's training pairs: (query → a span of a relevant document, weighted towards where the
    query's tokens are) and (query → the document's title); with documents as queries, also
    (a span of a document → another span of it)."""
    rng = np.random.default_rng([seed, 17])
    text = backbone.text
    position = {d.id: i for i, d in enumerate(problem.corpus)}
    start_weight = token_idf(docs) if config.span_starts == "idf" else None
    queries = text.tokenize([q for q, _ in problem.train_pairs], max_length=config.query_max_length,
                            truncation=problem.query_truncation)
    titles = {}
    examples = []
    for q_tokens, (_, doc_id) in zip(queries, problem.train_pairs):
        d = position[doc_id]
        doc = docs[d]
        if not doc:
            continue
        for _ in range(config.spans_per_pair):
            examples.append((q_tokens, tuple(_span_near_query(doc, q_tokens, config.span_length, rng,
                                                               start_weight))))
        title = problem.corpus[d].title
        if config.title_targets and title:
            if doc_id not in titles:
                room = config.span_length + len(text.prefix) + len(text.suffix)
                titles[doc_id] = tuple(text.tokenize_text_only([title], max_length=room)[0])
            if titles[doc_id]:
                examples.append((q_tokens, titles[doc_id]))
    pairs = config.indexing_pairs
    if pairs == "yes" or (pairs == "auto" and problem.documents_as_queries):
        source_length = max(1, config.doc_max_length - len(text.prefix) - len(text.suffix))
        for doc in docs:
            if len(doc) < 2:
                continue
            source = _random_span(doc, source_length, rng)
            examples.append((text.prefix + list(source) + text.suffix,
                             tuple(_random_span(doc, config.span_length, rng))))
    return examples


def _random_span(doc: list[int], length: int, rng) -> list[int]:
    start = int(rng.integers(0, max(1, len(doc) - length + 1)))
    return doc[start : start + length]


def _span_near_query(doc: list[int], query: list[int], length: int, rng,
                     start_weight: np.ndarray | None = None) -> list[int]:
    """A span of ``doc`` that starts on one of its tokens that the query has (a random span when
    there is none): SEAL's spans overlapping the query, on token ids instead of fuzzy word
    matches. Starting on the match makes the first target token predictable from the query --
    spans starting a few tokens before it taught the model to open with the words that precede
    matches (titles' adjectives on the sample catalogue).

    Which match: in proportion to ``start_weight`` of its token (the IDF, `indexbench.tokenization.token_idf`), uniformly
    when there is none or every weight is 0. SEAL matches without stopwords; uniformly over
    WordPiece matches, 57 % of SciFact's spans started on a token found in over a fifth of the
    abstracts ('.' alone 21 %, then 'of', '-', 'in', 'the'), which taught the model to write
    those first and lowered the trained model below the untrained one (benchmarks/LOG.md)."""
    wanted = set(query)
    hits = [i for i, token in enumerate(doc) if token in wanted]
    if not hits:
        return _random_span(doc, length, rng)
    weights = start_weight[[doc[i] for i in hits]] if start_weight is not None else np.zeros(0)
    if weights.sum() > 0:
        start = hits[int(rng.choice(len(hits), p=weights / weights.sum()))]
    else:
        start = hits[int(rng.integers(0, len(hits)))]
    return doc[start : start + length]


def build_retriever(indexer, problem: RetrievalProblem, ctx: RunContext) -> SealRetriever:
    from indexbench.generative import (
        cache_key_options,
        cached_training,
        dev_check,
        lexical_text_head,
        load_backbone,
        text_batch_loss,
        train_seq2seq,
    )
    from indexbench.ngram_index import CorpusIndex

    cfg = indexer.config
    backbone = load_backbone(cfg.backbone, device=ctx.device, seed=ctx.seed, decoder_layers=cfg.decoder_layers or None)
    # SEAL adds no ID tokens, so the decoder's token embeddings are the backbone's own (MiniLM's
    # for minilm-encdec, marked fresh there for the ID rows an ID indexer appends).
    backbone.fresh_parameters = tuple(f for f in backbone.fresh_parameters if "word_embeddings" not in f)

    started = time.perf_counter()
    docs = document_tokens(backbone, problem, cfg.index_max_length)
    index_key = {"corpus": problem.corpus.fingerprint, "tokenizer": backbone.identity["config"],
                 "backbone": cfg.backbone, "max_length": cfg.index_max_length, "version": indexer.version}
    index = ctx.cache.get_or_create("seal-corpus-index", index_key,
                                    lambda d: CorpusIndex.build(docs).save(d), CorpusIndex.load)
    index_s = time.perf_counter() - started

    head: dict[str, Any] = {"applied": False, "reason": "text_head=none"}

    def warm_start() -> None:
        nonlocal head
        if cfg.text_head == "lexical":
            inputs = backbone.text.tokenize([d.text for d in problem.corpus], max_length=cfg.doc_max_length)
            head = lexical_text_head(backbone, inputs, seed=ctx.seed, progress=ctx.progress)

    def train() -> dict[str, Any]:
        warm_start()
        loss = functools.partial(text_batch_loss, copy_bias=cfg.copy_bias)
        return {**train_seq2seq(backbone, examples, cfg, ctx, batch_loss=loss,
                                dev_check=lambda: dev_check(retriever, problem, cfg.dev_queries),
                                description=f"seal: training {cfg.backbone} on {len(examples):,} pairs"),
                "text_head": head}

    retriever = SealRetriever(backbone, index, problem.corpus.ids, cfg, problem.query_truncation)
    history: dict[str, Any] = {"steps": 0}
    if cfg.train:  # the warm start runs only when the trained model is not in the cache
        examples = training_examples(problem, backbone, docs, cfg, ctx.seed)
        key = {"backbone": backbone.identity, "examples": fingerprint_of(examples),
               "options": cache_key_options(cfg, engine_only=False), "seed": ctx.seed, "version": indexer.version}
        history = cached_training(ctx, "seal-models", key, backbone, train)
        head = history.pop("text_head", head)
    else:
        warm_start()
    indexer.details = {
        "backbone": cfg.backbone,
        "index": {**index.describe(), "seconds": index_s},
        "text_head": head,
        "num_beams": cfg.num_beams,
        "max_ngram": cfg.max_ngram,
        "training": {k: v for k, v in history.items() if k != "loss_curve"},
        "loss_curve": history.get("loss_curve", []),
    }
    return retriever
