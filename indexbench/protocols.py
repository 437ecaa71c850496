"""The contracts between the core and plugins: indexers, retrievers, tasks and their context.

Two kinds of indexer share one CLI word:

* a **retrieving indexer** (BM25, dual encoder, ...) turns a `RetrievalProblem` into a
  `Retriever` directly;
* an **ID indexer** (hierarchical clustering, rq-VAE, LMIndexer, ...) assigns every document a
  semantic ID; the core's generative engine turns those IDs into a retriever.

A task decides which kinds it can evaluate and reports every other cell as skipped, with the
reason, rather than failing.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, TypeVar, runtime_checkable

from .cache import ArtifactCache
from .data import Corpus, Dataset, Qrels, Queries, SemanticIds

T = TypeVar("T")

Ranking = list[tuple[str, float]]
"""Document ids with scores, best first."""


# --------------------------------------------------------------------------- progress reporting


class ProgressTask(Protocol):
    def advance(self, n: int = 1) -> None: ...
    def set_status(self, text: str) -> None: ...


LOG_LEVELS = ("info", "detail", "ok", "skipped", "error", "warning")
"""What a `Progress.log` message is: ``info`` (the default), ``detail`` (routine, shown dimmed),
``ok`` / ``skipped`` / ``error`` (a cell's outcome), ``warning`` (something the user should act
on). Messages are plain text; how a level looks is the implementation's business."""


class Progress(Protocol):
    """How long steps report progress. The CLI passes a Rich implementation; the library
    default is silent, so embedding indexbench in other code prints nothing."""

    def task(self, description: str, total: int | None = None) -> Any:
        """A context manager yielding a `ProgressTask`."""
        ...

    def track(self, items: Iterable[T], description: str, total: int | None = None) -> Iterator[T]: ...

    def log(self, message: str, level: str = "info") -> None:
        """One line of plain text (never markup), of one of `LOG_LEVELS`."""
        ...


class _NullTask:
    def advance(self, n: int = 1) -> None:
        pass

    def set_status(self, text: str) -> None:
        pass


class SilentProgress:
    """A `Progress` that reports nothing."""

    @contextmanager
    def task(self, description: str, total: int | None = None):
        yield _NullTask()

    def track(self, items: Iterable[T], description: str, total: int | None = None) -> Iterator[T]:
        yield from items

    def log(self, message: str, level: str = "info") -> None:
        pass


# --------------------------------------------------------------------------- run context


@dataclass
class RunContext:
    """What every indexer and task receives for one cell of a grid."""

    seed: int = 0
    device: str = "cpu"
    cache: ArtifactCache = field(default_factory=ArtifactCache.disabled)
    progress: Progress = field(default_factory=SilentProgress)
    dataset_name: str = ""
    task_name: str = ""


# --------------------------------------------------------------------------- retrieval problem


@dataclass
class QuerySet:
    """Queries with their relevance judgements (one split of a task).

    ``histories`` is set by tasks whose queries are users (recommendation): each query's whole
    history as item (document) ids, oldest first, uncapped -- what an ID-based recommender
    reads instead of the query text (`HistoryRetriever`). Empty for other tasks."""

    queries: dict[str, str]
    qrels: dict[str, dict[str, int]]
    histories: dict[str, list[str]] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.queries)


@dataclass
class RetrievalProblem:
    """What a ranking task hands an indexer: the corpus to index plus supervision.

    The test split is deliberately absent: the task keeps it and evaluates the returned
    retriever on it, so no indexer can peek.

    ``train_pairs`` are (query text, relevant document id) pairs for fine-tuning. A retriever
    that truncates long queries must follow ``query_truncation``: "left" keeps the end of the
    text (recommendation histories put the most recent item last).

    ``documents_as_queries`` says a document's own text is a fair stand-in query for it (a
    query describes the document, as in search; not so for a purchase history). Generative
    systems then also train on (document text -> its ID) pairs -- DSI's "indexing" examples --
    which is how they learn the IDs of documents no training query points at.

    ``sequences`` is set by tasks whose queries are users (recommendation): each user's
    training part as item ids, oldest first -- every item before the user's dev target, so no
    dev or test target is in it. An ID-based recommender trains on these and reads
    ``dev.histories`` for early stopping; the text pairs are the same data as titles.
    """

    task: str
    corpus: Corpus
    train_pairs: list[tuple[str, str]]
    dev: QuerySet
    query_truncation: Literal["right", "left"] = "right"
    documents_as_queries: bool = False
    sequences: dict[str, list[str]] = field(default_factory=dict)

    @property
    def fingerprint(self) -> str:
        from .data import fingerprint_of

        parts = [self.task, self.corpus.fingerprint, self.train_pairs, self.dev.queries, self.dev.qrels,
                 self.query_truncation, self.documents_as_queries]
        if self.sequences or self.dev.histories:  # only then: other problems keep their cache keys
            parts += [self.sequences, self.dev.histories]
        return fingerprint_of(parts)


@runtime_checkable
class Retriever(Protocol):
    def search(self, queries: Sequence[str], k: int) -> list[Ranking]:
        """Return the top-``k`` documents for each query, best first."""
        ...


@runtime_checkable
class HistoryRetriever(Protocol):
    """A retriever that ranks from a user's item-ID history (sasrec, most-popular). A task
    whose test set has `QuerySet.histories` calls this instead of `Retriever.search`."""

    def search_histories(self, histories: Sequence[Sequence[str]], k: int) -> list[Ranking]:
        """The top-``k`` items for each history (item ids, oldest first), best first.

        A retriever whose method also takes ``users`` (the query ids, i.e. the users whose
        histories these are) is passed them: a model with a user token reads them."""
        ...


def needs_histories(indexer: Any) -> bool:
    """Whether ``indexer`` ranks only from item-ID histories (a class attribute
    ``needs_histories = True``, or an ID indexer whose engine reads histories as IDs:
    ``input=ids`` or ``both``): tasks without histories skip it, saying why."""
    if getattr(indexer, "needs_histories", False):
        return True
    return getattr(getattr(indexer, "config", None), "input", "text") in ("ids", "both")


@runtime_checkable
class RetrievingIndexer(Protocol):
    def build_retriever(self, problem: RetrievalProblem, ctx: RunContext) -> Retriever: ...


@runtime_checkable
class IdIndexer(Protocol):
    """Assigns every document of a corpus a semantic ID.

    After `assign_ids` an ID indexer may also expose ``fit_metrics``, a mapping of names to
    finite numbers, higher better, that say how well its own training fitted (LMIndexer: how far
    its reconstructor got below the unigram baseline). The id-quality task records them as
    ``fit_<name>`` metrics beside the ID metrics, so the gate checks them like any other: a
    regression in training that leaves the IDs unchanged still shows.
    """

    def assign_ids(self, corpus: Corpus, ctx: RunContext) -> SemanticIds: ...


FIT_METRIC_PREFIX = "fit_"
"""How the id-quality task names an indexer's `fit_metrics` in a record."""


Indexer = RetrievingIndexer | IdIndexer


def indexer_name(indexer: Any) -> str:
    """How messages name an indexer: its ``name`` attribute, else its class name."""
    return getattr(indexer, "name", type(indexer).__name__)


# --------------------------------------------------------------------------- task


@dataclass
class TaskResult:
    """What a task returns for one cell: metric values, timings and free-form details; a ranking
    task also returns each test query's metric values, its ranking and its judgements (kept in
    the store for significance tests and TREC run files)."""

    metrics: dict[str, float]
    timings: dict[str, float] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)
    per_query: dict[str, dict[str, float]] = field(default_factory=dict)
    rankings: dict[str, list[tuple[str, float]]] = field(default_factory=dict)
    qrels: dict[str, dict[str, int]] = field(default_factory=dict)


@runtime_checkable
class Task(Protocol):
    """A task is a class with metadata (like an MTEB task) and two methods."""

    name: str
    description: str
    metrics: Sequence[str]

    def skip_reason(self, indexer: Any, dataset: Dataset) -> str | None:
        """Why this task cannot evaluate ``indexer`` on ``dataset``, or None if it can."""
        ...

    def evaluate(self, indexer: Any, dataset: Dataset, ctx: RunContext) -> TaskResult: ...


__all__ = [
    "FIT_METRIC_PREFIX", "LOG_LEVELS", "Corpus", "Dataset", "HistoryRetriever", "IdIndexer", "Indexer", "Progress",
    "ProgressTask", "Qrels", "Queries", "QuerySet", "Ranking", "RetrievalProblem", "Retriever", "RetrievingIndexer",
    "RunContext", "SemanticIds", "SilentProgress", "Task", "TaskResult", "indexer_name", "needs_histories",
]
