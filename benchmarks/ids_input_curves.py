"""The learning curves of issue #30's ID-input grid (benchmarks/ids_input.sh): dev recall@10 by
training step for each tokenizer, beside sasrec and most-popular, and what a log-linear fit of
each curve's second half says about the steps TIGER's published recall@10 would need.

    python benchmarks/ids_input_curves.py [--out-dir benchmarks/out/cpu] [--png benchmarks/ids_input_curves.png]

Reads ``ids-<row>.json`` (the records `indexbench run --json` wrote); prints a Markdown table
(the curve, test metrics, the fit) and draws the figure; ``ids-oracle.json``
(`benchmarks/oracle_input.py`) and ``ids-rqkmeans-2000.json`` (the rqkmeans cell at
``max_steps=2000``), when present, add their rows. The fit, recall@10 = a + b ln(step)
over the checks from the curve's midpoint on, is a description of the curve's recent slope,
not a promise: transformers trained from scratch usually bend below a log-linear line long
before 200k steps, so its "steps to reach" figure is an optimistic bound at best.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

TIGER_RECALL_AT_10 = 0.0648
"""TIGER's Beauty row (Rajput et al. 2023, Table 1), the figure the fit is asked about."""
TOKENIZERS = ("rqvae", "rqkmeans", "hc", "random-ids")
LONGER_RUNS = ("rqkmeans-2000",)
"""Cells run past the grid's 700 steps to test what the fit predicted (same spec but
``max_steps``; its first 700 steps are the grid cell's, check for check)."""
BASELINES = ("sasrec", "most-popular")


def load(out_dir: Path, row: str) -> dict | None:
    path = out_dir / f"ids-{row}.json"
    if not path.is_file():
        return None
    (record,) = [r for r in json.loads(path.read_text()) if r["status"] == "ok"] or [None]
    return record


def paired_p(record: dict, other: dict | None, metric: str = "recall@10") -> str:
    """Paired t-test p over the test users (`indexbench.checks.paired_tests`) of ``metric``."""
    from indexbench.checks import paired_tests

    if other is None or other["indexer"] == record["indexer"]:
        return ""
    users = sorted(set(record["per_query"]) & set(other["per_query"]))
    p, _ = paired_tests([other["per_query"][u][metric] for u in users], [record["per_query"][u][metric] for u in users])
    return "" if p is None else ("< .001" if p < 0.001 else f"{p:.3f}".lstrip("0"))


def fit(points: list[tuple[int, float]]) -> tuple[float, float] | None:
    """Least squares of recall = a + b ln(step) over the second half of the checks."""
    half = [(math.log(s), r) for s, r in points if s >= points[-1][0] / 2]
    if len(half) < 3:
        return None
    mx = sum(x for x, _ in half) / len(half)
    my = sum(y for _, y in half) / len(half)
    b = sum((x - mx) * (y - my) for x, y in half) / sum((x - mx) ** 2 for x, _ in half)
    return my - b * mx, b


def oracle_row(path: Path) -> None:
    """The oracle's row (`benchmarks/oracle_input.py`: the target planted last in every history),
    when it has run: the same columns, no fit. Not drawn -- near 1 it would flatten the figure."""
    if not path.is_file():
        return
    oracle = json.loads(path.read_text())
    curve = ", ".join(f"{c['recall@10']:.4f} @{c['step']}" for c in oracle.get("dev_checks", []))
    protocol = oracle.get("protocol", {})
    invalid = (f"{protocol['invalid_id_rate']:.1%} ({protocol['invalid_id_rate_free']:.1%})"
               if "invalid_id_rate" in protocol else "")
    name = f"oracle: {oracle['spec'].split(':')[0]} IDs, target planted last"
    print(f"| {name} | {curve} | {oracle['recall@5']:.4f} | {oracle['ndcg@5']:.4f} | {oracle['recall@10']:.4f} | "
          f"{oracle['ndcg@10']:.4f} | | | {invalid} | | |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out-dir", type=Path, default=Path(__file__).parent / "out" / "cpu")
    parser.add_argument("--png", type=Path, default=Path(__file__).parent / "ids_input_curves.png")
    args = parser.parse_args()

    curves: dict[str, list[tuple[int, float]]] = {}
    popular, random = load(args.out_dir, "most-popular"), load(args.out_dir, "random-ids")
    print("| row | dev recall@10 by step | test R@5 | N@5 | R@10 | N@10 | R@10 p vs most-popular | vs random-ids "
          "| invalid IDs (no trie) | fit: +R@10 per doubling | steps to .0648 by the fit |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for row in TOKENIZERS + LONGER_RUNS + BASELINES:
        record = load(args.out_dir, row)
        if record is None:
            continue
        m = record["metrics"]
        indexer = record["details"].get("indexer", {})
        checks = indexer.get("training", {}).get("dev_checks", [])
        points = [(int(c["step"]), float(c["recall@10"])) for c in checks]
        protocol = indexer.get("protocol", {})
        invalid = (f"{protocol['invalid_id_rate']:.1%} ({protocol['invalid_id_rate_free']:.1%})"
                   if "invalid_id_rate" in protocol else "")
        line = fit(points) if points else None
        slope = reach = ""
        if line is not None:
            a, b = line
            slope = f"{b * math.log(2):+.4f}"
            reach = f"{math.exp((TIGER_RECALL_AT_10 - a) / b):,.0f}" if b > 0 else "never"
        if points:
            curves[row] = points
        curve = ", ".join(f"{r:.4f} @{s}" for s, r in points)
        print(f"| {row} | {curve} | {m['recall@5']:.4f} | {m['ndcg@5']:.4f} | {m['recall@10']:.4f} | "
              f"{m['ndcg@10']:.4f} | {paired_p(record, popular)} | {paired_p(record, random)} | {invalid} | {slope} | "
              f"{reach} |")
    oracle_row(args.out_dir / "ids-oracle.json")

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=120)
    for row, points in curves.items():
        # A longer run repeats its grid cell's first 700 steps exactly: drawn beneath it, dashed.
        longer = row in LONGER_RUNS
        ax.plot(*zip(*points), marker="o", markersize=3, label=row, linestyle="--" if longer else "-",
                zorder=1 if longer else 2)
    for row, style in zip(BASELINES, ("--", ":")):
        record = load(args.out_dir, row)
        if record is not None:
            ax.axhline(record["metrics"]["recall@10"], linestyle=style, color="grey", linewidth=1,
                       label=f"{row} (test)")
    ax.axhline(TIGER_RECALL_AT_10, linestyle="-.", color="black", linewidth=1, label="TIGER, paper (test)")
    ax.set_xlabel("training step (batch 256)")
    ax.set_ylabel("recall@10 (dev, first 1,000 users)")
    ax.set_title("Beauty, history as semantic IDs (preset=tiger), CPU budget", fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(args.png)
    print(f"\nfigure: {args.png}")


if __name__ == "__main__":
    main()
