"""`indexbench compare`: check a run against a baseline, cell by cell, metric by metric.

Each side is a ``run --json`` records file or a results store (its latest record per cell).
For every cell of the baseline each metric's change is checked against its tolerance (metrics
are higher-is-better: a drop beyond the tolerance is a regression, a gain beyond it is reported
as an improvement and passes). Where both sides kept per-query values, the change is tested
with a paired t-test and a Wilcoxon signed-rank test over the queries both scored (scipy). A
baseline cell that is missing now, or is an error now, or a metric that is gone, fails with its
reason; a cell only the current side has is listed as new. Timings (lower is better) are
compared only when a relative tolerance for them is given, since machines differ.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .errors import DataError
from .gridfile import Tolerances
from .store import ResultStore, RunRecord, cell_key, read_records

SQLITE_MAGIC = b"SQLite format 3\x00"
COMPARED_TIMINGS = ("fit_s", "search_s", "index_s")
"""Timings compared when timing tolerances are on (queries/s and latencies follow from these)."""


@dataclass
class MetricCheck:
    name: str
    baseline: float | None
    current: float | None
    allowed: float  # the largest change that passes
    status: str  # ok | improved | regressed | missing
    lower_is_better: bool = False
    p_ttest: float | None = None
    p_wilcoxon: float | None = None
    n_queries: int = 0

    @property
    def delta(self) -> float | None:
        if self.baseline is None or self.current is None:
            return None
        return self.current - self.baseline


@dataclass
class CellCheck:
    key: tuple[str, str, str, int]
    status: str  # ok | regressed | missing | error | new | skipped
    reason: str = ""
    metrics: list[MetricCheck] = field(default_factory=list)

    @property
    def label(self) -> str:
        dataset, task, indexer, seed = self.key
        return f"{dataset} · {task} · {indexer}" + (f" · seed {seed}" if seed else "")

    @property
    def failed(self) -> bool:
        return self.status in {"regressed", "missing", "error"}


@dataclass
class Comparison:
    baseline: str
    current: str
    cells: list[CellCheck]

    @property
    def failed(self) -> list[CellCheck]:
        return [c for c in self.cells if c.failed]


def load_side(path: str | Path) -> list[RunRecord]:
    """The records of one side: a store (latest per cell, with the per-query values the paired
    tests need but not the rankings) or a JSON records file."""
    path = Path(path)
    if not path.exists():
        raise DataError(path, "no such file (compare takes a run --json file or a results store)")
    if path.is_dir():
        raise DataError(path, "is a directory (compare takes a run --json file or a results store)")
    with open(path, "rb") as fh:
        head = fh.read(len(SQLITE_MAGIC))
    if head == SQLITE_MAGIC:
        return ResultStore(path).records(results={"per_query"})
    records = read_records(path)
    latest: dict[tuple[str, str, str, int], RunRecord] = {}
    for record in records:
        latest[cell_key(record)] = record
    return list(latest.values())


def compare(baseline: Sequence[RunRecord], current: Sequence[RunRecord], tolerances: Tolerances | None = None,
            *, baseline_name: str = "baseline", current_name: str = "current") -> Comparison:
    tolerances = tolerances or Tolerances()
    now = {cell_key(r): r for r in current}
    cells = []
    for base in baseline:
        key = cell_key(base)
        cur = now.pop(key, None)
        if base.status != "ok":
            cells.append(CellCheck(key, "skipped", f"baseline cell is {base.status}: {base.reason}"))
            continue
        if cur is None:
            cells.append(CellCheck(key, "missing", "the baseline has this cell; the current run does not"))
            continue
        if cur.status != "ok":
            cells.append(CellCheck(key, "error" if cur.status == "error" else "missing",
                                   f"now {cur.status}: {cur.reason}"))
            continue
        checks = [_metric(name, value, cur, tolerances) for name, value in base.metrics.items()]
        if tolerances.timings is not None:
            checks += [_timing(name, base.timings[name], cur, tolerances.timings)
                       for name in COMPARED_TIMINGS if name in base.timings]
        bad = [c for c in checks if c.status in {"regressed", "missing"}]
        status = "regressed" if bad else "ok"
        reason = "; ".join(f"{c.name} {_describe(c)}" for c in bad)
        cells.append(CellCheck(key, status, reason, checks))
    cells += [CellCheck(key, "new", "only in the current run") for key in now]
    return Comparison(baseline_name, current_name, cells)


def _metric(name: str, base: float, cur: RunRecord, tolerances: Tolerances) -> MetricCheck:
    allowed = tolerances.of(name).allowed(base)
    if name not in cur.metrics:
        return MetricCheck(name, base, None, allowed, "missing")
    value = cur.metrics[name]
    delta = value - base
    status = "regressed" if delta < -allowed - 1e-12 else "improved" if delta > allowed + 1e-12 else "ok"
    return MetricCheck(name, base, value, allowed, status)


def _timing(name: str, base: float, cur: RunRecord, relative: float) -> MetricCheck:
    allowed = relative * abs(base)
    if name not in cur.timings:
        return MetricCheck(name, base, None, allowed, "missing", lower_is_better=True)
    value = cur.timings[name]
    status = "regressed" if value - base > allowed + 1e-12 else "improved" if base - value > allowed else "ok"
    return MetricCheck(name, base, value, allowed, status, lower_is_better=True)


def add_significance(comparison: Comparison, baseline: Sequence[RunRecord], current: Sequence[RunRecord]) -> None:
    """Paired tests of every metric whose per-query values both sides kept."""
    base = {cell_key(r): r for r in baseline}
    now = {cell_key(r): r for r in current}
    for cell in comparison.cells:
        b, c = base.get(cell.key), now.get(cell.key)
        if b is None or c is None or not b.per_query or not c.per_query:
            continue
        queries = sorted(set(b.per_query) & set(c.per_query))
        for check in cell.metrics:
            if check.lower_is_better:
                continue
            pairs = [(b.per_query[q][check.name], c.per_query[q][check.name]) for q in queries
                     if check.name in b.per_query[q] and check.name in c.per_query[q]]
            check.n_queries = len(pairs)
            check.p_ttest, check.p_wilcoxon = paired_tests([p[0] for p in pairs], [p[1] for p in pairs])


def paired_tests(baseline: Sequence[float], current: Sequence[float]) -> tuple[float | None, float | None]:
    """(paired t-test p, Wilcoxon signed-rank p), two-sided; 1.0 when no query changed, None with
    fewer than two pairs."""
    if len(baseline) < 2:
        return None, None
    differences = [c - b for b, c in zip(baseline, current)]
    if all(abs(d) < 1e-12 for d in differences):
        return 1.0, 1.0
    from scipy import stats

    t = stats.ttest_rel(current, baseline)
    p_t = float(t.pvalue) if not math.isnan(t.pvalue) else 1.0
    try:
        p_w = float(stats.wilcoxon(current, baseline, zero_method="wilcox").pvalue)
    except ValueError:  # every difference zero after the zero method drops them
        p_w = 1.0
    return p_t, p_w


def _describe(check: MetricCheck) -> str:
    if check.status == "missing":
        return "is missing now"
    return f"{check.baseline:.4f} → {check.current:.4f} ({check.delta:+.4f}, tolerance ±{check.allowed:.4f})"


# --------------------------------------------------------------------------- rendering

COLUMNS = ["cell", "metric", "baseline", "current", "Δ", "tolerance", "p (t)", "p (W)", "status"]


def rows(comparison: Comparison) -> list[list[str]]:
    out = []
    for cell in comparison.cells:
        if not cell.metrics:
            out.append([cell.label, "", "", "", "", "", "", "", f"{cell.status}: {cell.reason}"])
            continue
        for check in cell.metrics:
            out.append([
                cell.label, check.name + (" (lower is better)" if check.lower_is_better else ""),
                _num(check.baseline), _num(check.current),
                "" if check.delta is None else f"{check.delta:+.4f}", f"±{check.allowed:.4f}",
                _p(check.p_ttest), _p(check.p_wilcoxon), check.status,
            ])
    return out


def _num(value: float | None) -> str:
    return "" if value is None else f"{value:.4f}"


def _p(value: float | None) -> str:
    return "" if value is None else f"{value:.3g}"


def summary(comparison: Comparison) -> str:
    failed = comparison.failed
    if not failed:
        n = sum(c.status == "ok" for c in comparison.cells)
        return f"{n} cell{'' if n == 1 else 's'} within tolerance of {comparison.baseline}"
    return f"{len(failed)} cell{'' if len(failed) == 1 else 's'} failed against {comparison.baseline}: " + \
        "; ".join(f"{c.label}: {c.status} ({c.reason})" for c in failed)


def render_markdown(comparison: Comparison) -> str:
    lines = [f"**indexbench compare**: {comparison.current} against {comparison.baseline}", "",
             "| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows(comparison)]
    return "\n".join(lines + ["", summary(comparison)]) + "\n"


def render_junit(comparison: Comparison) -> str:
    """JUnit XML: one test case per baseline cell (failure = regressed, missing or error)."""
    from xml.etree import ElementTree as ET

    cases = [c for c in comparison.cells if c.status != "new"]
    suite = ET.Element("testsuite", name="indexbench compare", tests=str(len(cases)),
                       failures=str(len(comparison.failed)),
                       skipped=str(sum(c.status == "skipped" for c in cases)))
    for cell in cases:
        dataset, task, indexer, seed = cell.key
        case = ET.SubElement(suite, "testcase", classname=f"{dataset}.{task}",
                             name=indexer + (f" seed {seed}" if seed else ""))
        if cell.failed:
            ET.SubElement(case, "failure", message=f"{cell.status}: {cell.reason}", type=cell.status).text = \
                "\n".join(" ".join(r[1:]) for r in rows(Comparison("", "", [cell])))
        elif cell.status == "skipped":
            ET.SubElement(case, "skipped", message=cell.reason)
    return ET.tostring(suite, encoding="unicode", xml_declaration=True) + "\n"
