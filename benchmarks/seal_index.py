"""SEAL's corpus n-gram index and n-gram decoding: build time and memory of the index on the real
corpora, and the batched constrained search against a plain Python loop over the same index and
model (every beam's prefix decoded afresh, one query at a time: `reference_ngram_search`).

    python benchmarks/seal_index.py [--data-dir ../shared/data] [--queries 40] [--beams 15] [--max-ngram 10]

The model is the default backbone (minilm-encdec), untrained: speed does not depend on the
weights. Queries are SciFact's test claims. Both searches must return the same n-grams (checked).
Prints one JSON line per measurement and writes benchmarks/out/seal_index.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import time
from pathlib import Path


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def index_corpus(backbone, name: str, data_dir: Path, max_length: int) -> dict:
    import tracemalloc

    from indexbench.ngram_index import CorpusIndex
    from indexbench.registry import get_registry

    dataset = get_registry().dataset(name).load(data_dir / name)
    text = backbone.text
    started = time.perf_counter()
    docs = text.tokenize_text_only([d.text for d in dataset.corpus], max_length=max_length)
    tokenize_s = time.perf_counter() - started
    tracemalloc.start()
    started = time.perf_counter()
    index = CorpusIndex.build(docs)
    build_s = time.perf_counter() - started
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return {"corpus": name, "documents": index.n_documents, "tokens": index.n_tokens,
            "tokenize_s": round(tokenize_s, 2), "build_s": round(build_s, 3),
            "index_mb": round(index.nbytes / 2**20, 2), "build_peak_mb": round(peak / 2**20, 2),
            "index": index, "dataset": dataset}


def main() -> None:
    import torch

    from indexbench.generative.backbones import load_backbone
    from indexbench.generative.ngram_decoding import reference_ngram_search, search_ngrams_batched

    parser = argparse.ArgumentParser()
    parser.add_argument("--data-dir", type=Path, default=Path("../shared/data"))
    parser.add_argument("--queries", type=int, default=40)
    parser.add_argument("--beams", type=int, default=15)
    parser.add_argument("--max-ngram", type=int, default=10)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--index-max-length", type=int, default=512)
    args = parser.parse_args()

    torch.manual_seed(0)
    backbone = load_backbone("minilm-encdec", device="cpu")
    out = {"machine": platform.processor() or platform.machine(), "threads": torch.get_num_threads(), "rows": []}
    indexes = {}
    for name in ("scifact", "amazon-scientific"):
        if not (args.data_dir / name).is_dir():
            print(json.dumps({"corpus": name, "skipped": "data not found"}))
            continue
        row = index_corpus(backbone, name, args.data_dir, args.index_max_length)
        indexes[name] = (row.pop("index"), row.pop("dataset"))
        out["rows"].append(row)
        print(json.dumps(row), flush=True)

    if "scifact" in indexes:
        index, dataset = indexes["scifact"]
        test = sorted(dataset.qrels.get("test", {}))[: args.queries]
        texts = [dataset.queries[q] for q in test]
        tokens = backbone.text.tokenize(texts, max_length=64)
        with torch.inference_mode():
            search_ngrams_batched(backbone, index, tokens[:2], args.beams, args.max_ngram, args.batch)  # warm-up
            started = time.perf_counter()
            batched = search_ngrams_batched(backbone, index, tokens, args.beams, args.max_ngram, args.batch)
            batched_s = time.perf_counter() - started
            started = time.perf_counter()
            plain = [reference_ngram_search(backbone, index, t, args.beams, args.max_ngram) for t in tokens]
            plain_s = time.perf_counter() - started
        same = sum(set(a) == set(b) for a, b in zip(batched.ngrams, plain))
        row = {"decoding": "scifact test claims", "queries": len(tokens), "beams": args.beams,
               "max_ngram": args.max_ngram, "batched_q_per_s": round(len(tokens) / batched_s, 2),
               "plain_loop_q_per_s": round(len(tokens) / plain_s, 3), "speedup": round(plain_s / batched_s, 1),
               "queries_with_identical_ngrams": same,
               "ngrams_per_query": round(sum(map(len, batched.ngrams)) / max(1, len(tokens)), 1)}
        out["rows"].append(row)
        print(json.dumps(row), flush=True)
    out["peak_rss_mb"] = round(peak_rss_mb(), 1)
    target = Path(__file__).parent / "out" / "seal_index.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
