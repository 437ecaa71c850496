"""`indexbench compare`: check a run against a baseline, cell by cell, metric by metric.

Each side is a ``run --json`` records file or a results store (its latest record per cell).
For every cell of the baseline each metric's change is checked against its tolerance (metrics
are higher-is-better: a drop beyond the tolerance is a regression, a gain beyond it is reported
as an improvement and passes). Where both sides kept per-query values, the change is tested
with a paired t-test and a Wilcoxon signed-rank test over the queries both scored (scipy). A
baseline cell that is missing now, or is an error now, or a metric that is gone, fails with its
reason; a cell only the current side has is listed as new. Timings (lower is better) are
compared only when a relative tolerance for them is given, since machines differ.

Where a cell ran with several seeds, one more row per (dataset, task, indexer) compares the mean
across seeds (shown as mean ± sample standard deviation on each side), tested over every
(seed, query) pair both sides scored. Which rows decide the exit status is the tolerance's
``seeds``: ``each`` (default; every seed's cell must hold, the mean row is shown) or ``mean`` (the
mean must hold; a single seed's drop is shown but does not fail -- for indexers whose numbers
vary by seed). A missing or failed seed fails either way: the run is incomplete.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from pathlib import Path

from .checks import (
    COMPARED_TIMINGS,
    CellCheck,
    Comparison,
    MetricCheck,
    by_group,
    describe,
    lower_is_better,
    paired_tests,
)
from .environment import ENVIRONMENT_FIELD, loaded_by_the_process
from .errors import DataError
from .gridfile import Tolerances
from .store import ResultStore, RunRecord, cell_key, read_records

__all__ = ["COLUMNS", "CellCheck", "Comparison", "MetricCheck", "add_significance", "compare",
           "environment_changes", "load_side", "paired_tests", "render_junit", "render_markdown", "rows",
           "summary"]

SQLITE_MAGIC = b"SQLite format 3\x00"


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
    if tolerances.rule == "spread":
        from .spread import compare_spread

        cells = compare_spread(baseline, current, tolerances)
        _name_cell_environments(cells, baseline, current)
        return Comparison(baseline_name, current_name, cells, environment_changes(baseline, current), rule="spread")
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
        reason = "; ".join(f"{c.name} {describe(c)}" for c in bad)
        cells.append(CellCheck(key, status, reason, checks))
    cells += [CellCheck(key, "new", "only in the current run") for key in now]
    cells = _with_seed_means(cells, baseline, current, tolerances)
    _name_cell_environments(cells, baseline, current)
    return Comparison(baseline_name, current_name, cells, environment_changes(baseline, current))


def environment(record: RunRecord) -> dict[str, str]:
    """What a record's numbers depend on besides the code and the seed: python, the tracked
    packages, the CPU's vector instructions, the kernel levels and float-path variables, torch's
    thread count (``versions``) and every precision the cell resolved (``precision`` keys of its
    details, as run, not as asked)."""
    found = {name: str(value) for name, value in record.versions.items()
             if not name.startswith("plugin:") and name != "indexbench"}

    def walk(details: object) -> None:
        if isinstance(details, dict):
            for name, value in details.items():
                if name in ("options", "config"):  # what was asked for; the resolved value sits beside
                    continue
                if name.endswith("precision") and isinstance(value, str):
                    found[name] = value
                walk(value)

    walk(record.details)
    return found


def environment_changes(baseline: Sequence[RunRecord], current: Sequence[RunRecord]) -> list[str]:
    """What differs between the environments the two sides ran in (`environment`), one
    ``name: before → after`` per difference. A trained cell's numbers at one seed depend on
    these, so a failure beside such a line may be the machine, not the change."""
    def values(records: Sequence[RunRecord]) -> dict[str, set[str]]:
        found: dict[str, set[str]] = {}
        for record in records:
            for name, value in environment(record).items():
                found.setdefault(name, set()).add(value)
        return found

    before, after = values(baseline), values(current)
    names = [name for name in sorted(before.keys() | after.keys())
             if not loaded_by_the_process(name) or (name in before and name in after)]

    def shown(side: dict[str, set[str]], name: str) -> str:
        # A float-path variable is recorded only where it was set.
        absent = "unset" if name.startswith(ENVIRONMENT_FIELD) else "unrecorded"
        return " / ".join(sorted(side.get(name, {absent})))

    return [f"{name}: {shown(before, name)} → {shown(after, name)}"
            for name in names if before.get(name) != after.get(name)]


def _name_cell_environments(cells: list[CellCheck], baseline: Sequence[RunRecord],
                            current: Sequence[RunRecord]) -> None:
    """Each cell's own environment differences (its seeds on each side)."""
    base, now = by_group(baseline), by_group(current)
    for cell in cells:
        group = cell.key[:3]
        if cell.seeds is not None or cell.rule == "spread":
            before, after = list(base.get(group, {}).values()), list(now.get(group, {}).values())
        else:
            seed = cell.key[3]
            before = [r for r in [base.get(group, {}).get(seed)] if r is not None]
            after = [r for r in [now.get(group, {}).get(seed)] if r is not None]
        if before and after:
            cell.environment = environment_changes(before, after)


def _with_seed_means(cells: list[CellCheck], baseline: Sequence[RunRecord], current: Sequence[RunRecord],
                     tolerances: Tolerances) -> list[CellCheck]:
    """Insert a mean-of-seeds row after the last seed of every cell that ran with several seeds on
    either side, and decide which rows gate (``tolerances.seeds``)."""
    base, now = by_group(baseline, ok_only=True), by_group(current, ok_only=True)
    means: dict[tuple[str, str, str], CellCheck] = {}
    for group, seeds in base.items():
        mine = now.get(group, {})
        if not mine or max(len(seeds), len(mine)) < 2:
            continue
        checks = []
        for name in dict.fromkeys(name for r in seeds.values() for name in r.metrics):
            before = [r.metrics[name] for r in seeds.values() if name in r.metrics]
            after = [r.metrics[name] for r in mine.values() if name in r.metrics]
            mean = statistics.fmean(before)
            check = _judge(name, mean, statistics.fmean(after) if after else None, tolerances)
            check.baseline_sd, check.current_sd = _sd(before), _sd(after)
            checks.append(check)
        bad = [c for c in checks if c.status in {"regressed", "missing"}]
        means[group] = CellCheck((*group, min(seeds)), "regressed" if bad else "ok",
                                 "; ".join(f"{c.name} {describe(c)}" for c in bad), checks,
                                 seeds=(tuple(sorted(seeds)), tuple(sorted(mine))),
                                 gating=tolerances.seeds == "mean")
    out: list[CellCheck] = []
    for index, cell in enumerate(cells):
        group = cell.key[:3]
        if group in means and tolerances.seeds == "mean":
            cell.gating = False
        out.append(cell)
        if group in means and not any(c.key[:3] == group for c in cells[index + 1:]):
            out.append(means.pop(group))
    return out


def _sd(values: list[float]) -> float | None:
    return statistics.stdev(values) if len(values) > 1 else None


def _metric(name: str, base: float, cur: RunRecord, tolerances: Tolerances) -> MetricCheck:
    return _judge(name, base, cur.metrics.get(name), tolerances)


def _judge(name: str, base: float, value: float | None, tolerances: Tolerances) -> MetricCheck:
    allowed = tolerances.of(name).allowed(base)
    lower = lower_is_better(name)
    if value is None:
        return MetricCheck(name, base, None, allowed, "missing", lower_is_better=lower)
    worse = (value - base) if lower else (base - value)
    status = "regressed" if worse > allowed + 1e-12 else "improved" if -worse > allowed + 1e-12 else "ok"
    return MetricCheck(name, base, value, allowed, status, lower_is_better=lower)


def _timing(name: str, base: float, cur: RunRecord, relative: float) -> MetricCheck:
    allowed = relative * abs(base)
    if name not in cur.timings:
        return MetricCheck(name, base, None, allowed, "missing", lower_is_better=True)
    value = cur.timings[name]
    status = "regressed" if value - base > allowed + 1e-12 else "improved" if base - value > allowed else "ok"
    return MetricCheck(name, base, value, allowed, status, lower_is_better=True)


def add_significance(comparison: Comparison, baseline: Sequence[RunRecord], current: Sequence[RunRecord]) -> None:
    """Paired tests of every metric whose per-query values both sides kept; a mean-of-seeds row
    pairs every (seed, query) both sides scored. Spread-rule cells have theirs already (each
    side's seeds averaged per query; shown, not gated on)."""
    base = {cell_key(r): r for r in baseline}
    now = {cell_key(r): r for r in current}
    for cell in comparison.cells:
        if cell.rule == "spread":
            continue
        dataset, task, indexer, seed = cell.key
        seeds = sorted(set(cell.seeds[0]) & set(cell.seeds[1])) if cell.seeds is not None else [seed]
        sides = [(base.get((dataset, task, indexer, s)), now.get((dataset, task, indexer, s))) for s in seeds]
        sides = [(b, c) for b, c in sides if b is not None and c is not None and b.per_query and c.per_query]
        if not sides:
            continue
        for check in cell.metrics:
            if check.lower_is_better:
                continue
            pairs = [(b.per_query[q][check.name], c.per_query[q][check.name]) for b, c in sides
                     for q in sorted(set(b.per_query) & set(c.per_query))
                     if check.name in b.per_query[q] and check.name in c.per_query[q]]
            check.n_queries = len(pairs)
            check.p_ttest, check.p_wilcoxon = paired_tests([p[0] for p in pairs], [p[1] for p in pairs])


# --------------------------------------------------------------------------- rendering

COLUMNS = ["cell", "metric", "baseline", "current", "Δ", "tolerance", "used", "p (t)", "p (W)", "status"]
"""``used``: the share of the tolerance the change used up in the worse direction (100 % = the
edge); with the spread rule the tolerance column also names its kind: ``k·noise`` (a
seed-dependent cell) or ``fixed`` (a deterministic one)."""


def rows(comparison: Comparison) -> list[list[str]]:
    out = []
    for cell in comparison.cells:
        if not cell.metrics:
            out.append([cell.label, "", "", "", "", "", "", "", "", f"{cell.status}: {cell.reason}"])
            continue
        for check in cell.metrics:
            status = check.status
            if status == "regressed" and not cell.gating:
                status = "regressed, not gated"  # tolerance.seeds decides which rows fail
            out.append([
                cell.label, check.name + (" (lower is better)" if check.lower_is_better else ""),
                _num(check.baseline, check.baseline_sd), _num(check.current, check.current_sd),
                "" if check.delta is None else f"{check.delta:+.4f}", _tolerance(check),
                "" if check.used is None else f"{check.used:.0%}", _p(check.p_ttest), _p(check.p_wilcoxon), status,
            ])
    return out


def _num(value: float | None, sd: float | None = None) -> str:
    if value is None:
        return ""
    return f"{value:.4f}" + (f" ± {sd:.4f}" if sd is not None else "")


def _tolerance(check: MetricCheck) -> str:
    kind = {"spread": " k·noise", "fixed": " fixed"}.get(check.rule, "")
    return f"±{check.allowed:.4f}{kind}"


def _p(value: float | None) -> str:
    return "" if value is None else f"{value:.3g}"


def summary(comparison: Comparison) -> str:
    failed = comparison.failed
    if not failed:
        n = sum(c.status == "ok" and (c.seeds is None or c.rule == "spread") for c in comparison.cells)
        text = f"{n} cell{'' if n == 1 else 's'} within tolerance of {comparison.baseline}"
        loose = sum(c.status == "regressed" for c in comparison.cells)
        if loose:
            text += f"; {loose} beyond it but not gated (tolerance.seeds decides: each seed, or their mean)"
        closest = max((c for c in comparison.cells if c.closest is not None), key=lambda c: c.closest.used,
                      default=None)
        if closest is not None:
            check = closest.closest
            text += (f"; closest to failing: {closest.label}, {check.name} used {check.used:.0%} of its "
                     f"tolerance ({describe(check)})")
        if comparison.environment:
            text += ". Environments differ: " + "; ".join(comparison.environment)
        return text
    text = f"{len(failed)} cell{'' if len(failed) == 1 else 's'} failed against {comparison.baseline}: " + \
        "; ".join(f"{c.label}: {c.status} ({c.reason}){_cell_environment(c)}" for c in failed)
    if comparison.environment:
        text += (". The two sides ran in different environments (" + "; ".join(comparison.environment)
                 + "): a trained cell's numbers at one seed can move with the CPU's vector instructions or a"
                 " library's version; if nothing else changed, record the baseline again in this environment")
    return text


def _cell_environment(cell: CellCheck) -> str:
    if cell.environment:
        return " [environment differs: " + "; ".join(cell.environment) + "]"
    return " [same environment]"


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
        name = indexer + (f" seed {seed}" if seed else "")
        if cell.seeds is not None:
            kind = "seeds" if cell.rule == "spread" else "mean of seeds"
            name = f"{indexer} {kind} " + ",".join(map(str, cell.seeds[0]))
        case = ET.SubElement(suite, "testcase", classname=f"{dataset}.{task}", name=name)
        if cell.failed:
            ET.SubElement(case, "failure", message=f"{cell.status}: {cell.reason}", type=cell.status).text = \
                "\n".join(" ".join(r[1:]) for r in rows(Comparison("", "", [cell])))
        elif cell.status == "skipped":
            ET.SubElement(case, "skipped", message=cell.reason)
    return ET.tostring(suite, encoding="unicode", xml_declaration=True) + "\n"
