"""most-popular: every user gets the same ranking, the items bought most often -- the floor every
recommender must beat.

Counts come from the training part of each user's sequence only (`RetrievalProblem.sequences`:
every item before the user's dev target), never from a dev or test target, so the floor is not
raised by the answers. Ties go to the earlier item of the corpus, so the ranking is the same on
every machine. Already-bought items are not removed (the recommendation task ranks the full
catalogue; repeat purchases are real targets).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from indexbench import IndexerEntry, hookimpl
from indexbench.errors import ConfigError
from indexbench.protocols import RetrievalProblem, RunContext

__version__ = "0.1.0"


class PopularityRanking:
    """One ranking for every history: items by training count, then corpus order."""

    def __init__(self, ranked: list[tuple[str, float]]):
        self._ranked = ranked

    def search_histories(self, histories: Sequence[Sequence[str]], k: int) -> list[list[tuple[str, float]]]:
        return [list(self._ranked[:k]) for _ in histories]

    def search(self, queries: Sequence[str], k: int) -> list[list[tuple[str, float]]]:
        return [list(self._ranked[:k]) for _ in queries]


class MostPopular:
    name = "most-popular"
    needs_histories = True

    def __init__(self, config=None):
        self.details: dict = {}

    def build_retriever(self, problem: RetrievalProblem, ctx: RunContext) -> PopularityRanking:
        if not problem.sequences:
            raise ConfigError(f"most-popular needs users' item sequences; {problem.task} has none")
        counts = Counter(item for items in problem.sequences.values() for item in items)
        order = {doc_id: row for row, doc_id in enumerate(problem.corpus.ids)}
        ranked = sorted(order, key=lambda item: (-counts[item], order[item]))
        self.details = {"n_counted_interactions": sum(counts.values()), "n_items_seen": len(counts)}
        return PopularityRanking([(item, float(counts[item])) for item in ranked])


@hookimpl
def register_indexers(register):
    register(IndexerEntry(
        name="most-popular",
        factory=MostPopular,
        description="Most-popular items from the training sequences: the recommendation floor",
        kind="retrieval",
        uses_device=False,
    ))
