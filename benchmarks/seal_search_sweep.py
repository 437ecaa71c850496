"""Search-time options of one (cached) SEAL model, swept without retraining (issue #15).

The model comes from the artifact cache the run used (``--cache-dir``): the retriever is built
exactly as `indexbench run -i SPEC` builds it, so a trained model loads instead of training
again. Then the test queries are searched once per value of one search-time option, everything
else as in the spec:

    python benchmarks/seal_search_sweep.py --spec seal:max_steps=200 --dataset scifact \
        --task document-retrieval --cache-dir benchmarks/out/seal/cache --option max_ngram --values 1,2,4

One JSON line per value: the task's metrics, and the share of the evidence weight that went to
n-grams of each length. Search-time options: max_ngram, num_beams, alpha, coverage, smoothing,
copy_bias (the copy prior at search only; training saw the spec's). Session 14's untrained copy
sweep is ``--spec seal:train=false[:text_head=none] --option copy_bias --values 0,2,4,8``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from collections import defaultdict
from pathlib import Path

SEARCH_OPTIONS = {"max_ngram": int, "num_beams": int, "alpha": float, "coverage": float, "smoothing": float,
                  "copy_bias": float}


def main() -> None:
    import torch

    from indexbench.cache import ArtifactCache
    from indexbench.metrics import ranking_metrics
    from indexbench.protocols import RunContext
    from indexbench.registry import get_registry
    from indexbench.specs import IndexerSpec

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec", default="seal:max_steps=200")
    parser.add_argument("--dataset", default="scifact")
    parser.add_argument("--task", default="document-retrieval")
    parser.add_argument("--data-dir", type=Path, default=Path("../shared/data"))
    parser.add_argument("--cache-dir", type=Path, required=True)
    parser.add_argument("--option", choices=sorted(SEARCH_OPTIONS), default="max_ngram")
    parser.add_argument("--values", default="1,2,4")
    args = parser.parse_args()

    registry = get_registry()
    entry = registry.dataset(args.dataset)
    dataset = entry.load(None if entry.builtin else args.data_dir / args.dataset)
    task = registry.task(args.task)
    problem, test = task.split(dataset)
    spec = IndexerSpec.parse(args.spec)
    indexer_entry = registry.indexer(spec.name)
    indexer = indexer_entry.factory(spec.build_config(indexer_entry))
    ctx = RunContext(cache=ArtifactCache(args.cache_dir))
    hits_before = ctx.cache.hits
    retriever = indexer.build_retriever(problem, ctx)
    if indexer.config.train and ctx.cache.hits == hits_before:
        print("note: the trained model was not in the cache; it was trained now", flush=True)
    base = retriever.config
    qids = sorted(test.queries)
    for raw in args.values.split(","):
        value = SEARCH_OPTIONS[args.option](raw)
        retriever.config = dataclasses.replace(base, **{args.option: value})
        retriever.evidence = dataclasses.replace(retriever.evidence, **{
            k: value for k in ("alpha", "coverage", "smoothing") if k == args.option})
        weight_by_length: dict[int, float] = defaultdict(float)
        real_weights = retriever.weights

        def recorded(ngrams, first_step=None, real_weights=real_weights, into=weight_by_length):
            weights = real_weights(ngrams, first_step)
            for ngram, w in weights.items():
                into[len(ngram)] += w
            return weights

        retriever.weights = recorded
        with torch.inference_mode():
            found = retriever.search([test.queries[q] for q in qids], 100)
        retriever.weights = real_weights
        metrics = ranking_metrics(dict(zip(qids, found)), {q: test.qrels.get(q, {}) for q in qids}, task.metrics)
        total = sum(weight_by_length.values()) or 1.0
        print(json.dumps({"spec": args.spec, args.option: value, **{k: round(v, 4) for k, v in metrics.items()},
                          "weight_share_by_length": {n: round(w / total, 3)
                                                     for n, w in sorted(weight_by_length.items())}}),
              flush=True)


if __name__ == "__main__":
    main()
