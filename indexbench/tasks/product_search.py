"""product-search (paper §5.2, Table 4) with queries built from category paths.

Follows the Amazon product-search protocol of Van Gysel et al. (2016) and Ai et al. (2017): a
query is the lower-cased words of an item's category path below the root, with stop words and
repeated words removed; identical queries are merged, and every item whose path yields a query is
relevant to it. Queries are split 70/10/20 (train/dev/test) with a fixed seed that does not
depend on the run's ``--seed``, so every run and every indexer is scored on the same test queries.

On amazon-scientific this yields 755 queries with a median of 2 relevant items. The stop-word
list is scikit-learn's English list and a word is a run of ``[a-z0-9]``; with that tokenisation
the 755 of the protocol is reproduced exactly.
"""

from __future__ import annotations

import random
import re

from ..data import Corpus, Dataset
from ..protocols import QuerySet, RetrievalProblem
from .ranking import RankingTask

SPLIT_SEED = 20160707  # fixed by the protocol, deliberately not the run's --seed
SPLIT = (0.7, 0.1, 0.2)
_WORD = re.compile(r"[a-z0-9]+")


def category_query(path: tuple[str, ...], stop_words: frozenset[str]) -> str:
    """The query for one category path (root first); "" when nothing is left."""
    words: list[str] = []
    for word in _WORD.findall(" ".join(path[1:]).lower()):
        if word not in stop_words and word not in words:
            words.append(word)
    return " ".join(words)


def build_queries(corpus: Corpus) -> dict[str, list[str]]:
    """Query text -> ids of the relevant items, in corpus order."""
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

    stop = frozenset(ENGLISH_STOP_WORDS)
    queries: dict[str, list[str]] = {}
    for doc in corpus:
        text = category_query(doc.categories, stop)
        if text:
            queries.setdefault(text, []).append(doc.id)
    return queries


def split_queries(texts: list[str]) -> tuple[list[str], list[str], list[str]]:
    ordered = sorted(texts)
    random.Random(SPLIT_SEED).shuffle(ordered)
    n_train = round(SPLIT[0] * len(ordered))
    n_dev = round(SPLIT[1] * len(ordered))
    return ordered[:n_train], ordered[n_train : n_train + n_dev], ordered[n_train + n_dev :]


class ProductSearchTask(RankingTask):
    name = "product-search"
    description = "Find the products of a category from a keyword query built from its category path."
    metrics = ("ndcg@5", "map@5", "recall@10")
    reference = "Jin et al. 2024 §5.2; Van Gysel et al. 2016; Ai et al. 2017"

    def dataset_skip_reason(self, dataset: Dataset) -> str | None:
        if not dataset.has_categories:
            return f"dataset {dataset.name} has no category paths to build product-search queries from"
        return None

    def no_test_queries_cause(self, dataset: Dataset) -> str:
        n = len(build_queries(dataset.corpus))
        if n == 0:
            return "no item's category path goes below the root, and the root alone makes no query"
        return (f"its category paths make only {n} distinct quer{'y' if n == 1 else 'ies'}, "
                f"too few for a {SPLIT[2]:.0%} test split")

    def split(self, dataset: Dataset) -> tuple[RetrievalProblem, QuerySet]:
        queries = build_queries(dataset.corpus)
        train, dev, test = split_queries(list(queries))
        ids = {text: f"q{i}" for i, text in enumerate(sorted(queries))}

        def query_set(texts: list[str]) -> QuerySet:
            return QuerySet(queries={ids[t]: t for t in texts},
                            qrels={ids[t]: {doc: 1 for doc in queries[t]} for t in texts})

        pairs = [(text, doc) for text in train for doc in queries[text]]
        # The split is by query and every item has one category path, so no test item is the
        # target of a training query: a generative system learns their IDs only from the items'
        # own text (documents_as_queries).
        problem = RetrievalProblem(task=self.name, corpus=dataset.corpus, train_pairs=pairs,
                                   dev=query_set(dev), documents_as_queries=True)
        return problem, query_set(test)
