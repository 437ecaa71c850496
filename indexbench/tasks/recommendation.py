"""recommendation (paper §5.1, Table 3): next-item prediction with leave-one-out splits.

For each user's time-ordered sequence the last item is the test target and the second-to-last the
dev target; every earlier prefix (at least one item) predicting the item after it is a training
example. Histories are capped at the most recent 20 items. The query text is the titles of the
history items, most recent last, so a retriever that must truncate keeps the end
(``query_truncation="left"``). Ranking is over the full catalogue, without sampled negatives and
without removing already-seen items (repeat purchases are real targets in this data).
"""

from __future__ import annotations

from ..data import Corpus, Dataset
from ..protocols import QuerySet, RetrievalProblem
from .ranking import RankingTask

MAX_HISTORY = 20
TITLE_SEPARATOR = " ; "


def history_text(corpus: Corpus, history: list[str]) -> str:
    return TITLE_SEPARATOR.join(corpus.get(item).title or corpus.get(item).text for item in history)


def leave_one_out(corpus: Corpus, interactions: dict[str, list[str]]):
    """(train pairs, dev set, test set, training sequences) of the protocol; users with < 3
    items only feed training. The dev and test sets carry each user's whole history as item ids
    (`QuerySet.histories`); the text queries keep its last `MAX_HISTORY` titles."""
    pairs: list[tuple[str, str]] = []
    sequences: dict[str, list[str]] = {}
    dev = QuerySet({}, {})
    test = QuerySet({}, {})
    for user, items in interactions.items():
        n = len(items)
        for target in range(1, n - 2):
            history = items[max(0, target - MAX_HISTORY) : target]
            pairs.append((history_text(corpus, history), items[target]))
        sequences[user] = list(items[: max(n - 2, 1)] if n >= 3 else items[: max(n - 1, 1)])
        if n >= 3:
            dev.queries[user] = history_text(corpus, items[max(0, n - 2 - MAX_HISTORY) : n - 2])
            dev.qrels[user] = {items[n - 2]: 1}
            dev.histories[user] = list(items[: n - 2])
        if n >= 2:
            test.queries[user] = history_text(corpus, items[max(0, n - 1 - MAX_HISTORY) : n - 1])
            test.qrels[user] = {items[n - 1]: 1}
            test.histories[user] = list(items[: n - 1])
    return pairs, dev, test, sequences


class RecommendationTask(RankingTask):
    name = "recommendation"
    description = "Predict each user's next item from the titles of the items before it."
    metrics = ("recall@5", "ndcg@5", "recall@10", "ndcg@10")
    reference = "Jin et al. 2024 §5.1; TIGER (Rajput et al. 2023)"
    has_histories = True

    def dataset_skip_reason(self, dataset: Dataset) -> str | None:
        if not dataset.interactions:
            return f"dataset {dataset.name} has no user interaction sequences"
        return None

    def no_test_queries_cause(self, dataset: Dataset) -> str:
        return ("no user has two or more interactions with items of the corpus (a user's test target is "
                "the last item and needs at least one before it)")

    def split(self, dataset: Dataset) -> tuple[RetrievalProblem, QuerySet]:
        pairs, dev, test, sequences = leave_one_out(dataset.corpus, dataset.interactions or {})
        problem = RetrievalProblem(task=self.name, corpus=dataset.corpus, train_pairs=pairs, dev=dev,
                                   query_truncation="left", sequences=sequences)
        return problem, test
