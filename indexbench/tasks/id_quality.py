"""id-quality: do semantic IDs group documents the way their categories do? (paper §4.2, App. A.5)

The indexer assigns an ID to every document of the corpus; the task then measures the adjusted
mutual information (AMI) between ID prefixes and the category at levels 2 and 3 of each item's
category path, plus the per-position usage diagnostics of `indexbench.metrics.id_diagnostics`.
Categories never enter document text, so this is an honest test of what the IDs learned.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Mapping
from typing import Any

from ..data import Corpus, Dataset, SemanticIds
from ..metrics import ami, id_diagnostics
from ..protocols import FIT_METRIC_PREFIX, IdIndexer, RunContext, TaskResult
from ..protocols import indexer_name as _label

LEVELS = (2, 3)
"""Category levels compared with the IDs; level 1 is the dataset's root and carries nothing."""


def _check_ids(ids: Any, corpus: Corpus, indexer: Any) -> None:
    """Fail loudly on IDs that are not one valid, unique ID per corpus document."""
    if not isinstance(ids, SemanticIds):
        raise TypeError(f"{_label(indexer)}.assign_ids returned {type(ids).__name__}, not SemanticIds")
    try:
        ids.validate(corpus)
    except ValueError as exc:
        raise ValueError(f"{_label(indexer)} assigned invalid semantic IDs: {exc}") from exc
    extra = [doc_id for doc_id in ids.ids if doc_id not in corpus]
    if extra:
        raise ValueError(
            f"{_label(indexer)} assigned semantic IDs to {len(extra)} documents outside the corpus, "
            f"e.g. {extra[0]!r}"
        )


def _fit_metrics(indexer: Any) -> dict[str, float]:
    """The indexer's own `fit_metrics` (see `IdIndexer`), named ``fit_<name>``; a clear error for
    anything that is not a mapping of names to finite numbers."""
    reported = getattr(indexer, "fit_metrics", None)
    if reported is None:
        return {}
    if not isinstance(reported, Mapping):
        raise TypeError(f"{_label(indexer)}.fit_metrics is {type(reported).__name__}, not a mapping of names to numbers")
    out = {}
    for name, value in reported.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ValueError(f"{_label(indexer)}.fit_metrics[{name!r}] is {value!r}, not a finite number")
        out[f"{FIT_METRIC_PREFIX}{name}"] = float(value)
    return out


def code_usage(ids: SemanticIds) -> list[list[int]]:
    """Per position, how many documents each used code has, largest first: the rank-frequency
    curve behind ``perplexity@t`` and ``utilization@t`` (a report draws it)."""
    return [sorted(Counter(code[t] for code in ids.ids.values()).values(), reverse=True)
            for t in range(ids.length)]


def first_code_categories(ids: SemanticIds, categories: Mapping[str, tuple[str, ...]]) -> dict[str, dict[str, int]]:
    """Level-2 category (its path joined by " > ") -> {first code: documents}: how the
    categories spread over the first ID position (the paper's Fig. 3)."""
    table: dict[str, Counter] = {}
    for doc_id, path in categories.items():
        table.setdefault(" > ".join(path), Counter())[str(ids.ids[doc_id][0])] += 1
    return {category: dict(counts) for category, counts in sorted(table.items())}


class IdQualityTask:
    """AMI between ID prefixes and categories, plus ID usage diagnostics.

    Metrics, for IDs of length T (prefix lengths 1..T-1; the last position only de-duplicates):

    * ``ami_l2@k`` / ``ami_l3@k`` -- AMI between the length-k ID prefix and the level-2 / level-3
      category, over the items whose path reaches that level. A category is identified by its
      path down to that level, so two level-3 categories of the same name under different parents
      stay distinct.
    * ``ami_l2`` / ``ami_l3`` -- the headline values: the first position (prefix length 1), which
      is what the paper's Table 1 compares. Deeper prefixes are reported but make a poor
      headline: with the default K >= 2·sqrt(N) the (T-1)-prefix is nearly unique per document
      by design, and AMI of near-singleton clusters is about 0 for every indexer.
    * ``ami_path@k`` -- AMI against the full category path, over items with any category: what
      the paper's authors' script compares with the first ID position for Table 1.
    * the diagnostics of `id_diagnostics`: ``perplexity@t``, ``utilization@t``, ``diff_ratio@t``,
      ``collision_rate``, ``max_docs_per_prefix``.
    * ``fit_<name>`` -- what the indexer reports about its own training (`IdIndexer`'s
      ``fit_metrics``), higher better.

    An AMI is left out when fewer than two items reach its level.
    """

    name = "id-quality"
    description = (
        "AMI between semantic-ID prefixes and level-2/level-3 categories (paper §4.2), "
        "with per-position perplexity, codebook utilization, diff ratio and collision rate"
    )
    metrics = ("ami_l2", "ami_l3", "ami_path@1", "collision_rate", "max_docs_per_prefix")

    def skip_reason(self, indexer: Any, dataset: Dataset) -> str | None:
        if not isinstance(indexer, IdIndexer):
            return f"{_label(indexer)} assigns no semantic IDs; id-quality applies to ID indexers only"
        if not dataset.has_categories:
            return f"dataset {dataset.name!r} has no category paths, the ground truth of id-quality"
        return None

    def evaluate(self, indexer: Any, dataset: Dataset, ctx: RunContext) -> TaskResult:
        corpus = dataset.corpus
        start = time.perf_counter()
        ids = indexer.assign_ids(corpus, ctx)
        index_s = time.perf_counter() - start
        _check_ids(ids, corpus, indexer)

        id_length = ids.length
        prefix_lengths = range(1, max(id_length - 1, 1) + 1)
        truths = {f"l{level}": {d.id: d.categories[:level] for d in corpus if len(d.categories) >= level}
                  for level in LEVELS}
        truths["path"] = {d.id: d.categories for d in corpus if d.categories}

        metrics: dict[str, float] = {}
        for key, truth in truths.items():
            if len(truth) < 2:
                continue  # AMI of fewer than two items is meaningless (scikit-learn says 1.0)
            members = list(truth)
            for k in prefix_lengths:
                metrics[f"ami_{key}@{k}"] = ami(list(truth.values()), ids.prefixes(members, k))
            if key != "path":
                metrics[f"ami_{key}"] = metrics[f"ami_{key}@1"]
        metrics.update(id_diagnostics(ids))
        metrics.update(_fit_metrics(indexer))

        return TaskResult(
            metrics=metrics,
            timings={"index_s": index_s},
            details={
                "id_length": id_length,
                "codebook_sizes": list(ids.codebook_sizes),
                "code_usage": code_usage(ids),
                "first_code_categories": first_code_categories(ids, truths["l2"]),
                "n_documents": len(corpus),
                **{f"n_documents_{key}": len(truth) for key, truth in truths.items()},
                # Whatever the indexer chose to report about its IDs (timings, collisions, ...).
                "indexer": getattr(indexer, "details", {}),
            },
        )


id_quality_task = IdQualityTask()
"""The instance the core registers."""

__all__ = ["LEVELS", "IdQualityTask", "code_usage", "first_code_categories", "id_quality_task"]
