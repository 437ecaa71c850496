"""How long `indexbench report` takes on a large store (issue #31: thousands of records).

Builds a synthetic store in a temporary folder -- D datasets × 3 ranking tasks + id-quality,
I indexers, S seeds, Q test queries per ranking cell with per-query values, latencies and a
training curve, ID-usage details for id-quality -- then times reading it and writing the report.

    python benchmarks/report_render.py [--datasets 10] [--indexers 12] [--seeds 5] [--queries 300]
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from pathlib import Path

from indexbench.compare import load_side
from indexbench.report import write_report
from indexbench.store import ResultStore, RunRecord

TASKS = ("document-retrieval", "product-search", "recommendation")


def records(datasets: int, indexers: int, seeds: int, queries: int):
    rng = random.Random(0)
    for d in range(datasets):
        for i in range(indexers):
            skill = rng.random()
            for seed in range(seeds):
                for task in TASKS:
                    per_query = {f"q{q}": {"ndcg@10": min(1.0, max(0.0, rng.gauss(skill, 0.3))),
                                           "recall@10": rng.random()} for q in range(queries)}
                    metrics = {m: sum(v[m] for v in per_query.values()) / queries for m in ("ndcg@10", "recall@10")}
                    yield RunRecord(indexer=f"indexer-{i}:steps=200", task=task, dataset=f"data-{d}", status="ok",
                                    seed=seed, metrics=metrics, per_query=per_query,
                                    timings={"fit_s": 10.0, "latency_p50_ms": 5.0},
                                    details={"latencies_ms": [rng.lognormvariate(1.5, 0.5) for _ in range(50)],
                                             "indexer": {"loss_curve": [5 / (1 + s) for s in range(40)]}},
                                    versions={"torch": "2.13.0"})
                usage = [sorted((rng.randint(1, 80) for _ in range(256)), reverse=True) for _ in range(3)]
                categories = {f"cat {c}": {str(rng.randrange(256)): rng.randint(1, 40) for _ in range(30)}
                              for c in range(20)}
                yield RunRecord(indexer=f"indexer-{i}:steps=200", task="id-quality", dataset=f"data-{d}",
                                status="ok", seed=seed, metrics={"ami_l2": skill, "collision_rate": rng.random()},
                                details={"code_usage": usage, "first_code_categories": categories})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", type=int, default=10)
    parser.add_argument("--indexers", type=int, default=12)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--queries", type=int, default=300)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        store = ResultStore(Path(tmp) / "store.sqlite")
        n = 0
        for record in records(args.datasets, args.indexers, args.seeds, args.queries):
            store.add(record)
            n += 1
        start = time.perf_counter()
        loaded = load_side(store.path)
        read_s = time.perf_counter() - start
        start = time.perf_counter()
        index = write_report(loaded, Path(tmp) / "report", source=str(store.path))
        write_s = time.perf_counter() - start
        pages = len(list(index.parent.glob("*.html")))
        images = list((index.parent / "figures").glob("*.png"))
        size = sum(p.stat().st_size for p in index.parent.rglob("*") if p.is_file())
        print(f"{n:,} records ({args.datasets} datasets × {len(TASKS) + 1} tasks × {args.indexers} indexers × "
              f"{args.seeds} seeds, {args.queries} queries a ranking cell): read {read_s:.1f} s, report {write_s:.1f} s; "
              f"{pages} pages, {len(images)} figures, {size / 1e6:.1f} MB")


if __name__ == "__main__":
    main()
