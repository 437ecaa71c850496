"""SEAL without training, across copy biases and both text-head starts: how much of the ranking
the query's own words give once the decoder is told to copy them (issue #15, session 14).

    python benchmarks/seal_copy_sweep.py --dataset amazon-scientific --task product-search \
        --text-head lexical --copy-bias 0,2,4,8 [--data-dir ../shared/data]

One JSON line a bias: the task's metrics over all test queries. The text head is fitted once
(``lexical``) or left as built (``none``); every row then decodes the same queries with
``seal:train=false:copy_bias=B`` -- the same retriever the CLI builds, without the run's store.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def main() -> None:
    import torch
    from indexbench_seal import SealConfig
    from indexbench_seal._retriever import SealRetriever, document_tokens

    from indexbench.generative.backbones import load_backbone
    from indexbench.generative.text_head import lexical_text_head
    from indexbench.metrics import ranking_metrics
    from indexbench.ngram_index import CorpusIndex
    from indexbench.registry import get_registry

    parser = argparse.ArgumentParser()
    parser.add_argument("--dataset", default="sample")
    parser.add_argument("--task", default="product-search")
    parser.add_argument("--data-dir", type=Path, default=Path("../shared/data"))
    parser.add_argument("--text-head", choices=["lexical", "none"], default="lexical")
    parser.add_argument("--copy-bias", default="0,2,4,8")
    args = parser.parse_args()

    registry = get_registry()
    entry = registry.dataset(args.dataset)
    dataset = entry.load(None if entry.builtin else args.data_dir / args.dataset)
    task = registry.task(args.task)
    problem, test = task.split(dataset)
    config = SealConfig(train=False)
    backbone = load_backbone(config.backbone)
    head = {"applied": False}
    if args.text_head == "lexical":
        head = lexical_text_head(backbone, backbone.text.tokenize([d.text for d in problem.corpus],
                                                                  max_length=config.doc_max_length))
    index = CorpusIndex.build(document_tokens(backbone, problem, config.index_max_length))
    qids = sorted(test.queries)
    for bias in [float(b) for b in args.copy_bias.split(",")]:
        retriever = SealRetriever(backbone, index, problem.corpus.ids,
                                  SealConfig(train=False, copy_bias=bias), problem.query_truncation)
        with torch.inference_mode():
            found = retriever.search([test.queries[q] for q in qids], 100)
        metrics = ranking_metrics(dict(zip(qids, found)), {q: test.qrels.get(q, {}) for q in qids}, task.metrics)
        print(json.dumps({"dataset": args.dataset, "task": args.task, "text_head": args.text_head,
                          "head_r2": head.get("held_out_r2"), "copy_bias": bias,
                          **{k: round(v, 4) for k, v in metrics.items()}}), flush=True)


if __name__ == "__main__":
    main()
