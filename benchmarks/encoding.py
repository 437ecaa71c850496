"""Encoding speed and quality: a plain loop over MiniLM against `TextEncoder` at each precision.

Issue #17's table. In one run, on the same SciFact abstracts (256 tokens at most):

* ``plain loop`` -- the model and tokenizer as a user would call them: batches of 64 in corpus
  order, each padded to its longest text, mean pooling, float32;
* ``TextEncoder`` at every precision asked for (``fp32``, ``int8``, ``bf16``): length-sorted
  batches, the precision's model.

Speed is docs/s over the first ``--docs`` abstracts (after one warm-up batch each), the median of
``--repeats`` rounds in which every row runs once in turn. With
``--ndcg`` every precision also encodes the whole corpus and the test claims and reports the
zero-shot dual encoder's ndcg@10 (exact inner-product search), against fp32's. Nothing is cached
or written outside benchmarks/out/.

    python benchmarks/encoding.py [--data-dir ../shared/data] [--docs 768] [--repeats 3] [--ndcg]
                                  [--precisions fp32,int8] [--threads N] [--device cpu]
                                  [--int8-keep-float REGEX ...] [--int8-per-channel]
                                  [--onnx fp32,int8]

The last three flags add experimental rows (not options of `TextEncoder` until one wins on
speed and quality): int8 with some linear layers left in float; int8 with one weight scale per
output channel; and ONNX Runtime (the model exported to ONNX, run by onnxruntime's CPU provider
with its graph optimisations; ``int8`` is onnxruntime's dynamic quantisation, per-channel
weights). ``--onnx`` needs ``pip install onnxruntime onnx``.
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


def int8_per_channel(encoder) -> None:
    """Make ``encoder`` an int8 encoder with per-output-channel weight scales (an experiment)."""
    from indexbench.encoders import int8_copy

    encoder.precision = "int8"
    encoder._inference_model = int8_copy(encoder.model, per_channel=True)


class OnnxRuntimeModel:
    """The encoder model run by onnxruntime, called as `TextEncoder.embed_ids` calls a model."""

    def __init__(self, path: Path, threads: int):
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        self.session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    def __call__(self, input_ids, attention_mask):
        import types

        import torch

        hidden = self.session.run(None, {"input_ids": input_ids.cpu().numpy(),
                                         "attention_mask": attention_mask.cpu().numpy()})[0]
        return types.SimpleNamespace(last_hidden_state=torch.from_numpy(hidden))


def onnx_model(encoder, precision: str, folder: Path) -> OnnxRuntimeModel:
    """Export ``encoder.model`` to ONNX under ``folder`` (once) and load it at ``precision``
    ("fp32", or "int8": onnxruntime dynamic quantisation with per-channel int8 weights)."""
    import warnings

    import torch

    float_path = folder / "encoder.onnx"
    if not float_path.exists():

        class LastHidden(torch.nn.Module):
            def __init__(self, model):
                super().__init__()
                self.model = model

            def forward(self, input_ids, attention_mask):
                return self.model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state

        example = encoder.collate(encoder.tokenize(["an example", "a longer example text"]))
        axes = {0: "batch", 1: "tokens"}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the tracer's notes on constant Python values
            torch.onnx.export(LastHidden(encoder.model.eval()), example, str(float_path), dynamo=False,
                              input_names=["input_ids", "attention_mask"], output_names=["hidden"],
                              dynamic_axes={"input_ids": axes, "attention_mask": axes, "hidden": axes},
                              opset_version=17)
    path = float_path
    if precision == "int8":
        import onnx
        from onnxruntime.quantization import QuantType, quantize_dynamic

        path = folder / "encoder-int8.onnx"
        if not path.exists():
            quantize_dynamic(str(float_path), str(path), weight_type=QuantType.QInt8, per_channel=True,
                             extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})
    elif precision != "fp32":
        raise SystemExit(f"--onnx: unknown precision {precision!r} (fp32 or int8)")
    return OnnxRuntimeModel(path, torch.get_num_threads())


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
    parser.add_argument("--repeats", type=int, default=3, help="speed rounds; the median is reported")
    parser.add_argument("--precisions", default="fp32,int8")
    parser.add_argument("--ndcg", action="store_true", help="also encode the whole corpus per precision")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--int8-keep-float", action="append", default=[], metavar="REGEX",
                        help="an extra int8 row whose linear layers matching REGEX stay float (repeatable)")
    parser.add_argument("--int8-per-channel", action="store_true",
                        help="an extra int8 row with one weight scale per output channel")
    parser.add_argument("--onnx", default="", help="extra ONNX Runtime rows: fp32, int8 or fp32,int8")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    dataset = load_beir(args.data_dir / "scifact", "scifact")
    texts = dataset.corpus.texts[: args.docs]
    encoder = load_minilm(args.device)
    test = {q: d for q, d in dataset.qrels["test"].items() if any(r > 0 for r in d.values())}
    query_ids = sorted(test)

    def plain(t):
        return plain_loop(encoder, t, args.max_length)

    def with_encoder(t):
        return encoder.encode(t, max_length=args.max_length)

    variants = ([("plain loop (fp32, corpus order)", lambda: None, plain)]
                + [(f"TextEncoder {p}", lambda p=p: setattr(encoder, "precision", p), with_encoder)
                   for p in args.precisions.split(",") if p]
                + [(f"TextEncoder int8 (float: {k})", lambda k=k: int8_keeping_float(encoder, k), with_encoder)
                   for k in args.int8_keep_float])
    if args.int8_per_channel:
        variants.append(("TextEncoder int8 (per-channel weights)", lambda: int8_per_channel(encoder), with_encoder))
    onnx_folder = Path("benchmarks/out/onnx")
    onnx_folder.mkdir(parents=True, exist_ok=True)
    for p in filter(None, args.onnx.split(",")):

        def use_onnx(p=p):
            # "int8" only so that `TextEncoder` runs the model it is handed, without autocast.
            encoder.precision = "int8"
            encoder._inference_model = onnx_model(encoder, p, onnx_folder)

        variants.append((f"ONNX Runtime {p}" + (" (per-channel weights)" if p == "int8" else ""), use_onnx,
                         with_encoder))
    # Speed: ``--repeats`` rounds, every variant once a round in turn, the median kept -- one
    # pass each swung by up to a quarter between runs on this VM, enough to move a ratio across 2.
    speeds: dict[str, list[float]] = {label: [] for label, _, _ in variants}
    embeddings: dict[str, np.ndarray] = {}
    for _ in range(args.repeats):
        for label, prepare, encode in variants:
            prepare()
            speed, emb = docs_per_s(encode, texts)
            speeds[label].append(speed)
            embeddings.setdefault(label, emb)
    reference = embeddings[variants[0][0]]
    rows = []
    for label, prepare, _ in variants:
        row = {"method": label, "docs_per_s": float(np.median(speeds[label])), "docs_per_s_each": speeds[label]}
        if label != variants[0][0]:
            row["mean_cosine_to_plain_loop"] = float(np.mean(np.sum(embeddings[label] * reference, axis=1)))
            if args.ndcg:
                prepare()
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
