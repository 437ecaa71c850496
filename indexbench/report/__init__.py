"""`indexbench report`: a static HTML site from run records.

One page per dataset × task (leaderboard with seed spread and significance, skipped and failed
cells with their reasons, ID diagnostics, training curves, per-query differences, latencies,
provenance) and an index page (every board, published vs ours). Everything the pages need is
in the output folder: HTML with inline CSS and PNG figures, no script, nothing fetched at view
time.

The folder is written beside its destination and moved into place when complete, so a failed
report leaves no half-written site; an existing folder is replaced only when it holds an
earlier report (`MARKER`).
"""

from __future__ import annotations

import datetime
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..checks import lower_is_better
from ..errors import IndexbenchError
from ..leaderboard import data_notes
from ..paths import staging_path
from ..store import RunRecord
from . import model
from .model import ALPHA, Board, Entry

MARKER = ".indexbench-report"
"""File in every report folder; an existing --out folder without it is never overwritten."""

MAX_DIFFERENCE_PANELS = 12
MAX_CURVE_PANELS = 12
DEFAULT_REFERENCE = "bm25"


@dataclass
class Figure:
    src: str
    alt: str
    caption: str


@dataclass
class Section:
    anchor: str
    title: str
    text: str = ""
    figures: list[Figure] = field(default_factory=list)


def write_report(records: Sequence[RunRecord], out: str | Path, *, source: str,
                 references: Sequence[Any] = (), reference_indexer: str | None = None,
                 headline: Mapping[str, Sequence[str]] | None = None, progress: Any = None) -> Path:
    """Write the report of ``records`` (latest per cell) to the folder ``out``; returns the path
    of its index page. ``references``: published figures (`indexbench.references.Reference`)
    shown beside the stored cells they name. ``reference_indexer``: the indexer every other is
    compared with query by query (default: bm25 where a board has it, else the board's best)."""
    out = Path(out)
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not (out / MARKER).exists())):
        raise IndexbenchError(f"{out}: exists and is not an indexbench report folder; give a new or empty --out")
    if not records:
        raise IndexbenchError(f"{source}: holds no run records to report")
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = staging_path(out.parent, f".{out.name}.", directory=True)
    try:
        index = _write(records, staging, source=source, references=references,
                       reference_indexer=reference_indexer, headline=headline, progress=progress)
        if out.exists():
            shutil.rmtree(out)
        staging.rename(out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return out / index.name


def _write(records, folder: Path, *, source, references, reference_indexer, headline, progress) -> Path:
    from jinja2 import Environment, PackageLoader, select_autoescape

    from .. import __version__

    env = Environment(loader=PackageLoader("indexbench.report", "templates"),
                      autoescape=select_autoescape(["html", "j2"]), trim_blocks=True, lstrip_blocks=True)
    env.filters["breakable"] = _breakable
    (folder / "figures").mkdir()
    (folder / MARKER).write_text("indexbench report\n")
    common = {"version": __version__, "source": source,
              "written_at": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")}
    all_boards = model.boards(records, headline)
    steps = progress.track(all_boards, "report: drawing boards", total=len(all_boards)) if progress else all_boards
    for board in steps:
        sections = _sections(board, folder, reference_indexer)
        page = env.get_template("board.html.j2").render(
            board=board, sections=sections, provenance=model.provenance(board), alpha=ALPHA,
            data_notes=data_notes(board.records), lower_better=[m for m in board.metrics if lower_is_better(m)], **common)
        (folder / f"{board.slug}.html").write_text(page, encoding="utf-8")
    index = folder / "index.html"
    index.write_text(env.get_template("index.html.j2").render(
        boards=all_boards, n_records=len(records), verify=model.verify_from_records(references, records), **common),
        encoding="utf-8")
    return index


def _breakable(name: str):
    """An indexer label that may wrap after each ``:`` of its options (escaped first)."""
    from markupsafe import Markup, escape

    return Markup(":<wbr>").join(escape(part) for part in str(name).split(":"))


def _sections(board: Board, folder: Path, reference_indexer: str | None) -> list[Section]:
    from . import figures

    sections: list[Section] = []
    first = {e.indexer: e.records[0] for e in board.entries}  # the lowest seed draws the pictures

    usage = {name: rec.details["code_usage"] for name, rec in first.items()
             if isinstance(rec.details.get("code_usage"), list) and rec.details["code_usage"]}
    if usage:
        path = figures.code_usage(usage, folder / "figures" / f"{board.slug}--code-usage.png")
        sections.append(Section("code-usage", "Code usage per position", (
            "Documents per code, codes ranked by use, at each ID position (each indexer's lowest seed). "
            "Utilisation, perplexity and collision rate are in the leaderboard."),
            [Figure(f"figures/{path.name}", "Rank-frequency of codes per position for " + ", ".join(usage),
                    "Codes per position, log-log: flat means balanced, a cliff means few codes carry the corpus.")]))

    spread = Section("categories", "Categories over the first code (the paper's Fig. 3)",
                     "Share of each first code's documents in each level-2 category: one dark cell per column is "
                     "a first position that separates the categories.")
    for name, rec in first.items():
        table = rec.details.get("first_code_categories")
        if isinstance(table, dict) and table:
            path = figures.category_spread(table, f"{name}: level-2 category × first code",
                                           folder / "figures" / f"{board.slug}--{_slug(name)}--categories.png")
            spread.figures.append(Figure(f"figures/{path.name}", f"Category shares per first code of {name}",
                                         f"{name} (seed {rec.seed}): the most used first codes and largest categories."))
    if spread.figures:
        sections.append(spread)

    training = Section("curves", "Training curves", "What each indexer recorded while it trained (lowest seed).")
    for name, rec in first.items():
        found = model.curves(rec.details)
        if found:
            path = figures.curves(found[:MAX_CURVE_PANELS], f"{name}: training curves",
                                  folder / "figures" / f"{board.slug}--{_slug(name)}--curves.png")
            shown = ", ".join(dict.fromkeys(c.name for c in found[:MAX_CURVE_PANELS]))
            more = f" ({len(found) - MAX_CURVE_PANELS} more series not drawn)" if len(found) > MAX_CURVE_PANELS else ""
            training.figures.append(Figure(f"figures/{path.name}", f"Training curves of {name}: {shown}",
                                           f"{name}: {shown}{more}."))
    if training.figures:
        sections.append(training)

    difference = _difference_section(board, folder, reference_indexer)
    if difference:
        sections.append(difference)

    samples = {name: rec.details["latencies_ms"] for name, rec in first.items()
               if isinstance(rec.details.get("latencies_ms"), list) and rec.details["latencies_ms"]}
    if samples:
        path = figures.latencies(samples, folder / "figures" / f"{board.slug}--latency.png")
        sections.append(Section("latency", "Single-query latency",
                                "Queries searched one at a time after the batched ranking (the probe behind p50/p95).",
                                [Figure(f"figures/{path.name}", "Latency distribution per indexer: " + ", ".join(samples),
                                        "Box: quartiles and median; whiskers 1.5 IQR; points beyond them.")]))
    return sections


def _difference_section(board: Board, folder: Path, reference_indexer: str | None) -> Section | None:
    from . import figures

    scored = [e for e in board.entries if any(r.per_query for r in e.records)]
    if len(scored) < 2 or not board.metrics:
        return None
    metric = board.metrics[0]
    names = {e.indexer: e for e in scored}
    reference: Entry = names.get(reference_indexer or "") or names.get(DEFAULT_REFERENCE) or scored[0]
    base = model.per_query_means(reference, metric)
    differences = {}
    for e in scored:
        if e is reference:
            continue
        mine = model.per_query_means(e, metric)
        common = sorted(base.keys() & mine.keys())
        if common:
            differences[e.indexer] = [mine[q] - base[q] for q in common]
    if not differences:
        return None
    shown = dict(list(differences.items())[:MAX_DIFFERENCE_PANELS])
    path = figures.per_query_difference(shown, metric, reference.indexer,
                                        folder / "figures" / f"{board.slug}--per-query.png")
    more = f" The {len(differences) - len(shown)} lowest-ranked indexers are not drawn." if len(differences) > len(shown) else ""
    return Section("per-query", f"Per query against {reference.indexer}",
                   f"Each indexer's {metric} minus {reference.indexer}'s on every test query both scored (query values "
                   f"averaged over seeds).{more}",
                   [Figure(f"figures/{path.name}", f"Per-query {metric} differences against {reference.indexer}",
                           f"Sorted per-query differences in {metric}; above zero the indexer is better.")])


def _slug(text: str) -> str:
    return model.slug(text)


__all__ = ["MARKER", "write_report"]
