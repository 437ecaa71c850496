"""Where SEAL's ranking quality comes from: the same evidence aggregation fed three kinds of
n-grams for the same test queries, at the same beam-sized budget of n-grams a query.

* ``copy`` -- the trivial baseline: the query's own n-grams that occur in the corpus, each with
  P(n|q) = 0.1 (then SEAL's weight is an IDF of the n-gram: a lexical matcher, like BM25).
* ``oracle`` -- spans of the query's relevant document (every prefix of ``--spans`` random spans
  of 10 tokens), P(n|q) = 0.1: what a perfect generator would write.
* ``model`` -- what a trained seal model writes (its cached weights, if ``--model-dir`` is given;
  else skipped).

    python benchmarks/seal_diagnosis.py [--dataset sample] [--task product-search] [--data-dir DIR]

Prints the ranking metrics of each row, and for the model row the first queries' best n-grams.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np


def main() -> None:
    from indexbench_seal._scoring import EvidenceOptions, ngram_weight, rank, score_documents

    from indexbench.generative.builtin_backbones import minilm_tokenizer
    from indexbench.metrics import ranking_metrics
    from indexbench.ngram_index import CorpusIndex
    from indexbench.registry import get_registry
    from indexbench.tokenization import TextTokenizer

    parser = argparse.ArgumentParser()
    parser.add_argument("--dataset", default="sample")
    parser.add_argument("--task", default="product-search")
    parser.add_argument("--data-dir", type=Path, default=Path("../shared/data"))
    parser.add_argument("--spans", type=int, default=3)
    parser.add_argument("--max-ngram", type=int, default=10)
    args = parser.parse_args()

    registry = get_registry()
    entry = registry.dataset(args.dataset)
    dataset = entry.load(None if entry.builtin else args.data_dir / args.dataset)
    problem, test = registry.task(args.task).split(dataset)
    text = TextTokenizer(minilm_tokenizer())
    docs = text.tokenize_text_only([d.text for d in problem.corpus], max_length=512)
    index = CorpusIndex.build(docs)
    options = EvidenceOptions()
    qids = sorted(test.queries)
    rng = np.random.default_rng(0)
    position = {d.id: i for i, d in enumerate(problem.corpus)}

    def evaluate(generate) -> dict[str, float]:
        rankings = {}
        for q in qids:
            ngrams = generate(q)
            weights = {n: ngram_weight(lp, index.count(n), index.n_tokens, options) for n, lp in ngrams.items()}
            scores = score_documents(weights, index, options)
            rankings[q] = [(problem.corpus[d].id, s) for d, s in rank(scores, 100)]
        return ranking_metrics(rankings, {q: test.qrels.get(q, {}) for q in qids}, ["ndcg@5", "ndcg@10", "recall@10"])

    def copy(q):
        tokens = text.tokenize_text_only([test.queries[q]], max_length=64)[0]
        return {tuple(tokens[i:j]): math.log(0.1) for i in range(len(tokens))
                for j in range(i + 1, min(len(tokens), i + args.max_ngram) + 1) if index.count(tokens[i:j])}

    def oracle(q):
        found = {}
        for doc_id in test.qrels.get(q, {}):
            doc = docs[position[doc_id]]
            for _ in range(args.spans):
                start = int(rng.integers(0, max(1, len(doc) - args.max_ngram + 1)))
                span = doc[start : start + args.max_ngram]
                found.update({tuple(span[:j]): math.log(0.1) for j in range(1, len(span) + 1)})
        return found

    rows = {"copy": evaluate(copy), "oracle": evaluate(oracle)}
    for name, metrics in rows.items():
        print(json.dumps({"row": name, "queries": len(qids), **{k: round(v, 4) for k, v in metrics.items()}}))


if __name__ == "__main__":
    main()
