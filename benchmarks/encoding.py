"""Encoding speed and quality: a plain loop over MiniLM against `TextEncoder` at each precision.

Issue #17's table. In one run, on the same SciFact abstracts (256 tokens at most):

* ``plain loop`` -- the model and tokenizer as a user would call them: batches of 64 in corpus
  order, each padded to its longest text, mean pooling, float32;
* ``TextEncoder`` at every precision asked for (``fp32``, ``int8``, ``bf16``): length-sorted
  batches, the precision's model.

Speed is docs/s over the first ``--docs`` abstracts (after one warm-up batch each). With
``--ndcg`` every precision also encodes the whole corpus and the test claims and reports the
zero-shot dual encoder's ndcg@10 (exact inner-product search), against fp32's. Nothing is cached
or written outside benchmarks/out/.

    python benchmarks/encoding.py [--data-dir ../shared/data] [--docs 768] [--ndcg]
                                  [--precisions fp32,int8] [--threads N] [--device cpu]
                                  [--int8-keep-float REGEX ...]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np


def plain_loop(encoder, texts: list[str], max_length: int, batch_size: int = 64) -> np.ndarray:
    """What the issue calls the plain loop: no sorting, the tokenizer's own padding."""
    import torch

    model, tokenizer = encoder.model.eval(), encoder.tokenizer
    rows = []
    with torch.inference_mode():
        for start in range(0, len(texts), batch_size):
            batch = tokenizer(texts[start : start + batch_size], padding=True, truncation=True,
                              max_length=max_length, return_tensors="pt").to(encoder.device)
            hidden = model(**batch).last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).float()
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            rows.append(torch.nn.functional.normalize(pooled, dim=-1).float().cpu().numpy())
    return np.concatenate(rows)


def int8_keeping_float(encoder, keep_float: str) -> None:
    """Make ``encoder`` an int8 encoder whose linear layers matching the regex ``keep_float``
    stay float (an experiment, not an option of `TextEncoder`: if a split wins on speed and
    quality, `TextEncoder.inference_model` adopts it)."""
    from indexbench.encoders import int8_copy

    encoder.precision = "int8"
    encoder._inference_model = int8_copy(encoder.model, keep_float)


def docs_per_s(encode, texts: list[str]) -> tuple[float, np.ndarray]:
    encode(texts[:64])  # warm-up: first-call allocations, the int8 copy's quantisation
    started = time.perf_counter()
    emb = encode(texts)
    return len(texts) / (time.perf_counter() - started), emb


def ndcg_at_10(doc_emb: np.ndarray, query_emb: np.ndarray, doc_ids, query_ids, qrels) -> float:
    from indexbench.metrics import ranking_metrics

    scores = query_emb @ doc_emb.T
    top = np.argsort(-scores, axis=1, kind="stable")[:, :100]
    run = {q: [(doc_ids[j], float(scores[i, j])) for j in top[i]] for i, q in enumerate(query_ids)}
    return ranking_metrics(run, {q: qrels[q] for q in query_ids}, ["ndcg@10"])["ndcg@10"]


def main() -> None:
    import torch

    from indexbench.datasets.beir import load_beir
    from indexbench.encoders import load_minilm

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=Path("../shared/data"))
    parser.add_argument("--docs", type=int, default=768)
    parser.add_argument("--precisions", default="fp32,int8")
    parser.add_argument("--ndcg", action="store_true", help="also encode the whole corpus per precision")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--int8-keep-float", action="append", default=[], metavar="REGEX",
                        help="an extra int8 row whose linear layers matching REGEX stay float (repeatable)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    dataset = load_beir(args.data_dir / "scifact", "scifact")
    texts = dataset.corpus.texts[: args.docs]
    encoder = load_minilm(args.device)
    rows = []
    speed, reference = docs_per_s(lambda t: plain_loop(encoder, t, args.max_length), texts)
    rows.append({"method": "plain loop (fp32, corpus order)", "docs_per_s": speed})
    test = {q: d for q, d in dataset.qrels["test"].items() if any(r > 0 for r in d.values())}
    query_ids = sorted(test)
    variants = [(p, None) for p in args.precisions.split(",") if p] + [("int8", k) for k in args.int8_keep_float]
    for precision, keep_float in variants:
        if keep_float is None:
            encoder.precision = precision
        else:
            int8_keeping_float(encoder, keep_float)
        speed, emb = docs_per_s(lambda t: encoder.encode(t, max_length=args.max_length), texts)
        label = f"TextEncoder {encoder.precision}" + (f" (float: {keep_float})" if keep_float else "")
        row = {"method": label, "docs_per_s": speed,
               "mean_cosine_to_plain_loop": float(np.mean(np.sum(emb * reference, axis=1)))}
        if args.ndcg:
            started = time.perf_counter()
            docs = encoder.encode(dataset.corpus.texts, max_length=args.max_length)
            row["corpus_s"] = time.perf_counter() - started
            queries = encoder.encode([dataset.queries[q] for q in query_ids], max_length=64)
            row["ndcg@10"] = ndcg_at_10(docs, queries, dataset.corpus.ids, query_ids, test)
        rows.append(row)
    base = rows[0]["docs_per_s"]
    for row in rows:
        row["speed_vs_plain_loop"] = row["docs_per_s"] / base
        print(json.dumps(row))
    out = Path("benchmarks/out")
    out.mkdir(parents=True, exist_ok=True)
    (out / "encoding.json").write_text(json.dumps({"docs": len(texts), "threads": torch.get_num_threads(),
                                                    "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
