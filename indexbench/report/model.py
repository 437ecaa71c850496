"""What a report shows, computed from run records without drawing anything: leaderboards with
seed spread and significance against the best, provenance, training curves, and published vs
ours from the stored cells. The figures (`figures`) and the page templates only render these.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..checks import lower_is_better, paired_tests
from ..compare import environment
from ..leaderboard import TIMING_COLUMNS
from ..references import PaperVsOurs, Reference, Verdict, judge, paper_vs_ours
from ..store import RunRecord

ALPHA = 0.05
"""A cell is marked as not significantly different from the best of its column when the paired
t-test over per-query values (each query's mean over seeds) gives p >= ALPHA."""

CURVE_X = ("global_step", "step", "epoch")
"""Keys a training curve's points may be indexed by, in order of preference."""


@dataclass
class Entry:
    """One indexer of a leaderboard: its scored seeds, or why it has no score."""
    indexer: str
    records: list[RunRecord]
    status: str = "ok"
    reason: str = ""
    mean: dict[str, float] = field(default_factory=dict)
    sd: dict[str, float] = field(default_factory=dict)
    best: set[str] = field(default_factory=set)
    tied: set[str] = field(default_factory=set)  # not significantly different from the best
    p_value: dict[str, float] = field(default_factory=dict)  # paired t-test against the best
    timings: dict[str, float] = field(default_factory=dict)  # means over seeds, with "cell_s"

    @property
    def seeds(self) -> list[int]:
        return sorted(int(r.seed or 0) for r in self.records)


@dataclass
class Board:
    """One dataset × task: scored entries best first by the headline metric, then the rest."""
    dataset: str
    task: str
    metrics: list[str]
    entries: list[Entry]
    unscored: list[Entry]
    timings: list[tuple[str, str, str]] = field(default_factory=list)  # (key, label, format) shown

    @property
    def slug(self) -> str:
        return slug(f"{self.dataset}--{self.task}")

    @property
    def records(self) -> list[RunRecord]:
        return [r for e in (*self.entries, *self.unscored) for r in e.records]


def slug(text: str) -> str:
    """A file-name-safe form of ``text``; a short hash keeps two names that differ only in
    unsafe characters (or beyond the cut) apart."""
    import hashlib

    safe = "".join(c if c.isalnum() or c in "-_." else "-" for c in text)[:60]
    return f"{safe}-{hashlib.sha1(text.encode()).hexdigest()[:6]}"


def boards(records: Sequence[RunRecord], headline: Mapping[str, Sequence[str]] | None = None) -> list[Board]:
    """Group records (latest per cell, as a store lists them) into boards. ``headline`` maps a
    task to the metrics shown first; the rest of the metrics every entry has follow."""
    groups: dict[tuple[str, str], dict[str, list[RunRecord]]] = {}
    for rec in records:
        groups.setdefault((rec.dataset, rec.task), {}).setdefault(rec.indexer, []).append(rec)
    out = []
    for (dataset, task), by_indexer in sorted(groups.items()):
        scored, unscored = [], []
        for indexer, recs in by_indexer.items():
            ok = [r for r in recs if r.status == "ok"]
            if ok:
                scored.append(_entry(indexer, ok))
            else:
                last = recs[-1]
                unscored.append(Entry(indexer, recs, status=last.status, reason=last.reason))
        metrics = _metrics(scored, (headline or {}).get(task, ()))
        _mark_best(scored, metrics)
        first = metrics[0] if metrics else None
        sign = 1 if first and lower_is_better(first) else -1

        def order(e: Entry, first: str | None = first, sign: int = sign) -> tuple:
            value = e.mean.get(first) if first else None
            return (value is None, sign * value if value is not None else 0.0, e.indexer)

        scored.sort(key=order)
        shown = [t for t in (*TIMING_COLUMNS, ("cell_s", "cell s", "{:.1f}")) if any(t[0] in e.timings for e in scored)]
        out.append(Board(dataset, task, metrics, scored, sorted(unscored, key=lambda e: e.indexer), shown))
    return out


def _entry(indexer: str, ok: list[RunRecord]) -> Entry:
    entry = Entry(indexer, sorted(ok, key=lambda r: int(r.seed or 0)))
    names = dict.fromkeys(m for r in ok for m in r.metrics)
    for m in names:
        values = [r.metrics[m] for r in ok if m in r.metrics]
        entry.mean[m] = statistics.fmean(values)
        if len(values) > 1:
            entry.sd[m] = statistics.stdev(values)
    for key in dict.fromkeys(t for r in ok for t in r.timings):
        entry.timings[key] = statistics.fmean(r.timings[key] for r in ok if key in r.timings)
    if any(r.duration_s for r in ok):
        entry.timings["cell_s"] = statistics.fmean(float(r.duration_s or 0.0) for r in ok)
    return entry


def _metrics(entries: list[Entry], headline: Sequence[str]) -> list[str]:
    present = dict.fromkeys(m for e in entries for m in e.mean)
    first = [m for m in headline if m in present]
    return first + [m for m in present if m not in first]


def per_query_means(entry: Entry, metric: str) -> dict[str, float]:
    """Each query's value of ``metric``, averaged over the entry's seeds that scored it."""
    values: dict[str, list[float]] = {}
    for rec in entry.records:
        for query, scores in (rec.per_query or {}).items():
            if metric in scores:
                values.setdefault(query, []).append(float(scores[metric]))
    return {q: statistics.fmean(v) for q, v in values.items()}


def _mark_best(entries: list[Entry], metrics: list[str]) -> None:
    for m in metrics:
        having = [e for e in entries if m in e.mean]
        if not having:
            continue
        pick = min if lower_is_better(m) else max
        top = pick(e.mean[m] for e in having)
        best = [e for e in having if e.mean[m] == top]
        for e in best:
            e.best.add(m)
        reference = per_query_means(best[0], m)
        if len(reference) < 2:
            continue
        for e in having:
            if e in best:
                continue
            mine = per_query_means(e, m)
            common = sorted(reference.keys() & mine.keys())
            p_t, _ = paired_tests([reference[q] for q in common], [mine[q] for q in common])
            if p_t is None:
                continue
            e.p_value[m] = p_t
            if p_t >= ALPHA:
                e.tied.add(m)


@dataclass
class Provenance:
    indexer: str
    seed: int
    status: str
    device: str
    commit: str
    started_at: str
    duration_s: float
    environment: dict[str, str]


def provenance(board: Board) -> list[Provenance]:
    """Every run behind a board: where and with what it ran (`compare.environment`: versions,
    CPU instructions, threads, resolved precisions)."""
    return [Provenance(r.indexer, int(r.seed or 0), r.status, r.device, r.git_commit or "", r.started_at or "",
                       float(r.duration_s or 0.0), environment(r))
            for e in (*board.entries, *board.unscored) for r in e.records]


@dataclass
class Curve:
    """One series of a training curve a record's details hold (``where`` is its path there)."""
    where: str
    name: str
    x_label: str
    points: list[tuple[float, float]]


def curves(details: Any, where: str = "details") -> list[Curve]:
    """The training curves anywhere in a record's details, by shape rather than by plugin: a list
    of at least two mappings that share a step key (`CURVE_X`), one curve per other numeric key;
    or a list of at least two numbers under a key ending in ``curve`` (plotted against its
    index). A plugin makes its curves show in reports by reporting them in one of these shapes."""
    found: list[Curve] = []
    if isinstance(details, Mapping):
        for key, value in details.items():
            path = f"{where}.{key}"
            if (str(key).endswith("curve") and isinstance(value, list) and len(value) >= 2
                    and all(_number(v) for v in value)):
                found.append(Curve(path, str(key), "point", [(float(i), float(v)) for i, v in enumerate(value)]))
            else:
                found += curves(value, path)
    elif isinstance(details, list) and len(details) >= 2 and all(isinstance(p, Mapping) for p in details):
        x = next((k for k in CURVE_X if all(_number(p.get(k)) for p in details)), None)
        if x is not None:
            names = dict.fromkeys(k for p in details for k, v in p.items() if k not in CURVE_X and _number(v))
            for name in names:
                points = [(float(p[x]), float(p[name])) for p in details if _number(p.get(name))]
                if len(points) >= 2:
                    found.append(Curve(where, str(name), x, points))
    return found


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value == value


def verify_from_records(references: Iterable[Reference], records: Sequence[RunRecord]) -> list[PaperVsOurs]:
    """Published vs ours for every reference whose cell is among the records (mean over its
    seeds), judged as `indexbench verify` judges; nothing is run."""
    ok: dict[tuple[str, str, str], list[RunRecord]] = {}
    for r in records:
        if r.status == "ok":
            ok.setdefault((r.indexer, r.task, r.dataset), []).append(r)
    verdicts = []
    for ref in references:
        recs = [r for r in ok.get((ref.indexer, ref.task, ref.dataset), []) if ref.metric in r.metrics]
        if recs:
            ours = statistics.fmean(r.metrics[ref.metric] for r in recs)
            verdicts.append(Verdict(ref, judge(ref, ours), ours))
    return paper_vs_ours(verdicts)
