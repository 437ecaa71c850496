"""Constrained decoding speed: indexbench's beam search vs Hugging Face generate().

Same model (the default backbone with ID tokens added), same queries, same valid IDs, same beam
width; only the search differs. The naive way is ``model.generate(num_beams=W,
num_return_sequences=W, prefix_allowed_tokens_fn=...)`` with a Python-dict trie — what DSI/TIGER
re-implementations typically do. Weights are untrained: speed does not depend on them.

    python benchmarks/decoding.py [--data-dir ../shared/data] [--queries 338] [--beams 20]

Queries are amazon-scientific product-search queries (all splits, in a fixed order) when the data
is present, else the built-in sample's; IDs are random of the default (T, K) shape for that corpus.
Prints one JSON line per method and writes benchmarks/out/decoding.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
import torch


def load_queries_and_corpus(data_dir: Path | None):
    from indexbench.registry import get_registry
    from indexbench.tasks.product_search import build_queries

    registry = get_registry()
    if data_dir is not None and (data_dir / "amazon-scientific").is_dir():
        dataset = registry.dataset("amazon-scientific").load(data_dir / "amazon-scientific")
    else:
        dataset = registry.dataset("sample").load(None)
    return dataset.name, sorted(build_queries(dataset.corpus)), dataset.corpus


def random_ids(n_docs: int, sizes: tuple[int, ...], seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    prefixes = rng.integers(0, sizes[:-1], size=(n_docs, len(sizes) - 1))
    last = np.zeros(n_docs, dtype=np.int64)
    seen: dict[tuple, int] = {}
    for i, p in enumerate(map(tuple, prefixes)):
        last[i] = seen.get(p, 0)
        seen[p] = last[i] + 1
    return np.concatenate([prefixes, last[:, None]], axis=1)


def naive_generate(backbone, codes: np.ndarray, tokens: list[list[int]], beams: int, batch: int):
    vocab = backbone.vocabulary
    start = backbone.decoder_start_token_id
    allowed: dict[tuple[int, ...], list[int]] = {}
    for row in vocab.tokens(codes).tolist():
        for t in range(len(row)):
            allowed.setdefault(tuple(row[:t]), []).append(row[t])
    allowed = {k: sorted(set(v)) for k, v in allowed.items()}

    def prefix_allowed(_batch_id, input_ids):
        prefix = tuple(input_ids.tolist()[1:])  # drop the decoder start token
        return allowed.get(prefix, [start])

    # The same length-sorted batches as indexbench's search, so both encode the same padding.
    order = sorted(range(len(tokens)), key=lambda i: len(tokens[i]))
    out: list = [None] * len(tokens)
    for lo in range(0, len(order), batch):
        rows = order[lo : lo + batch]
        ids, mask = backbone.text.collate([tokens[i] for i in rows], backbone.device)
        generated = backbone.model.generate(
            input_ids=ids, attention_mask=mask, num_beams=beams, num_return_sequences=beams,
            max_new_tokens=len(vocab.codebook_sizes), min_new_tokens=len(vocab.codebook_sizes),
            prefix_allowed_tokens_fn=prefix_allowed, decoder_start_token_id=start, do_sample=False,
            early_stopping=True, length_penalty=0.0)
        for i, found in zip(rows, generated[:, 1:].reshape(len(rows), beams, -1).tolist()):
            out[i] = found
    return out


def ours(backbone, trie, tokens, beams, batch):
    from indexbench.generative.decoding import search_batched

    return search_batched(backbone, trie, tokens, beams, batch)[0]


def main() -> None:
    from indexbench.generative.backbones import load_backbone
    from indexbench.generative.id_tokens import IdTrie
    from indexbench.semantic_ids import default_id_shape

    parser = argparse.ArgumentParser()
    parser.add_argument("--data-dir", type=Path, default=Path("../shared/data"))
    parser.add_argument("--queries", type=int, default=338)
    parser.add_argument("--beams", type=int, default=20)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--backbone", default="minilm-encdec")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()

    name, queries, corpus = load_queries_and_corpus(args.data_dir)
    queries = (queries * (args.queries // len(queries) + 1))[: args.queries]
    length, k = default_id_shape(len(corpus))
    sizes = (k,) * length
    codes = random_ids(len(corpus), sizes)
    backbone = load_backbone(args.backbone, device=args.device)
    backbone.add_id_tokens(sizes)
    trie = IdTrie(codes, sizes)
    tokens = backbone.text.tokenize(queries, max_length=64)

    results = {}
    with torch.inference_mode(), backbone.autocast():
        ours(backbone, trie, tokens[:8], args.beams, args.batch)  # warm-up
        for method in ("indexbench", "hf-generate"):
            started = time.perf_counter()
            if method == "indexbench":
                found = ours(backbone, trie, tokens, args.beams, args.batch)
                top1 = [tuple(codes[row[0]]) for row in found]
            else:
                found = naive_generate(backbone, codes, tokens, args.beams, args.batch)
                offsets = np.array(backbone.vocabulary.offsets)
                top1 = [tuple(np.array(row[0]) - offsets) for row in found]
            seconds = time.perf_counter() - started
            results[method] = {"queries": len(tokens), "seconds": round(seconds, 2),
                               "queries_per_s": round(len(tokens) / seconds, 1), "top1": top1}
    agree = np.mean([a == b for a, b in zip(results["indexbench"]["top1"], results["hf-generate"]["top1"])])
    summary = {
        "dataset": name, "n_docs": len(corpus), "id_shape": list(sizes), "beams": args.beams,
        "batch": args.batch, "backbone": args.backbone, "device": args.device,
        "threads": torch.get_num_threads(), "machine": platform.processor() or platform.machine(),
        "speedup": round(results["hf-generate"]["seconds"] / results["indexbench"]["seconds"], 2),
        "top1_agreement": round(float(agree), 3),
        **{m: {k: v for k, v in r.items() if k != "top1"} for m, r in results.items()},
    }
    print(json.dumps(summary))
    out = Path(__file__).parent / "out"
    out.mkdir(exist_ok=True)
    (out / "decoding.json").write_text(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
