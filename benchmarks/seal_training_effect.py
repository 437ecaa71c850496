"""What training changes in SEAL's SciFact rankings: are the trained model's rankings pulled
towards the documents its training pairs were about?

SciFact's train and test claims share documents (181 of the 283 documents relevant to a test
claim are relevant to a train claim too), so a model that memorises its training documents'
n-grams could gain on those queries and lose on the rest. For every seal (and bm25) cell of
SciFact document-retrieval in a store, this prints ndcg@10 over all test queries, over the
queries whose relevant documents were seen in training and over the rest, and how much of each
top 10 is made of training documents:

    python benchmarks/seal_training_effect.py --store benchmarks/out/seal/store.sqlite [--store ...]

Reads the stored per-query results (`indexbench run` keeps them); changes nothing.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np


def main() -> None:
    from indexbench.datasets.beir import load_beir
    from indexbench.store import ResultStore

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", type=Path, action="append", required=True, help="repeatable")
    parser.add_argument("--data-dir", type=Path, default=Path("../shared/data"))
    parser.add_argument("--dataset", default="scifact")
    args = parser.parse_args()

    dataset = load_beir(args.data_dir / args.dataset, args.dataset)
    seen = {doc for docs in dataset.qrels.get("train", {}).values() for doc, rel in docs.items() if rel > 0}
    records = [r for store in args.store
               for r in ResultStore(store).records(dataset=args.dataset, task="document-retrieval", results=True)]
    print(f"{len(seen)} documents are relevant to a train query\n")
    print("| cell | ndcg@10 | on queries with a seen document (n) | on the others (n) "
          "| top-10 share of seen documents |")
    print("|---|---:|---:|---:|---:|")
    for record in records:
        if record.status != "ok" or not record.per_query:
            continue
        with_seen, without, share = [], [], []
        for query, values in record.per_query.items():
            relevant = {d for d, rel in record.qrels.get(query, {}).items() if rel > 0}
            (with_seen if relevant & seen else without).append(values["ndcg@10"])
            top = [doc for doc, _ in record.rankings.get(query, [])[:10]]
            share.append(sum(doc in seen for doc in top) / max(1, len(top)))
        print(f"| {record.indexer} | {record.metrics['ndcg@10']:.3f} | {np.mean(with_seen):.3f} ({len(with_seen)}) "
              f"| {np.mean(without):.3f} ({len(without)}) | {np.mean(share):.3f} |")


if __name__ == "__main__":
    main()
