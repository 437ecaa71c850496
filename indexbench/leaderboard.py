"""Leaderboards from run records: one table per (dataset, task), one row per indexer.

The same table renders to Rich (terminal), Markdown (READMEs, PR comments), CSV and JSON. Skipped
and failed cells stay visible with their reason: a missing number must never look like a zero.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from dataclasses import dataclass

from .store import RunRecord

TIMING_COLUMNS = (("fit_s", "fit s", "{:.1f}"), ("queries_per_s", "q/s", "{:.1f}"),
                  ("latency_p50_ms", "p50 ms", "{:.1f}"), ("index_s", "index s", "{:.1f}"))

PROTOCOL_COLUMNS = (("invalid_id_rate", "invalid IDs", "{:.1%}"), ("invalid_id_rate_free", "invalid, no trie", "{:.1%}"),
                    ("collision_policy", "collisions", "{}"))
"""A generative cell's protocol guards (`generative.engine.id_protocol`), shown where a table has any."""


def protocol(record: RunRecord) -> dict:
    """The record's protocol guards, empty for a cell that generates no IDs."""
    indexer = record.details.get("indexer") if isinstance(record.details, dict) else None
    found = indexer.get("protocol") if isinstance(indexer, dict) else None
    return found if isinstance(found, dict) else {}


@dataclass
class Table:
    dataset: str
    task: str
    columns: list[str]
    rows: list[list[str]]
    raw: list[RunRecord]

    @property
    def title(self) -> str:
        return f"{self.dataset} · {self.task}"

    @property
    def data_notes(self) -> list[str]:
        return [f"{self.dataset} {note}" for note in data_notes(self.raw)]


def data_notes(records: Sequence[RunRecord]) -> list[str]:
    """Which known split the records' data is, or how it differs (one line per distinct answer:
    a store may hold records of two copies under one name)."""
    notes = [r.details.get("dataset_identity", {}).get("summary", "") for r in records
             if isinstance(r.details, dict) and isinstance(r.details.get("dataset_identity"), dict)]
    return list(dict.fromkeys(n for n in notes if n))


def build_tables(records: Sequence[RunRecord], headline: dict[str, Sequence[str]] | None = None) -> list[Table]:
    """Group records into tables. ``headline`` maps a task to the metrics shown as columns
    (default: every metric that appears, in first-seen order)."""
    headline = headline or {}
    groups: dict[tuple[str, str], list[RunRecord]] = {}
    for rec in records:
        groups.setdefault((rec.dataset, rec.task), []).append(rec)
    tables = []
    for (dataset, task), recs in groups.items():
        recs, spread = _across_seeds(recs)
        metrics = list(headline.get(task) or _union(r.metrics for r in recs))
        timings = [t for t in TIMING_COLUMNS if any(t[0] in r.timings for r in recs)]
        guards = [g for g in PROTOCOL_COLUMNS if any(g[0] in protocol(r) for r in recs)]
        first = metrics[0] if metrics else None
        recs = sorted(recs, key=lambda r: (r.status != "ok", -(r.metrics.get(first, 0.0) if first else 0.0),
                                           r.indexer))
        rows = []
        for r in recs:
            if r.status == "ok":
                sd = spread.get(id(r), {})
                cells = [_fmt(r.metrics.get(m)) + (f" ± {sd[m]:.4f}" if m in sd else "") for m in metrics]
                cells += [fmt.format(protocol(r)[key]) if key in protocol(r) else "" for key, _, fmt in guards]
                cells += [fmt.format(r.timings[key]) if key in r.timings else "" for key, _, fmt in timings]
                rows.append([indexer_label(r), *cells])
            else:
                rows.append([indexer_label(r), f"{r.status}: {r.reason}",
                             *[""] * (len(metrics) + len(guards) + len(timings) - 1)])
            if r.status == "ok":  # the whole cell: IDs, training, indexing and evaluation
                rows[-1].append(f"{r.duration_s:.1f}" if r.duration_s else "")
            else:
                rows[-1].append("")
        columns = ["indexer", *metrics, *(label for _, label, _ in guards), *(label for _, label, _ in timings),
                   "cell s"]
        if spread:  # several seeds of one cell: mean ± standard deviation, and how many seeds
            columns.append("seeds")
            for row, r in zip(rows, recs):
                row.append(str(spread[id(r)]["_n"]) if id(r) in spread else "1")
        tables.append(Table(dataset, task, columns, rows, recs))
    return sorted(tables, key=lambda t: (t.dataset, t.task))


def _across_seeds(recs: list[RunRecord]) -> tuple[list[RunRecord], dict[int, dict[str, float]]]:
    """One record per indexer: the ``ok`` records of several seeds become one whose metrics and
    timings are the means; the returned map (by ``id`` of that record) holds each metric's
    sample standard deviation and ``_n``, the number of seeds."""
    import dataclasses
    import statistics

    by_indexer: dict[str, list[RunRecord]] = {}
    for r in recs:
        by_indexer.setdefault(r.indexer, []).append(r)
    out, spread = [], {}
    for group in by_indexer.values():
        ok = [r for r in group if r.status == "ok"]
        if len({r.seed for r in ok}) < 2:
            out += group
            continue
        out += [r for r in group if r.status != "ok"]
        names = _union(r.metrics for r in ok)
        mean = dataclasses.replace(
            ok[-1],
            metrics={m: statistics.fmean(r.metrics[m] for r in ok if m in r.metrics) for m in names},
            timings={t: statistics.fmean(r.timings[t] for r in ok if t in r.timings) for t in _union(r.timings for r in ok)},
            duration_s=statistics.fmean(r.duration_s for r in ok))
        spread[id(mean)] = {**{m: statistics.stdev([r.metrics[m] for r in ok if m in r.metrics]) for m in names
                               if sum(m in r.metrics for r in ok) > 1}, "_n": len(ok)}
        out.append(mean)
    return out, spread


def indexer_label(record: RunRecord) -> str:
    """The indexer's name, plus the plugin (and version) that produced it when that is a
    third-party plugin: a name alone could pass off another package's results as a built-in's."""
    plugin = record.config.get("plugin") if isinstance(record.config, dict) else None
    if not isinstance(plugin, dict) or plugin.get("builtin", True):
        return record.indexer
    version = f" {plugin['version']}" if plugin.get("version") else ""
    return f"{record.indexer} ({plugin.get('name', '?')}{version})"


def _union(dicts) -> list[str]:
    seen: dict[str, None] = {}
    for d in dicts:
        seen.update(dict.fromkeys(d))
    return list(seen)


def _fmt(value: float | None) -> str:
    return "" if value is None else f"{value:.4f}"


def render_rich(tables: Sequence[Table], console) -> None:
    """Scored cells as a table; skipped and failed cells as lines under it, so a long reason
    never squeezes the metric columns."""
    from rich.table import Table as RichTable
    from rich.text import Text

    for table in tables:
        scored = [(row, rec) for row, rec in zip(table.rows, table.raw) if rec.status == "ok"]
        if scored:
            rt = RichTable(title=table.title, title_justify="left")
            for i, col in enumerate(table.columns):
                rt.add_column(col, justify="left" if i == 0 else "right", no_wrap=True, min_width=len(col))
            for row, _ in scored:
                rt.add_row(*row)
            console.print(rt)
        else:
            console.print(Text(table.title, style="italic"))
        for note in table.data_notes:
            console.print(Text("  data: " + note, style="dim"))
        for rec in table.raw:
            if rec.status != "ok":
                style = "yellow" if rec.status == "skipped" else "red"
                console.print(Text.assemble(("  " + rec.indexer, "bold"), (f" {rec.status}: ", style),
                                            rec.reason))
        console.print()


def render_markdown(tables: Sequence[Table]) -> str:
    out = []
    for table in tables:
        out.append(f"**{table.title}**\n")
        out.append("| " + " | ".join(table.columns) + " |")
        out.append("|" + "|".join("---" if i == 0 else "---:" for i in range(len(table.columns))) + "|")
        for row in table.rows:
            out.append("| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |")
        out += ["", *(f"*data: {note}*\n" for note in table.data_notes)] if table.data_notes else [""]
    return "\n".join(out)


def render_csv(records: Sequence[RunRecord]) -> str:
    """Long format, one row per (record, metric): easy to load into pandas or a spreadsheet."""
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["dataset", "task", "indexer", "status", "reason", "metric", "value"])
    for r in records:
        if r.status != "ok":
            writer.writerow([r.dataset, r.task, r.indexer, r.status, r.reason, "", ""])
        guards = {k: v for k, v in protocol(r).items() if isinstance(v, (int, float))}
        for name, value in {**r.metrics, **r.timings, **guards}.items():
            writer.writerow([r.dataset, r.task, r.indexer, r.status, "", name, value])
    return buf.getvalue()


def render_json(records: Sequence[RunRecord]) -> str:
    """Records as a JSON list, with their per-query metric values (what `indexbench compare`'s
    significance tests read) but without rankings and judgements, which stay in the store
    (`indexbench export` writes them as TREC files)."""
    rows = []
    for r in records:
        row = r.to_dict()
        row.pop("rankings", None)
        row.pop("qrels", None)
        rows.append(row)
    return json.dumps(rows, indent=2, sort_keys=True)
