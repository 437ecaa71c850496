"""What every ranking task shares: build a `RetrievalProblem`, hand it to the indexer, rank the
held-out test queries, score the rankings with ir-measures, and time each step.

A concrete task only says how its queries, relevance judgements and training pairs come out of a
dataset (`split`), and which metrics it reports.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any, ClassVar

from ..data import Dataset
from ..protocols import (
    HistoryRetriever,
    IdIndexer,
    QuerySet,
    RetrievalProblem,
    RetrievingIndexer,
    RunContext,
    TaskResult,
    indexer_name,
    needs_histories,
)

SEARCH_BATCH = 64
"""Queries per `Retriever.search` call when ranking the whole test set."""

LATENCY_PROBE = 50
"""Queries timed one at a time for per-query latency; batched throughput is measured separately."""


class RankingTask:
    name: ClassVar[str]
    description: ClassVar[str]
    metrics: ClassVar[Sequence[str]]
    reference: ClassVar[str] = ""

    # -- what subclasses provide -------------------------------------------------------------

    def dataset_skip_reason(self, dataset: Dataset) -> str | None:
        """Why ``dataset`` cannot support this task (None if it can)."""
        raise NotImplementedError

    def split(self, dataset: Dataset) -> tuple[RetrievalProblem, QuerySet]:
        """The problem the indexer sees and the test set it is scored on."""
        raise NotImplementedError

    # -- the shared protocol --------------------------------------------------------------

    @property
    def cutoff(self) -> int:
        """How many documents to retrieve per query: the deepest metric cutoff."""
        return max(int(m.split("@")[1]) for m in self.metrics)

    def no_test_queries_cause(self, dataset: Dataset) -> str:
        """Why this dataset yields no usable test query (a subclass says it in its own terms)."""
        return "no test query has a relevant document in the corpus"

    has_histories: ClassVar[bool] = False
    """Whether the test queries carry item-ID histories (`QuerySet.histories`)."""

    def skip_reason(self, indexer: Any, dataset: Dataset) -> str | None:
        if not isinstance(indexer, (RetrievingIndexer, IdIndexer)):
            return f"{indexer_name(indexer)} implements neither build_retriever nor assign_ids"
        if needs_histories(indexer) and not self.has_histories:
            return (f"{indexer_name(indexer)} ranks items from users' item histories; "
                    f"{self.name}'s queries are text")
        return self.dataset_skip_reason(dataset) or self._test_queries_reason(dataset)

    def _test_queries_reason(self, dataset: Dataset) -> str | None:
        """Decided before any fitting (the split is cheap next to training a model): a cell
        without one scorable test query is skipped with its cause, not trained and then failed."""
        _, test = self.split(dataset)
        corpus = dataset.corpus
        if any(q in test.queries and any(rel > 0 and doc in corpus for doc, rel in judged.items())
               for q, judged in test.qrels.items()):
            return None
        return f"dataset {dataset.name} gives {self.name} no usable test query: {self.no_test_queries_cause(dataset)}"

    def evaluate(self, indexer: Any, dataset: Dataset, ctx: RunContext) -> TaskResult:
        from ..metrics import mean_metrics, per_query_metrics

        if not isinstance(indexer, RetrievingIndexer):
            # An ID indexer retrieves through the core's generative engine.
            from ..generative.engine import GenerativeRetrieval

            indexer = GenerativeRetrieval(indexer)
        problem, test = self.split(dataset)
        started = time.perf_counter()
        retriever = indexer.build_retriever(problem, ctx)
        fit_s = time.perf_counter() - started

        qids = list(test.queries)
        if test.histories and isinstance(retriever, HistoryRetriever):
            inputs: list[Any] = [(q, test.histories[q]) for q in qids]
            search = history_search(retriever)
        else:
            inputs = [test.queries[q] for q in qids]
            search = retriever.search
        rankings: dict[str, list[tuple[str, float]]] = {}
        started = time.perf_counter()
        with ctx.progress.task(f"{self.name}: ranking {len(qids):,} test queries", total=len(qids)) as bar:
            for lo in range(0, len(qids), SEARCH_BATCH):
                batch = search(inputs[lo : lo + SEARCH_BATCH], self.cutoff)
                for qid, ranking in zip(qids[lo : lo + SEARCH_BATCH], batch):
                    rankings[qid] = ranking
                bar.advance(len(batch))
        search_s = time.perf_counter() - started

        latencies = []
        for one in inputs[:LATENCY_PROBE]:
            t0 = time.perf_counter()
            search([one], self.cutoff)
            latencies.append(time.perf_counter() - t0)

        per_query = per_query_metrics(rankings, test.qrels, self.metrics)
        metrics = mean_metrics(per_query, self.metrics)
        return TaskResult(
            metrics=metrics,
            per_query=per_query,
            rankings={q: [(str(d), float(score)) for d, score in r] for q, r in rankings.items()},
            qrels={str(q): {str(d): int(v) for d, v in judged.items()} for q, judged in test.qrels.items()},
            timings={
                "fit_s": fit_s,
                "search_s": search_s,
                "queries_per_s": len(qids) / search_s if search_s > 0 else float("inf"),
                **_percentiles_ms(latencies),
            },
            details={
                "n_documents": len(problem.corpus),
                "n_train_pairs": len(problem.train_pairs),
                "n_dev_queries": len(problem.dev),
                "n_test_queries": len(test),
                "cutoff": self.cutoff,
                # The probe's single-query latencies, in query order (a report draws their spread).
                "latencies_ms": [round(s * 1000, 3) for s in latencies],
                # Whatever the indexer chose to report about its build (training losses, ...).
                "indexer": getattr(indexer, "details", {}),
            },
        )


def history_search(retriever: Any):
    """A function of ([(user, history), ...], k) calling ``retriever.search_histories``, which
    is handed the users as well when it takes them (a model with a user token)."""
    import inspect

    method = retriever.search_histories
    with_users = "users" in inspect.signature(method).parameters

    def search(batch: Sequence[Any], k: int):
        histories = [h for _, h in batch]
        if with_users:
            return method(histories, k, users=[q for q, _ in batch])
        return method(histories, k)

    return search


def _percentiles_ms(seconds: list[float]) -> dict[str, float]:
    if not seconds:
        return {}
    ordered = sorted(seconds)

    def pick(q: float) -> float:
        # Nearest-rank percentile: a value that was actually observed.
        return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered) + 0.5) - 1))] * 1000

    return {"latency_p50_ms": pick(0.50), "latency_p95_ms": pick(0.95)}
