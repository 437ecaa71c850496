"""How each retriever's cost grows with the corpus: 1k to 100k documents (issue #17, point 3).

For corpora of ``--sizes`` documents, on the 2-core CPU unless ``--device cuda``:

* ``bm25`` -- the plugin's retriever (bm25s): index build, index size, queries/s.
* ``dense-flat`` / ``dense-ivf`` -- the dual-encoder plugin's faiss indexes (exact, and the
  seeded inverted file of ``index=ivf``): build, size, queries/s over query embeddings.
  Encoding the corpus dominates a dense index's build and grows linearly; it is measured once
  (docs/s of MiniLM on the first 1,000 texts, ``encoding_s`` = n / that rate) rather than run
  on 100k texts (about 90 min on this CPU). The embeddings indexed beyond the 1,000 encoded
  texts are those rows plus seeded Gaussian noise (σ 0.05), renormalised: index costs depend on
  the rows' geometry, not on which text they came from.
* ``id-trie`` -- the generative engine's ID trie over random IDs of the corpus's default shape
  (`default_id_shape`) and the constrained beam search on the untrained default backbone (speed
  does not depend on the weights): trie build, its tensors' size, queries/s.
* ``seal-index`` -- SEAL's suffix-array index of the corpus's token stream
  (`indexbench.ngram_index.CorpusIndex`) and a SEAL query (n-gram decoding on the untrained
  default backbone, then evidence scoring over the corpus): build (tokenisation apart), size,
  queries/s.

Texts: amazon-scientific's items and SciFact's abstracts (9,527 real texts); beyond them the real
texts repeat with their words shuffled by a seeded generator (so no two documents are identical
and n-gram statistics stay realistic). Queries: SciFact test claims and amazon product-search
queries, the same for every size. Memory: ``size_mb`` is the built index (faiss's serialised
size, bm25s's arrays, the trie's tensors, the suffix array and token stream); ``peak_mb`` is the
build's peak Python/numpy allocation (tracemalloc; faiss's C++ allocations are not seen).

    python benchmarks/scaling.py [--sizes 1000,3000,10000,30000,100000] [--data-dir ../shared/data]

Writes benchmarks/out/scaling.json, benchmarks/scaling.png and prints a Markdown table with the
fitted growth exponent b of build time ~ n^b and of per-query time ~ n^b.
"""

from __future__ import annotations

import argparse
import json
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import numpy as np

METHODS = ("bm25", "dense-flat", "dense-ivf", "id-trie", "seal-index")


def corpus_texts(data_dir: Path, n: int, seed: int = 0) -> list[str]:
    from indexbench.datasets.amazon import load_lcrec
    from indexbench.datasets.beir import load_beir

    real = [d.text for d in load_lcrec(data_dir / "amazon-scientific").corpus]
    real += [d.text for d in load_beir(data_dir / "scifact", "scifact").corpus]
    texts = real[:n]
    rng = np.random.default_rng(seed)
    while len(texts) < n:
        words = real[len(texts) % len(real)].split()
        texts.append(" ".join(words[i] for i in rng.permutation(len(words))))
    return texts


def test_queries(data_dir: Path, count: int) -> list[str]:
    from indexbench.datasets.amazon import load_lcrec
    from indexbench.datasets.beir import load_beir
    from indexbench.tasks.product_search import build_queries

    scifact = load_beir(data_dir / "scifact", "scifact")
    claims = [scifact.queries[q] for q in sorted(scifact.qrels["test"])]
    products = sorted(build_queries(load_lcrec(data_dir / "amazon-scientific").corpus))
    mixed = [q for pair in zip(claims, products) for q in pair]
    return (mixed * (count // len(mixed) + 1))[:count]


def measured(build: Callable[[], object]) -> tuple[object, float, float]:
    """Run ``build``: its result, seconds, and peak traced allocation in MB."""
    tracemalloc.start()
    started = time.perf_counter()
    result = build()
    seconds = time.perf_counter() - started
    peak = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    return result, seconds, peak


def queries_per_s(search: Callable[[list[str]], object], queries: list[str]) -> float:
    search(queries[:2])  # warm-up
    started = time.perf_counter()
    search(queries)
    return len(queries) / (time.perf_counter() - started)


class Bench:
    def __init__(self, args):
        import torch

        from indexbench.encoders import load_minilm
        from indexbench.generative.backbones import load_backbone

        self.args = args
        self.queries = test_queries(args.data_dir, args.queries)
        self.encoder = load_minilm(args.device)
        self.backbone = load_backbone(args.backbone, device=args.device)
        self.torch = torch
        first = corpus_texts(args.data_dir, min(1000, max(args.sizes)))
        started = time.perf_counter()
        self.base_embeddings = self.encoder.encode(first, max_length=256)
        self.encode_docs_per_s = len(first) / (time.perf_counter() - started)
        self.query_embeddings = self.encoder.encode(self.queries, max_length=64)

    def embeddings(self, n: int) -> np.ndarray:
        base = self.base_embeddings
        rows = base[np.arange(n) % len(base)].copy()
        noisy = np.arange(n) >= len(base)
        rng = np.random.default_rng(1)
        rows[noisy] += 0.05 * rng.standard_normal((int(noisy.sum()), base.shape[1])).astype(np.float32)
        return rows / np.linalg.norm(rows, axis=1, keepdims=True)

    def run(self, method: str, texts: list[str]) -> dict:
        return getattr(self, method.replace("-", "_"))(texts)

    def bm25(self, texts):
        from indexbench_bm25 import BM25Indexer

        from indexbench.data import Corpus, Document
        from indexbench.protocols import QuerySet, RetrievalProblem, RunContext

        corpus = Corpus(Document(id=str(i), text=t) for i, t in enumerate(texts))
        problem = RetrievalProblem(task="scaling", corpus=corpus, train_pairs=[],
                                   dev=QuerySet(queries={}, qrels={}))
        retriever, seconds, peak = measured(lambda: BM25Indexer().build_retriever(problem, RunContext()))
        model = retriever._model
        size = sum(getattr(a, "nbytes", 0) for a in model.scores.values()) if isinstance(model.scores, dict) else 0
        return {"build_s": seconds, "peak_mb": peak, "size_mb": size / 2**20,
                "queries_per_s": queries_per_s(lambda q: retriever.search(q, 100), self.queries)}

    def _dense(self, texts, kind):
        import faiss
        from indexbench_dual_encoder._impl import dense_index

        emb = self.embeddings(len(texts))
        index, seconds, peak = measured(lambda: dense_index(emb, kind, seed=0))
        size = len(faiss.serialize_index(index))
        return {"build_s": seconds, "peak_mb": peak, "size_mb": size / 2**20,
                "encoding_s": len(texts) / self.encode_docs_per_s,
                "queries_per_s": queries_per_s(lambda q: index.search(self.query_embeddings[: len(q)], 100),
                                               self.queries)}

    def dense_flat(self, texts):
        return self._dense(texts, "flat")

    def dense_ivf(self, texts):
        return self._dense(texts, "ivf")

    def id_trie(self, texts):
        from indexbench.generative.backbones import load_backbone
        from indexbench.generative.decoding import search_batched
        from indexbench.generative.id_tokens import IdTrie
        from indexbench.id_indexers import append_dedup_position, default_id_shape

        length, k = default_id_shape(len(texts))
        rng = np.random.default_rng(0)  # random prefixes, then the de-duplicating position every ID indexer has
        prefixes = {str(i): tuple(int(c) for c in row)
                    for i, row in enumerate(rng.integers(0, k, size=(len(texts), length - 1)))}
        ids, _ = append_dedup_position(prefixes, k, (k,) * (length - 1))
        codes, sizes = np.array(list(ids.ids.values())), tuple(ids.codebook_sizes)
        trie, seconds, peak = measured(lambda: IdTrie(codes, sizes))
        size = sum(t.nbytes for t in _tensors(trie.tensors("cpu")))
        backbone = load_backbone(self.args.backbone, device=self.args.device)
        backbone.add_id_tokens(sizes)
        torch = self.torch

        def search(queries):
            tokens = backbone.text.tokenize(queries, max_length=64)
            with torch.inference_mode(), backbone.autocast():
                return search_batched(backbone, trie, tokens, self.args.beams, 64)

        return {"build_s": seconds, "peak_mb": peak, "size_mb": size / 2**20, "id_shape": list(sizes),
                "queries_per_s": queries_per_s(search, self.queries[: self.args.generative_queries])}

    def seal_index(self, texts):
        from indexbench_seal import SealConfig
        from indexbench_seal._retriever import SealRetriever

        from indexbench.ngram_index import CorpusIndex

        started = time.perf_counter()
        docs = self.backbone.text.tokenize_text_only(texts, max_length=512)
        tokenize_s = time.perf_counter() - started
        index, seconds, peak = measured(lambda: CorpusIndex.build(docs))
        retriever = SealRetriever(self.backbone, index, [str(i) for i in range(len(texts))], SealConfig())
        return {"build_s": seconds, "tokenize_s": tokenize_s, "peak_mb": peak, "size_mb": index.nbytes / 2**20,
                "tokens": index.n_tokens,
                "queries_per_s": queries_per_s(lambda q: retriever.search(q, 100),
                                               self.queries[: self.args.generative_queries])}


def _tensors(value):
    import torch

    if isinstance(value, torch.Tensor):
        yield value
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _tensors(item)
    elif isinstance(value, dict):
        for item in value.values():
            yield from _tensors(item)


def exponent(sizes: list[int], values: list[float]) -> float:
    """b of values ~ n^b, least squares in log-log."""
    return float(np.polyfit(np.log(sizes), np.log(values), 1)[0])


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (build, query) = plt.subplots(1, 2, figsize=(11, 4.2))
    for method, rows in results.items():
        n = [r["n"] for r in rows]
        build.plot(n, [r["build_s"] + r.get("encoding_s", 0) + r.get("tokenize_s", 0) for r in rows],
                   marker="o", label=method)
        query.plot(n, [1000 / r["queries_per_s"] for r in rows], marker="o", label=method)
    build.set(xscale="log", yscale="log", xlabel="documents", ylabel="build seconds (incl. encoding / tokenising)",
              title="Index build")
    query.set(xscale="log", yscale="log", xlabel="documents", ylabel="ms per query", title="Query time")
    build.legend(fontsize=8)
    for ax in (build, query):
        ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,3000,10000,30000,100000")
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--data-dir", type=Path, default=Path("../shared/data"))
    parser.add_argument("--queries", type=int, default=600, help="queries for bm25 and the dense indexes")
    parser.add_argument("--generative-queries", type=int, default=64, help="queries for the model-driven searches")
    parser.add_argument("--beams", type=int, default=20)
    parser.add_argument("--backbone", default="minilm-encdec")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    args.sizes = [int(s) for s in args.sizes.split(",")]
    methods = args.methods.split(",")
    bench = Bench(args)
    results: dict[str, list[dict]] = {m: [] for m in methods}
    warm_up = corpus_texts(args.data_dir, 100)
    for method in methods:  # first-call costs (imports, stemmer, kernels) are nobody's build time
        bench.run(method, warm_up)
    for n in args.sizes:
        texts = corpus_texts(args.data_dir, n)
        for method in methods:
            row = {"n": n, **bench.run(method, texts)}
            results[method].append(row)
            print(json.dumps({"method": method, **row}), flush=True)
    out = Path("benchmarks/out")
    out.mkdir(parents=True, exist_ok=True)
    (out / "scaling.json").write_text(json.dumps({"encode_docs_per_s": bench.encode_docs_per_s,
                                                  "results": results}, indent=1))
    plot(results, Path("benchmarks/scaling.png"))
    print(f"\nMiniLM encoding: {bench.encode_docs_per_s:.1f} docs/s (dense build times below exclude it)\n")
    header = " | ".join(f"{n:,}" for n in args.sizes)
    print(f"| method | quantity | {header} | growth exponent |")
    print("|---|---|" + "---:|" * (len(args.sizes) + 1))
    for method, rows in results.items():
        n = [r["n"] for r in rows]
        for label, values in (("build s", [r["build_s"] for r in rows]),
                              ("index MB", [r["size_mb"] for r in rows]),
                              ("ms / query", [1000 / r["queries_per_s"] for r in rows])):
            fit = exponent(n, values) if len(n) > 1 and min(values) > 0 else float("nan")
            cells = " | ".join(f"{v:.3g}" for v in values)
            print(f"| {method} | {label} | {cells} | {fit:.2f} |")


if __name__ == "__main__":
    main()
