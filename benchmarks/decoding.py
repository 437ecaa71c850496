"""Constrained decoding speed: indexbench's beam search vs Hugging Face generate().

Same model (the default backbone with ID tokens added), same queries, same valid IDs, same beam
width; only the search differs. The naive way is ``model.generate(num_beams=W,
num_return_sequences=W, prefix_allowed_tokens_fn=...)`` with a Python-dict trie — what DSI/TIGER
re-implementations typically do. Weights are untrained: speed does not depend on them.

    python benchmarks/decoding.py [--data-dir ../shared/data] [--queries 338] [--beams 20]
    python benchmarks/decoding.py --backbone t5-tiger --input ids --shape 4x256 --items 12101   # TIGER's

Queries are amazon-scientific product-search queries (all splits, in a fixed order) when the data
is present, else the built-in sample's; IDs are random of the default (T, K) shape for that corpus.
With ``--input ids`` each query is instead a history of 20 random items as their ID tokens
(TIGER's input) over ``--items`` synthetic items, and ``--shape TxK`` sets the ID shape.
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


def id_histories(backbone, codes: np.ndarray, sizes: tuple[int, ...], n: int, seed: int = 0) -> list[list[int]]:
    """``n`` encoder inputs, each the ID tokens of 20 random items (`history_input.HistoryInput`)."""
    from indexbench.data import Corpus, Document, SemanticIds
    from indexbench.generative.history_input import HISTORY_ITEMS, HistoryInput

    items = [str(i) for i in range(len(codes))]
    corpus = Corpus(Document(i, f"item {i}") for i in items)
    ids = SemanticIds({i: tuple(int(c) for c in row) for i, row in zip(items, codes)}, codebook_sizes=sizes)
    history = HistoryInput(backbone, corpus, ids, "ids")
    rng = np.random.default_rng(seed)
    return [history.tokens([items[j] for j in rng.integers(0, len(items), HISTORY_ITEMS)]) for _ in range(n)]


def naive_generate(backbone, codes: np.ndarray, tokens: list[list[int]], beams: int, batch: int,
                   same_scores: bool = False):
    """``generate()`` with a Python-dict trie. With ``same_scores`` the trie is applied by a logits
    processor that first renormalises each step's log-probabilities over the current position's K
    code tokens -- the score indexbench ranks by -- so the two searches can be compared result for
    result; plain ``prefix_allowed_tokens_fn`` keeps generate()'s full-vocabulary normalisation,
    which ranks beams differently (the speed is the same either way)."""
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

    class TrieAtPositionScores:
        """Position-K renormalisation, then the same per-beam dict look-ups as prefix_allowed."""

        def __call__(self, input_ids, scores):
            t = input_ids.shape[1] - 1
            lo, k = vocab.offsets[t], vocab.codebook_sizes[t]
            position = scores[:, lo : lo + k]
            out = torch.full_like(scores, float("-inf"))
            renormalised = position - torch.logsumexp(position, dim=-1, keepdim=True)
            for row, seq in enumerate(input_ids.tolist()):
                ok = allowed.get(tuple(seq[1:]), [])
                out[row, ok] = renormalised[row, [o - lo for o in ok]]
            return out

    constraint = ({"logits_processor": [TrieAtPositionScores()]} if same_scores
                  else {"prefix_allowed_tokens_fn": prefix_allowed})

    # The same length-sorted batches as indexbench's search, so both encode the same padding.
    order = sorted(range(len(tokens)), key=lambda i: len(tokens[i]))
    out: list = [None] * len(tokens)
    for lo in range(0, len(order), batch):
        rows = order[lo : lo + batch]
        ids, mask = backbone.text.collate([tokens[i] for i in rows], backbone.device)
        generated = backbone.model.generate(
            input_ids=ids, attention_mask=mask, num_beams=beams, num_return_sequences=beams,
            max_new_tokens=len(vocab.codebook_sizes), min_new_tokens=len(vocab.codebook_sizes),
            **constraint, decoder_start_token_id=start, do_sample=False,
            early_stopping=True, length_penalty=0.0)
        for i, found in zip(rows, generated[:, 1:].reshape(len(rows), beams, -1).tolist()):
            out[i] = found
    return out


def ours(backbone, trie, tokens, beams, batch):
    from indexbench.generative.decoding import search_batched

    return search_batched(backbone, trie, tokens, beams, batch)[0]


def search(method: str, backbone, trie, codes: np.ndarray, tokens, args) -> list[list[tuple]]:
    """Each query's found IDs (as code tuples), best first."""
    if method == "indexbench":
        return [[tuple(codes[d]) for d in row] for row in ours(backbone, trie, tokens, args.beams, args.batch)]
    found = naive_generate(backbone, codes, tokens, args.beams, args.batch,
                           same_scores=method.endswith("same-scores"))
    offsets = np.array(backbone.vocabulary.offsets)
    return [[tuple(int(c) for c in np.array(r) - offsets) for r in row] for row in found]


def main() -> None:
    from indexbench.generative.backbones import load_backbone
    from indexbench.generative.id_tokens import IdTrie
    from indexbench.id_indexers import default_id_shape

    parser = argparse.ArgumentParser()
    parser.add_argument("--data-dir", type=Path, default=Path("../shared/data"))
    parser.add_argument("--queries", type=int, default=338)
    parser.add_argument("--beams", type=int, default=20)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=2, help="timed passes per method; the fastest counts")
    parser.add_argument("--backbone", default="minilm-encdec")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--input", choices=("text", "ids"), default="text")
    parser.add_argument("--shape", default="", help="ID shape TxK, e.g. 4x256 (default: the corpus's)")
    parser.add_argument("--items", type=int, default=0, help="synthetic items with --input ids (default: corpus)")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "out" / "decoding.json")
    args = parser.parse_args()

    name, queries, corpus = load_queries_and_corpus(args.data_dir)
    queries = (queries * (args.queries // len(queries) + 1))[: args.queries]
    n_items = args.items or len(corpus)
    if args.shape:
        length, k = (int(x) for x in args.shape.lower().split("x"))
    else:
        length, k = default_id_shape(n_items)
    sizes = (k,) * length
    codes = random_ids(n_items, sizes)
    backbone = load_backbone(args.backbone, device=args.device)
    backbone.add_id_tokens(sizes)
    trie = IdTrie(codes, sizes)
    if args.input == "ids":
        tokens = id_histories(backbone, codes, sizes, args.queries)
        name = f"{n_items} synthetic items, 20-item histories as IDs"
    else:
        tokens = backbone.text.tokenize(queries, max_length=64)

    results = {}
    with torch.inference_mode(), backbone.autocast():
        # Warm-up on one full batch each, so lazy CUDA/BLAS initialisation is timed for neither.
        ours(backbone, trie, tokens[: args.batch], args.beams, args.batch)
        naive_generate(backbone, codes, tokens[: args.batch], args.beams, args.batch)
        for method in ("indexbench", "hf-generate", "hf-generate-same-scores"):
            times = []
            for _ in range(args.repeats):  # the fastest pass counts: on CUDA the first one also
                started = time.perf_counter()  # pays one-off kernel selection for each new shape
                top = search(method, backbone, trie, codes, tokens, args)
                times.append(time.perf_counter() - started)
            seconds = min(times)
            results[method] = {"queries": len(tokens), "seconds": round(seconds, 2),
                               "queries_per_s": round(len(tokens) / seconds, 1),
                               "top1": [row[0] for row in top], "top": [set(row) for row in top]}

    def agreement(other: str) -> dict[str, float]:
        ours_r, theirs = results["indexbench"], results[other]
        return {"top1": round(float(np.mean([a == b for a, b in zip(ours_r["top1"], theirs["top1"])])), 3),
                "top_set_overlap": round(float(np.mean([len(a & b) / max(len(a), 1)
                                                        for a, b in zip(ours_r["top"], theirs["top"])])), 3)}

    summary = {
        "dataset": name, "n_docs": n_items, "id_shape": list(sizes), "beams": args.beams, "input": args.input,
        "batch": args.batch, "backbone": args.backbone, "device": args.device,
        "threads": torch.get_num_threads(), "machine": platform.processor() or platform.machine(),
        "speedup": round(results["hf-generate"]["seconds"] / results["indexbench"]["seconds"], 2),
        "agreement_with_hf_generate": agreement("hf-generate"),
        "agreement_with_hf_generate_same_scores": agreement("hf-generate-same-scores"),
        **{m: {k: v for k, v in r.items() if k not in ("top1", "top")} for m, r in results.items()},
    }
    print(json.dumps(summary))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
