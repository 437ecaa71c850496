"""The oracle row of the ID-input grid (issue #30): the same engine, recipe and step count as a
grid cell, but every history -- training prefixes, dev and test users alike -- ends with the very
item the model must name. The answer is then in the input; a model that learned to read its input
copies the last item's ID and reaches recall ~1.

It separates two causes of a low grid cell at a small budget. If the oracle also stays low at the
same steps, the engine (optimiser, learning rate, decoding, ID vocabulary) cannot fit even an easy
input→ID mapping in that many steps: a defect or a recipe problem, not the task's difficulty. If
the oracle reaches ~1 early, the machinery learns quickly, and what the real cell lacks at that
budget is the sequential signal itself (more steps, or a better prior).

    python benchmarks/oracle_input.py [SPEC] [-d amazon-beauty:category_text=true] [--json OUT]

The default SPEC is the grid's best cell (rqkmeans at ids_input.sh's CPU budget). Same cache
rules as the grid (INDEXBENCH_CACHE); its models train on other examples, so they get their own
cache entries. Prints the dev curve as it goes and the test metrics at the end; nothing goes to
the results store (the oracle is not a method and must not reach a leaderboard).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

DEFAULT_SPEC = "rqkmeans:preset=tiger:max_steps=700:dev_every=100:dev_queries=1000"
METRICS = ["recall@5", "ndcg@5", "recall@10", "ndcg@10"]


class PrintedProgress:
    """A `Progress` with no bars that prints the engine's log lines (the dev curve) as they come:
    readable in a nohup log."""

    def task(self, description: str, total: int | None = None):
        from indexbench.protocols import SilentProgress

        print(description, flush=True)
        return SilentProgress().task(description, total)

    def track(self, items, description: str, total: int | None = None):
        return iter(items)

    def log(self, message: str, level: str = "info") -> None:
        print(message, flush=True)


def planted(histories: dict[str, list[str]], qrels: dict[str, dict[str, int]]) -> dict[str, list[str]]:
    """Each history with its query's relevant item appended (the one leave-one-out target)."""
    out = {}
    for q, items in histories.items():
        [target] = [d for d, rel in qrels[q].items() if rel > 0]
        out[q] = [*items, target]
    return out


def oracle_engine(indexer):
    """The generative engine with every training prefix followed by its own target."""
    from indexbench.generative.engine import GenerativeRetrieval

    class OracleRetrieval(GenerativeRetrieval):
        @staticmethod
        def _history_examples(problem, history, ids):
            return [(history.tokens(items[: t + 1], user), tuple(ids.ids[items[t]]))
                    for user, items in problem.sequences.items() for t in range(1, len(items))]

    return OracleRetrieval(indexer)


def main() -> None:
    import indexbench
    from indexbench.cache import ArtifactCache
    from indexbench.environment import cpu_isa, package_versions
    from indexbench.metrics import ranking_metrics
    from indexbench.paths import cache_dir
    from indexbench.protocols import RunContext

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("spec", nargs="?", default=DEFAULT_SPEC)
    parser.add_argument("-d", "--dataset", default="amazon-beauty:category_text=true")
    parser.add_argument("--data-dir", type=Path, default=Path("../shared/data"))
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, default=Path("benchmarks/out/cpu/ids-oracle.json"))
    args = parser.parse_args()

    indexer = indexbench.get_indexer(args.spec)
    dataset = indexbench.get_dataset(args.dataset, data_dir=args.data_dir)
    problem, test = indexbench.get_task("recommendation").split(dataset)
    problem.dev.histories = planted(problem.dev.histories, problem.dev.qrels)
    ctx = RunContext(seed=args.seed, device=args.device, cache=ArtifactCache(cache_dir()), progress=PrintedProgress())

    started = time.perf_counter()
    engine = oracle_engine(indexer)
    retriever = engine.build_retriever(problem, ctx)
    built_s = time.perf_counter() - started
    qids = sorted(test.queries)
    histories = planted({q: test.histories[q] for q in qids}, test.qrels)
    started = time.perf_counter()
    rankings = retriever.search_histories([histories[q] for q in qids], 10, users=qids)
    search_s = time.perf_counter() - started
    metrics = ranking_metrics(dict(zip(qids, rankings)), {q: test.qrels[q] for q in qids}, METRICS)
    training = engine.details["training"]
    result = {"spec": args.spec, "dataset": args.dataset, "input": "ids + the target planted last", "seed": args.seed,
              "test_users": len(qids), **metrics,
              "dev_checks": training.get("dev_checks", []), "steps": training.get("steps"),
              "protocol": engine.details["protocol"], "build_s": built_s, "search_s": search_s,
              "machine": {"device": args.device, "cpu": cpu_isa(), "torch": package_versions().get("torch")}}
    print(json.dumps({k: v for k, v in result.items() if k != "dev_checks"}), flush=True)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
