"""What `indexbench compare` finds, metric by metric and cell by cell, and the paired tests it
uses: shared by the per-seed rule (`indexbench.compare`) and the spread rule
(`indexbench.spread`)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from .store import RunRecord, cell_key

COMPARED_TIMINGS = ("fit_s", "search_s", "index_s")
"""Timings compared when timing tolerances are on (queries/s and latencies follow from these)."""

LOWER_IS_BETTER = frozenset({"collision_rate", "max_docs_per_prefix"})
"""Metrics where a rise is the regression: id-quality's collisions before de-duplication and the
largest group sharing a full ID. Every other metric is higher-is-better."""


def lower_is_better(metric: str) -> bool:
    return metric in LOWER_IS_BETTER


def by_group(records: Sequence[RunRecord], *, ok_only: bool = False) -> dict[tuple[str, str, str], dict[int, RunRecord]]:
    """Records by cell (dataset, task, indexer), then by seed; ``ok_only`` drops the rest."""
    groups: dict[tuple[str, str, str], dict[int, RunRecord]] = {}
    for record in records:
        if ok_only and record.status != "ok":
            continue
        dataset, task, indexer, seed = cell_key(record)
        groups.setdefault((dataset, task, indexer), {})[seed] = record
    return groups


@dataclass
class MetricCheck:
    name: str
    baseline: float | None
    current: float | None
    allowed: float  # the largest worsening that passes
    status: str  # ok | improved | regressed | missing
    lower_is_better: bool = False
    p_ttest: float | None = None
    p_wilcoxon: float | None = None
    n_queries: int = 0
    baseline_sd: float | None = None  # across seeds, on a mean-of-seeds or spread row
    current_sd: float | None = None
    noise: float | None = None  # spread rule: standard deviation of the difference of the means
    rule: str = ""  # spread rule: spread (seed-dependent cell) | fixed (deterministic cell); indexbench.spread
    n_seeds: tuple[int, int] | None = None  # spread rule: seeds on each side

    @property
    def delta(self) -> float | None:
        if self.baseline is None or self.current is None:
            return None
        return self.current - self.baseline

    @property
    def worsening(self) -> float | None:
        """How much worse than the baseline (negative: better)."""
        if self.delta is None:
            return None
        return self.delta if self.lower_is_better else -self.delta

    @property
    def used(self) -> float | None:
        """The share of the tolerance the change used up (1 = at the edge); None when it got
        better or no tolerance applies."""
        worse = self.worsening
        if worse is None or worse <= 1e-12 or self.allowed <= 0:
            return None
        return worse / self.allowed


@dataclass
class CellCheck:
    key: tuple[str, str, str, int]
    status: str  # ok | regressed | missing | error | new | skipped
    reason: str = ""
    metrics: list[MetricCheck] = field(default_factory=list)
    seeds: tuple[tuple[int, ...], tuple[int, ...]] | None = None  # each side's seeds (mean or spread row)
    gating: bool = True  # False: a drop is shown but does not fail (tolerance.seeds)
    rule: str = "fixed"  # fixed | spread
    environment: list[str] = field(default_factory=list)  # what differs between this cell's two sides

    @property
    def label(self) -> str:
        dataset, task, indexer, seed = self.key
        if self.seeds is not None:
            base, now = (",".join(map(str, s)) for s in self.seeds)
            if self.rule == "spread":
                return f"{dataset} · {task} · {indexer} · seeds {base} → {now}"
            return f"{dataset} · {task} · {indexer} · mean of seeds {base}" + (f" → {now}" if now != base else "")
        return f"{dataset} · {task} · {indexer}" + (f" · seed {seed}" if seed else "")

    @property
    def failed(self) -> bool:
        if self.status == "regressed":
            return self.gating
        return self.status in {"missing", "error"}

    @property
    def closest(self) -> MetricCheck | None:
        """The metric nearest to failing (the largest share of its tolerance used)."""
        used = [c for c in self.metrics if c.used is not None]
        return max(used, key=lambda c: c.used, default=None)


@dataclass
class Comparison:
    baseline: str
    current: str
    cells: list[CellCheck]
    environment: list[str] = field(default_factory=list)  # "cpu: x86_64 avx2 → x86_64 avx512", ...
    rule: str = "fixed"

    @property
    def failed(self) -> list[CellCheck]:
        return [c for c in self.cells if c.failed]


def describe(check: MetricCheck) -> str:
    if check.status == "missing":
        return "is missing now"
    text = f"{check.baseline:.4f} → {check.current:.4f} ({check.delta:+.4f}, tolerance ±{check.allowed:.4f}"
    if check.rule == "spread":
        text += f" = max(k × noise {check.noise or 0:.4f}, one query, floor)"
    return text + ")"


def paired_tests(baseline: Sequence[float], current: Sequence[float]) -> tuple[float | None, float | None]:
    """(paired t-test p, Wilcoxon signed-rank p), two-sided; 1.0 when no query changed, None with
    fewer than two pairs."""
    if len(baseline) < 2:
        return None, None
    differences = [c - b for b, c in zip(baseline, current)]
    if all(abs(d) < 1e-12 for d in differences):
        return 1.0, 1.0
    import warnings

    from scipy import stats

    with warnings.catch_warnings():  # near-constant differences: scipy warns, the p-value stands
        warnings.simplefilter("ignore", RuntimeWarning)
        t = stats.ttest_rel(current, baseline)
        p_t = float(t.pvalue) if not math.isnan(t.pvalue) else 1.0
        try:
            p_w = float(stats.wilcoxon(current, baseline, zero_method="wilcox").pvalue)
        except ValueError:  # every difference zero after the zero method drops them
            p_w = 1.0
    return p_t, p_w
