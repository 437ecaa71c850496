"""BM25 lexical retrieval (bm25s), the classic baseline of every table in the paper.

Defaults, and why:

* ``method="lucene"``, ``k1=1.2``, ``b=0.75``: the scoring of Elasticsearch/Lucene with its default
  parameters, which is what the BEIR paper ran to get SciFact nDCG@10 = 0.665. They are the
  protocol's values, not tuned on any test set.
* Tokenisation ``\\w\\w+`` lower-cased, English stop words removed, Snowball English stemming
  (PyStemmer): the nearest equivalent of Elasticsearch's ``english`` analyzer.

Everything heavy (bm25s, numpy, the stemmer) is imported inside methods so that loading the plugin
costs nothing at CLI start.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from indexbench import IndexerEntry, hookimpl, option
from indexbench.protocols import RetrievalProblem, RunContext

__version__ = "0.1.1"


@dataclass
class BM25Config:
    k1: float = option(1.2, ge=0)
    b: float = option(0.75, ge=0, le=1)
    method: str = option("lucene", choices=("lucene", "robertson", "atire", "bm25l", "bm25+"))
    stemmer: str = "english"
    stopwords: str = "en"


class BM25Retriever:
    def __init__(self, model, tokenizer, doc_ids: list[str]):
        self._model = model
        self._tokenizer = tokenizer
        self._doc_ids = doc_ids

    def search(self, queries: Sequence[str], k: int) -> list[list[tuple[str, float]]]:
        k = min(k, len(self._doc_ids))
        tokens = self._tokenizer.tokenize(list(queries), update_vocab=False, return_as="ids",
                                          show_progress=False)
        # A query with no known term gets an empty token list; bm25s then scores every document
        # 0, and the ranking is arbitrary but still well-formed.
        rows, scores = self._model.retrieve(tokens, k=k, show_progress=False)
        # Equal scores are common on short texts, and bm25s's top-k leaves their order to
        # numpy's sort, which differs by CPU (AVX-512 machines sort with another, unstable
        # kernel): ties go to the earlier document, so a ranking is the same on every machine.
        import numpy as np

        rows, scores = np.asarray(rows), np.asarray(scores)
        order = np.lexsort((rows, -scores))  # per query: score descending, then document index
        rows, scores = np.take_along_axis(rows, order, 1), np.take_along_axis(scores, order, 1)
        return [
            [(self._doc_ids[r], float(s)) for r, s in zip(row_ids, row_scores)]
            for row_ids, row_scores in zip(rows, scores)
        ]


class BM25Indexer:
    name = "bm25"

    def __init__(self, config: BM25Config | None = None):
        self.config = config or BM25Config()

    def _tokenizer(self):
        import Stemmer
        from bm25s.tokenization import Tokenizer

        stemmer = Stemmer.Stemmer(self.config.stemmer).stemWord if self.config.stemmer else None
        return Tokenizer(lower=True, stopwords=self.config.stopwords or None, stemmer=stemmer)

    def build_retriever(self, problem: RetrievalProblem, ctx: RunContext) -> BM25Retriever:
        import bm25s

        cfg = self.config
        corpus = problem.corpus

        def create(directory: Path) -> None:
            tokenizer = self._tokenizer()
            tokens = tokenizer.tokenize(corpus.texts, return_as="ids", show_progress=False)
            model = bm25s.BM25(k1=cfg.k1, b=cfg.b, method=cfg.method)
            model.index(tokens, show_progress=False)
            model.save(str(directory), show_progress=False)
            tokenizer.save_vocab(str(directory))

        def load(directory: Path) -> BM25Retriever:
            tokenizer = self._tokenizer()
            tokenizer.load_vocab(str(directory))
            model = bm25s.BM25.load(str(directory), show_progress=False)
            return BM25Retriever(model, tokenizer, corpus.ids)

        key = {"corpus": corpus.fingerprint, "config": vars(cfg), "bm25s": _bm25s_version()}
        with ctx.progress.task(f"bm25: indexing {len(corpus):,} documents"):
            return ctx.cache.get_or_create("bm25", key, create, load)


def _bm25s_version() -> str:
    from importlib.metadata import version

    return version("bm25s")


@hookimpl
def register_indexers(register):
    register(IndexerEntry(
        name="bm25",
        factory=BM25Indexer,
        config_class=BM25Config,
        description="BM25 (Lucene variant, k1=1.2, b=0.75, English stemming) via bm25s",
        kind="retrieval",
        uses_device=False,
    ))
