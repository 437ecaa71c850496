"""The trivial-baseline rows behind LMIndexer's AMI gap (issue #12): how well does k-means of
each *input* an indexer could start from carry the categories, with no training at all?

LMIndexer's first position starts as codebook@1, spherical k-means of the centred h¹ of the
frozen backbone (``minilm-encdec``: MiniLM's encoder, a fresh 2-layer decoder whose
cross-attention starts as mean pooling) over ``index_max_length`` = 64 tokens. The two-stage
indexers cluster MiniLM's sentence embeddings of 256 tokens. Every row here clusters one input
at the same K with the same seed, and scores the first-position AMI exactly as the id-quality
task does, so the rows can be read beside the trained indexers':

* the input: decoder h¹ of the frozen backbone, or MiniLM's mean-pooled sentence embedding;
* the tokens read: 64 (LMIndexer's default) or 256 (the two-stage indexers');
* the clustering: codebook@1's (centred, normalised, spherical) or hc's (Euclidean on the raw
  embeddings; the 256-token MiniLM row of it is hc's first level).

    python benchmarks/lmindexer_inputs.py [DATA] [DATASET]      (amazon-scientific by default; any registered dataset)

Writes a Markdown table to stdout. Nothing is cached or stored.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
LENGTHS = (64, 256)


def first_position_ami(docs, codes: np.ndarray) -> dict[str, float]:
    """ami_l2 / ami_l3 of one code per item, as the id-quality task scores the first position."""
    from indexbench.metrics import ami

    out = {}
    for level in (2, 3):
        rows = [i for i, d in enumerate(docs) if len(d.categories) >= level]
        out[f"l{level}"] = ami([tuple(docs[i].categories[:level]) for i in rows], codes[rows].tolist())
    return out


def codebook_clustering(features: np.ndarray, k: int) -> np.ndarray:
    """codebook@1's k-means: centred, normalised, spherical (LMIndexer's ``_codebook``)."""
    from indexbench.kmeans import kmeans

    centred = features - features.mean(axis=0, keepdims=True)
    unit = centred / np.maximum(np.linalg.norm(centred, axis=1, keepdims=True), 1e-12)
    return kmeans(unit.astype(np.float32), k, seed=0, spherical=True)[1]


def hc_clustering(features: np.ndarray, k: int) -> np.ndarray:
    """hc's first level: Euclidean k-means of the raw embeddings (hc's defaults)."""
    from indexbench.kmeans import kmeans

    return kmeans(features.astype(np.float32), k, seed=0)[1]


def main() -> None:
    from indexbench.datasets import load_dataset
    from indexbench.encoders import load_minilm
    from indexbench.generative.backbones import load_backbone
    from indexbench.generative.id_init import decoder_features
    from indexbench.id_indexers import default_id_shape
    from indexbench.registry import get_registry

    data = Path(sys.argv[1] if len(sys.argv) > 1 else ROOT.parent / "shared" / "data")
    name = sys.argv[2] if len(sys.argv) > 2 else "amazon-scientific"
    corpus = load_dataset(get_registry().dataset(name), data).corpus  # any registered dataset with categories
    docs = list(corpus)
    t, k = default_id_shape(len(docs))
    backbone = load_backbone("minilm-encdec", seed=0)
    backbone.add_id_tokens((k,) * t)
    minilm = load_minilm()
    rows = []
    for length in LENGTHS:
        start = time.perf_counter()
        tokens = backbone.text.tokenize(corpus.texts, max_length=length)
        h1, _ = decoder_features(backbone, tokens, np.zeros((len(tokens), 0), dtype=np.int64), batch_size=32)
        h1_s = time.perf_counter() - start
        start = time.perf_counter()
        emb = minilm.encode(corpus.texts, max_length=length, batch_size=32)
        emb_s = time.perf_counter() - start
        for label, features, seconds in (("decoder h¹ (frozen minilm-encdec)", h1.numpy(), h1_s),
                                         ("MiniLM sentence embedding", emb, emb_s)):
            for clustering, fn in (("codebook@1's", codebook_clustering), ("hc's", hc_clustering)):
                score = first_position_ami(docs, fn(features, k))
                rows.append((label, length, clustering, score["l2"], score["l3"], seconds))
                print(f"{label}, {length} tokens, {clustering}: {score}", file=sys.stderr, flush=True)
    print(f"{name}: {len(docs)} items, K = {k}\n")
    print("| input | tokens | k-means | ami_l2 | ami_l3 | encoding s |")
    print("|---|---:|---|---:|---:|---:|")
    for label, length, clustering, l2, l3, seconds in rows:
        print(f"| {label} | {length} | {clustering} | {l2:.4f} | {l3:.4f} | {seconds:.0f} |")


if __name__ == "__main__":
    main()
