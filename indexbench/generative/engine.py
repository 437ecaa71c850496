"""Turn an ID indexer into a retriever: IDs → trained ID generator → constrained search.

`GenerativeRetrieval(indexer)` is what a ranking task uses when an indexer only assigns IDs. It

1. asks the indexer for the corpus's IDs (`assign_ids`, which the indexer may cache);
2. loads the backbone named by the indexer's `GenerativeOptions` and adds the ID tokens;
3. lets the indexer initialise the model if it wants to (an optional
   ``init_generative_model(backbone, ids, ctx)`` method: LMIndexer starts from its own trained
   encoder-decoder and codebooks);
4. fine-tunes it on (query → ID) pairs, plus (document → ID) pairs for document retrieval (the
   DSI "indexing" examples), checking the dev set after each epoch; the trained weights are cached,
   keyed by backbone, IDs, training data, options and seed. With ``input=ids`` or ``both`` a
   recommendation query is the user's item history as ID tokens (`history_input`) and the pairs
   are (history prefix → next item's ID) over the training sequences;
5. returns a `GenerativeRetriever` ranking documents by the score of their ID (a
   `GenerativeHistoryRetriever`, which the task hands item histories, under ``input=ids``/``both``).
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import Any

from ..data import SemanticIds, fingerprint_of
from ..protocols import RetrievalProblem, RunContext, indexer_name
from .options import GenerativeOptions, cache_key_options

DEV_CHECK_QUERIES = 200
"""Dev queries decoded after each epoch (the first ones by id): enough to see progress, cheap."""


class GenerativeRetriever:
    """`Retriever` over a trained ID generator; returns at most ``num_beams`` documents a query."""

    def __init__(self, backbone, trie, doc_ids: Sequence[str], options: GenerativeOptions,
                 truncation: str = "right"):
        self.backbone = backbone
        self.trie = trie
        self.doc_ids = list(doc_ids)
        self.options = options
        self.truncation = truncation

    def search(self, queries: Sequence[str], k: int) -> list[list[tuple[str, float]]]:
        tokens = self.backbone.text.tokenize(list(queries), max_length=self.options.query_max_length,
                                             truncation=self.truncation)
        return self._search_tokens(tokens, k)

    def dev_tokens(self, problem: RetrievalProblem, qids: Sequence[str]) -> list[list[int]]:
        """The encoder inputs of dev queries ``qids``, as this retriever reads queries."""
        return self.backbone.text.tokenize([problem.dev.queries[q] for q in qids],
                                           max_length=self.options.query_max_length, truncation=self.truncation)

    def _search_tokens(self, tokens: list[list[int]], k: int) -> list[list[tuple[str, float]]]:
        import torch

        from .decoding import search_batched

        with torch.inference_mode(), self.backbone.autocast():
            docs, scores = search_batched(self.backbone, self.trie, tokens, self.options.num_beams,
                                          self.options.eval_batch_size)
        return [[(self.doc_ids[d], s) for d, s in zip(row_docs, row_scores) if d >= 0][:k]
                for row_docs, row_scores in zip(docs, scores)]


class GenerativeHistoryRetriever(GenerativeRetriever):
    """`GenerativeRetriever` whose queries are item histories read as semantic IDs
    (``input=ids`` or ``both``): a ranking task hands it the histories (`search_histories`)."""

    def __init__(self, backbone, trie, doc_ids: Sequence[str], options: GenerativeOptions, history_input):
        super().__init__(backbone, trie, doc_ids, options)
        self.history_input = history_input

    def search_histories(self, histories: Sequence[Sequence[str]], k: int,
                         users: Sequence[str] | None = None) -> list[list[tuple[str, float]]]:
        return self._search_tokens(self.history_input.batch(histories, users), k)

    def dev_tokens(self, problem: RetrievalProblem, qids: Sequence[str]) -> list[list[int]]:
        return self.history_input.batch([problem.dev.histories[q] for q in qids], qids)


class GenerativeRetrieval:
    """A retrieving indexer made from an ID indexer by the generative engine."""

    def __init__(self, indexer: Any):
        self.indexer = indexer
        self.name = indexer_name(indexer)
        config = getattr(indexer, "config", None)
        self.options = config if isinstance(config, GenerativeOptions) else GenerativeOptions()
        self.options.apply_preset()  # a no-op when the spec's parsing applied it already
        self.details: dict[str, Any] = {}

    def build_retriever(self, problem: RetrievalProblem, ctx: RunContext) -> GenerativeRetriever:
        import numpy as np

        from .backbones import load_backbone
        from .id_tokens import IdTrie

        opts = self.options
        started = time.perf_counter()
        ids: SemanticIds = self.indexer.assign_ids(problem.corpus, ctx)
        ids.validate(problem.corpus)
        ids_s = time.perf_counter() - started
        doc_ids = problem.corpus.ids
        codes = np.array([ids.ids[d] for d in doc_ids], dtype=np.int64)
        trie = IdTrie(codes, ids.codebook_sizes)

        backbone = load_backbone(opts.backbone, device=ctx.device, seed=ctx.seed,
                                 decoder_layers=opts.decoder_layers or None)
        backbone.add_id_tokens(ids.codebook_sizes)
        backbone.check_head()
        init = getattr(self.indexer, "init_generative_model", None)
        if init is not None:
            init(backbone, ids, ctx)

        if opts.input == "text":
            examples = self._examples(problem, backbone, ids)
            retriever = GenerativeRetriever(backbone, trie, doc_ids, opts, problem.query_truncation)
        else:
            history_input = self._history_input(problem, backbone, ids, ctx)
            examples = self._history_examples(problem, history_input, ids) + self._examples(
                problem, backbone, ids, query_pairs=False)
            retriever = GenerativeHistoryRetriever(backbone, trie, doc_ids, opts, history_input)
        key = {
            "backbone": backbone.identity,
            "ids": fingerprint_of(sorted((d, list(c)) for d, c in ids.ids.items())),
            "sizes": list(ids.codebook_sizes),
            "examples": fingerprint_of(examples),
            "options": cache_key_options(opts),
            "seed": ctx.seed,
            "init": getattr(self.indexer, "generative_init_key", None),
        }

        def train() -> dict[str, Any]:
            from .training import train_id_generation

            history: dict[str, Any] = {}
            # The warm start reads the documents' text through the encoder: a text input's view.
            if init is None and opts.id_init == "documents" and opts.input == "text":
                history["id_init"] = self._init_from_documents(backbone, problem, codes, ctx)
            history.update(train_id_generation(
                backbone, examples, opts, ctx, dev_check=lambda: dev_check(retriever, problem, opts.dev_queries),
                description=f"{self.name}: training {opts.backbone} on {len(examples):,} pairs"))
            return history

        history = cached_training(ctx, "generative-models", key, backbone, train)
        protocol = {"collision_policy": getattr(self.indexer, "collision_policy", "not reported"),
                    **id_protocol(retriever, problem, codes)}
        self.details = {
            "backbone": opts.backbone,
            "id_shape": list(ids.codebook_sizes),
            "num_beams": opts.num_beams,
            "assign_ids_s": ids_s,
            "training": {k: v for k, v in history.items() if k != "loss_curve"},
            "loss_curve": history.get("loss_curve", []),
            "indexer": getattr(self.indexer, "details", {}),
            "protocol": protocol,
        }
        return retriever

    def _init_from_documents(self, backbone, problem: RetrievalProblem, codes, ctx: RunContext) -> dict:
        from .id_init import init_first_position

        return init_first_position(backbone, self._document_tokens(backbone, problem), codes[:, 0],
                                   batch_size=self.options.eval_batch_size, seed=ctx.seed, progress=ctx.progress)

    def _document_tokens(self, backbone, problem: RetrievalProblem) -> list[list[int]]:
        """The corpus's texts tokenised once (indexing pairs and the ID warm start both read them)."""
        cached = getattr(self, "_doc_tokens", None)
        if cached is None or cached[0] is not problem.corpus:
            texts = [d.text for d in problem.corpus]
            cached = (problem.corpus, backbone.text.tokenize(texts, max_length=self.options.doc_max_length))
            self._doc_tokens = cached
        return cached[1]

    def _history_input(self, problem: RetrievalProblem, backbone, ids: SemanticIds, ctx: RunContext):
        from ..errors import ConfigError
        from .history_input import HistoryInput

        if not problem.sequences:
            raise ConfigError(f"input={self.options.input} reads item histories, which {problem.task}'s "
                              "queries do not have; use input=text")
        return HistoryInput(backbone, problem.corpus, ids, self.options.input,
                            user_buckets=self.options.user_buckets,
                            text_max_length=self.options.query_max_length, seed=ctx.seed)

    @staticmethod
    def _history_examples(problem: RetrievalProblem, history, ids: SemanticIds) -> list:
        """(history → next item's ID) for every prefix of every training sequence: the same
        targets as the text pairs (`recommendation.leave_one_out`), as ID tokens."""
        examples = []
        for user, items in problem.sequences.items():
            for target in range(1, len(items)):
                examples.append((history.tokens(items[:target], user), tuple(ids.ids[items[target]])))
        return examples

    def _examples(self, problem: RetrievalProblem, backbone, ids: SemanticIds, *, query_pairs: bool = True) -> list:
        opts = self.options
        examples = []
        if query_pairs:
            texts = [q for q, _ in problem.train_pairs]
            tokens = backbone.text.tokenize(texts, max_length=opts.query_max_length,
                                            truncation=problem.query_truncation)
            examples = [(tok, tuple(ids.ids[d])) for tok, (_, d) in zip(tokens, problem.train_pairs)]
        indexing = opts.indexing_pairs
        from ..errors import ConfigError

        if indexing not in ("auto", "yes", "no"):
            raise ConfigError(f"indexing_pairs must be auto, yes or no, not {indexing!r}")
        if opts.id_init not in ("documents", "none"):
            raise ConfigError(f"id_init must be documents or none, not {opts.id_init!r}")
        if indexing == "yes" or (indexing == "auto" and problem.documents_as_queries):
            examples += [(tok, tuple(ids.ids[d.id]))
                         for tok, d in zip(self._document_tokens(backbone, problem), problem.corpus)]
        return examples



def cached_training(ctx: RunContext, namespace: str, key: Any, backbone, train) -> dict[str, Any]:
    """Run ``train()`` (which trains ``backbone`` in place and returns its history) unless the
    artifact cache holds its result under ``key``; either way ``backbone`` ends with the trained
    weights, and the history of the training that made them is returned."""
    history: dict[str, Any] = {}

    def create(directory):
        import torch

        history.update(train())
        torch.save(backbone.state_dict(), directory / "model.pt")
        (directory / "history.json").write_text(json.dumps(history))

    def load(directory):
        import torch

        if not history:  # cache hit: restore the weights and report the original training
            backbone.load_state_dict(torch.load(directory / "model.pt", map_location=ctx.device))
            history.update(json.loads((directory / "history.json").read_text()))

    ctx.cache.get_or_create(namespace, key, create, load)
    return history


PROTOCOL_CUTOFF = 10
"""How many of each query's generated IDs the invalid-ID rates count (the deepest metric's cutoff)."""


def id_protocol(retriever: Any, problem: RetrievalProblem, codes) -> dict[str, float]:
    """The invalid-ID rates on the first `DEV_CHECK_QUERIES` dev queries: the share of the top
    `PROTOCOL_CUTOFF` generated IDs that name no item, under the constrained search the
    retriever ranks with (0 by construction; measured all the same) and under the same beam
    search with no trie (`decoding.free_beam_search`), which shows what the constraint removes."""
    import torch

    from .decoding import free_beam_search, search_batched

    qids = sorted(problem.dev.queries)[:DEV_CHECK_QUERIES]
    if not qids:
        return {}
    backbone, trie, opts = retriever.backbone, retriever.trie, retriever.options
    tokens = retriever.dev_tokens(problem, qids)
    constrained = free = invalid_constrained = invalid_free = 0
    with torch.inference_mode(), backbone.autocast():
        docs, _ = search_batched(backbone, trie, tokens, opts.num_beams, opts.eval_batch_size)
        for row in docs:
            for d in [d for d in row if d >= 0][:PROTOCOL_CUTOFF]:
                constrained += 1
                invalid_constrained += not trie.contains(tuple(int(c) for c in codes[d]))
        for lo in range(0, len(tokens), opts.eval_batch_size):
            ids, mask = backbone.text.collate(tokens[lo : lo + opts.eval_batch_size], backbone.device)
            generated, _ = free_beam_search(backbone, ids, mask, opts.num_beams)
            for row in generated[:, :PROTOCOL_CUTOFF].tolist():
                free += len(row)
                invalid_free += sum(not trie.contains(tuple(code)) for code in row)
    return {"invalid_id_rate": invalid_constrained / max(constrained, 1),
            "invalid_id_rate_free": invalid_free / max(free, 1), "protocol_queries": len(qids)}


def dev_check(retriever: Any, problem: RetrievalProblem, n_queries: int = DEV_CHECK_QUERIES) -> dict[str, float]:
    """recall@10 and NDCG@10 of ``retriever`` on the first ``n_queries`` dev queries (by id):
    progress shown after each training epoch, and what ``select_best`` chooses by."""
    from ..metrics import ranking_metrics

    qids = sorted(problem.dev.queries)[:n_queries]
    if not qids:
        return {}
    if hasattr(retriever, "search_histories") and problem.dev.histories:
        rankings = retriever.search_histories([problem.dev.histories[q] for q in qids], 10, users=qids)
    else:
        rankings = retriever.search([problem.dev.queries[q] for q in qids], 10)
    qrels = {q: problem.dev.qrels.get(q, {}) for q in qids}
    return ranking_metrics(dict(zip(qids, rankings)), qrels, ["recall@10", "ndcg@10"])
