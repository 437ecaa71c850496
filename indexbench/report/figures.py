"""The report's charts, drawn with matplotlib's object API (no pyplot: no global state, no
display) as PNG files. Every chart is readable without colour: series are told apart by labels
on the axes or in titles and by hatching, never by a legend's colours alone.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

from .model import Curve

DPI = 100
GREYS = ("0.25", "0.55", "0.8", "0.4", "0.7", "0.15", "0.9", "0.6")


def _figure(width: float, height: float):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    return fig


def _save(fig, path: Path) -> Path:
    fig.savefig(path, format="png")
    return path


def code_usage(usage: Mapping[str, Sequence[Sequence[int]]], path: Path) -> Path:
    """Rank-frequency of the codes at each position, one panel per position, one labelled line
    per indexer (log-log): a flat line is a balanced codebook, a cliff a collapsed one."""
    positions = max(len(v) for v in usage.values())
    fig = _figure(3.6 * positions, 3.0)
    axes = fig.subplots(1, positions, squeeze=False)[0]
    for t, ax in enumerate(axes):
        for i, (indexer, per_position) in enumerate(usage.items()):
            if t >= len(per_position) or not per_position[t]:
                continue
            counts = per_position[t]
            ranks = range(1, len(counts) + 1)
            ax.plot(ranks, counts, color=GREYS[i % len(GREYS)], linestyle=("-", "--", ":", "-.")[i % 4])
            ax.annotate(f"{indexer} ({len(counts)})", (len(counts), counts[-1]), fontsize=7,
                        xytext=(2, 2 + 8 * i), textcoords="offset points")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_title(f"position {t + 1}: documents per code", fontsize=9)
        ax.set_xlabel("code rank (codes used in brackets)", fontsize=8)
        if t == 0:
            ax.set_ylabel("documents", fontsize=8)
        ax.tick_params(labelsize=7)
    return _save(fig, path)


def category_spread(table: Mapping[str, Mapping[str, int]], title: str, path: Path,
                    max_codes: int = 24, max_categories: int = 14) -> Path:
    """The paper's Fig. 3 as a table of shares: rows are the largest level-2 categories, columns
    the most used first codes; each cell prints the percentage of the column's documents in
    that category (grey level repeats it). A good first position has one dark cell per column."""
    by_code: dict[str, int] = {}
    for counts in table.values():
        for code, n in counts.items():
            by_code[code] = by_code.get(code, 0) + n
    codes = sorted(by_code, key=lambda c: (-by_code[c], int(c) if c.isdigit() else c))[:max_codes]
    categories = sorted(table, key=lambda c: -sum(table[c].values()))[:max_categories]
    shares = [[table[cat].get(code, 0) / by_code[code] for code in codes] for cat in categories]
    fig = _figure(1.2 + 0.42 * len(codes) + 2.2, 1.0 + 0.3 * len(categories))
    ax = fig.add_subplot()
    ax.imshow(shares, cmap="Greys", vmin=0, vmax=1, aspect="auto")
    for i, row in enumerate(shares):
        for j, share in enumerate(row):
            if share >= 0.005:
                ax.text(j, i, f"{share * 100:.0f}", ha="center", va="center", fontsize=6,
                        color="white" if share > 0.5 else "black")
    ax.set_xticks(range(len(codes)), [f"{c}\n({by_code[c]})" for c in codes], fontsize=6)
    ax.set_yticks(range(len(categories)), [_short(c, 38) for c in categories], fontsize=7)
    ax.set_xlabel("first code (documents); cells: % of the code's documents in the category", fontsize=8)
    ax.set_title(_wrap(title, 90), fontsize=9)
    return _save(fig, path)


def curves(panels: Sequence[Curve], title: str, path: Path, columns: int = 3) -> Path:
    """Small multiples, one titled panel per series (no legend to decode)."""
    rows = math.ceil(len(panels) / columns)
    fig = _figure(3.4 * min(columns, len(panels)), 2.4 * rows)
    axes = fig.subplots(rows, min(columns, len(panels)), squeeze=False)
    for ax, curve in zip(axes.flat, panels):
        xs, ys = zip(*curve.points)
        ax.plot(xs, ys, color="0.2", marker="." if len(xs) < 60 else None, markersize=3)
        ax.set_title(curve.name, fontsize=8)
        ax.set_xlabel(curve.x_label, fontsize=7)
        ax.tick_params(labelsize=7)
    for ax in list(axes.flat)[len(panels):]:
        ax.set_visible(False)
    fig.suptitle(_wrap(title, 70 * min(columns, len(panels)) // 2), fontsize=9)
    return _save(fig, path)


def per_query_difference(differences: Mapping[str, Sequence[float]], metric: str, reference: str,
                         path: Path) -> Path:
    """Per indexer, its per-query ``metric`` minus the reference's, sorted: bars above zero are
    the queries it wins, below the ones it loses; the title of each panel counts both."""
    fig = _figure(7.0, 1.5 + 1.8 * len(differences))
    axes = fig.subplots(len(differences), 1, squeeze=False)[:, 0]
    for ax, (indexer, diffs) in zip(axes, differences.items()):
        ordered = sorted(diffs, reverse=True)
        ax.bar(range(len(ordered)), ordered, width=1.0, color="0.35", linewidth=0)
        ax.axhline(0, color="black", linewidth=0.6)
        wins = sum(d > 0 for d in ordered)
        losses = sum(d < 0 for d in ordered)
        ax.set_title(_wrap(f"{indexer} − {reference}: {wins} queries better, {losses} worse, "
                           f"{len(ordered) - wins - losses} equal", 110), fontsize=8)
        ax.set_xlim(-0.5, max(len(ordered), 1) - 0.5)
        ax.set_ylabel(f"Δ {metric}", fontsize=7)
        ax.tick_params(labelsize=7)
    axes[-1].set_xlabel("queries, sorted by difference", fontsize=8)
    return _save(fig, path)


def latencies(samples: Mapping[str, Sequence[float]], path: Path) -> Path:
    """One labelled horizontal box per indexer, single-query latency on a log axis."""
    names = list(samples)
    fig = _figure(7.0, 1.0 + 0.45 * len(names))
    ax = fig.add_subplot()
    ax.boxplot([samples[n] for n in names], orientation="horizontal", tick_labels=names,
               medianprops={"color": "black"}, flierprops={"markersize": 3})
    ax.set_xscale("log")
    ax.set_xlabel("single-query latency, ms (log scale)", fontsize=8)
    ax.tick_params(labelsize=7)
    return _save(fig, path)


def _wrap(text: str, width: int) -> str:
    import textwrap

    return "\n".join(textwrap.wrap(text, max(width, 30), break_on_hyphens=False)) or text


def _short(text: str, width: int) -> str:
    return text if len(text) <= width else "…" + text[-(width - 1):]
