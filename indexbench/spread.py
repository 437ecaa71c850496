"""The ``spread`` rule of `indexbench compare`: a cell is judged against its baseline's spread
over seeds, not against one run.

A trained cell at one seed is one draw; another seed, and equally another CPU's float order or
thread count, is another draw of the same kind. So the baseline keeps every cell at several
seeds (``indexbench baseline``), and each cell is judged by the kind of noise it has:

* **Seed-dependent** (some metric of the cell differs across its baseline seeds: a trained
  model): with a metric's baseline mean μ and sample standard deviation s over N seeds, and the
  current side's mean x̄ over m seeds, the noise of the difference is ``s·√(1/N + 1/m)``; the
  metric fails when it is worse than μ by more than ``k`` times that noise, than one query's
  worth (1/queries, when the cell kept per-query values: a ranking metric over n queries moves in
  steps of about 1/n, so a metric that happened to be equal at every baseline seed still moves
  by a query at another seed) and than the ``absolute``/``relative`` floor.
* **Deterministic** (every metric the same at every baseline seed: bm25, a zero-shot encoder at
  a pinned precision): the tight floor alone: a metric fails when it is worse by more than
  ``absolute`` (or ``relative``). The paired t-test and Wilcoxon p-values over the queries are
  shown beside it, not used: on the sample data's 60 queries they called neither a dual encoder
  reading 16 document tokens nor bm25 with k1 = 0 significant at 0.05.

A baseline of one seed has no spread to measure: every cell is then judged as deterministic.

``k`` is the grid's (`indexbench.gridfile.Tolerances`); README "Use it as a CI
gate" says how the defaults were measured.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from typing import TYPE_CHECKING

from .checks import (
    COMPARED_TIMINGS,
    CellCheck,
    MetricCheck,
    by_group,
    describe,
    lower_is_better,
    paired_tests,
)

if TYPE_CHECKING:
    from .gridfile import Tolerances
    from .store import RunRecord

def compare_spread(baseline: Sequence[RunRecord], current: Sequence[RunRecord],
                   tolerances: Tolerances) -> list[CellCheck]:
    """One check per (dataset, task, indexer) of the baseline: its seeds against the current
    side's seeds of the same cell."""
    base, now = by_group(baseline), by_group(current)
    cells = []
    for group, seeds in base.items():
        key = (*group, min(seeds))
        ok = {s: r for s, r in seeds.items() if r.status == "ok"}
        mine = now.pop(group, {})
        if not ok:
            first = seeds[min(seeds)]
            cells.append(CellCheck(key, "skipped", f"baseline cell is {first.status}: {first.reason}"))
            continue
        if not mine:
            cells.append(CellCheck(key, "missing", "the baseline has this cell; the current run does not"))
            continue
        broken = [r for r in mine.values() if r.status != "ok"]
        if broken:
            cells.append(CellCheck(key, "error" if broken[0].status == "error" else "missing",
                                   f"now {broken[0].status}: {broken[0].reason}",
                                   seeds=(tuple(sorted(ok)), tuple(sorted(mine))), rule="spread"))
            continue
        names = list(dict.fromkeys(n for r in ok.values() for n in r.metrics))
        fixed = deterministic(list(ok.values()))
        checks = [judge_metric(name, list(ok.values()), list(mine.values()), tolerances, deterministic=fixed)
                  for name in names]
        if tolerances.timings is not None:
            checks += [_timing(name, list(ok.values()), list(mine.values()), tolerances.timings)
                       for name in _timing_names(ok.values())]
        bad = [c for c in checks if c.status in {"regressed", "missing"}]
        cells.append(CellCheck(key, "regressed" if bad else "ok", "; ".join(f"{c.name} {describe(c)}" for c in bad),
                               checks, seeds=(tuple(sorted(ok)), tuple(sorted(mine))), rule="spread"))
    cells += [CellCheck((*group, min(seeds)), "new", "only in the current run") for group, seeds in now.items()]
    return cells


def deterministic(records: Sequence[RunRecord]) -> bool:
    """Whether a cell's baseline seeds gave every metric the same value (nothing in it depends on
    the seed)."""
    names = {n for r in records for n in r.metrics}
    return all(len({r.metrics.get(n) for r in records}) == 1 for n in names)


def judge_metric(name: str, before: list[RunRecord], after: list[RunRecord], tolerances: Tolerances, *,
                 deterministic: bool = False) -> MetricCheck:
    """One metric of one cell, its baseline seeds (``before``) against the current ones;
    ``deterministic``: every metric of the cell was equal at every baseline seed."""
    values = [r.metrics[name] for r in before if name in r.metrics]
    now = [r.metrics[name] for r in after if name in r.metrics]
    mean = statistics.fmean(values)
    floor = tolerances.of(name).allowed(mean)
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    lower = lower_is_better(name)
    if len(now) < len(after):
        return MetricCheck(name, mean, None, floor, "missing", lower_is_better=lower, baseline_sd=sd or None,
                           n_seeds=(len(values), len(after)))
    current = statistics.fmean(now)
    drop = (current - mean) if lower else (mean - current)
    pairs = per_query_pairs(name, before, after)
    p_t, p_w = paired_tests([b for b, _ in pairs], [c for _, c in pairs]) if pairs else (None, None)
    if deterministic:
        noise, allowed, rule = 0.0, floor, "fixed"
    else:
        noise = sd * math.sqrt(1 / len(values) + 1 / len(now))
        queries = min(len(r.per_query) for r in before)
        allowed = max(tolerances.k * noise, 1 / queries if queries else 0.0, floor)
        rule = "spread"
    regressed = drop > allowed + 1e-12
    status = "regressed" if regressed else "improved" if -drop > allowed + 1e-12 else "ok"
    return MetricCheck(name, mean, current, allowed, status, lower_is_better=lower, p_ttest=p_t, p_wilcoxon=p_w,
                       n_queries=len(pairs), baseline_sd=sd if len(values) > 1 else None,
                       current_sd=statistics.stdev(now) if len(now) > 1 else None, noise=noise, rule=rule,
                       n_seeds=(len(values), len(now)))


def per_query_pairs(name: str, before: list[RunRecord], after: list[RunRecord]) -> list[tuple[float, float]]:
    """(baseline, current) per query both sides scored at every seed, each side averaged over its
    seeds."""
    if not all(r.per_query for r in [*before, *after]):
        return []
    queries = set.intersection(*(set(r.per_query) for r in [*before, *after]))

    def mean_of(records: list[RunRecord], query: str) -> float | None:
        values = [r.per_query[query].get(name) for r in records]
        return None if any(v is None for v in values) else statistics.fmean(values)

    pairs = [(mean_of(before, q), mean_of(after, q)) for q in sorted(queries)]
    return [(b, c) for b, c in pairs if b is not None and c is not None]


def _timing_names(records) -> list[str]:
    return [n for n in COMPARED_TIMINGS if all(n in r.timings for r in records)]


def _timing(name: str, before: list[RunRecord], after: list[RunRecord], relative: float) -> MetricCheck:
    base = statistics.fmean(r.timings[name] for r in before)
    allowed = relative * abs(base)
    if not all(name in r.timings for r in after):
        return MetricCheck(name, base, None, allowed, "missing", lower_is_better=True)
    value = statistics.fmean(r.timings[name] for r in after)
    status = "regressed" if value - base > allowed + 1e-12 else "improved" if base - value > allowed else "ok"
    return MetricCheck(name, base, value, allowed, status, lower_is_better=True)
