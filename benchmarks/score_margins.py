"""How close the gate's deterministic dense cell is to changing on another machine (issue #27).

The CI grid's zero-shot dual encoder at fp32 gives the same numbers at every seed, so the gate
holds it to an absolute tolerance of 0.001: one swapped pair of documents in one query's top 10
fails it. Another CPU computes every score through other float kernels (MKL's, oneDNN's, torch's
own), which move a score by a few 1e-7. This script measures both sides of that: for each of the
sample's retrieval tasks, the smallest gap between adjacent scores in any query's top 11 (what a
score must move by to reorder the ranks an @10 metric reads), next to the largest score change
that each other float path available on this CPU gives against the native one. Their ratio is
the cell's margin: above 1 no such path can reorder a ranking.

    python benchmarks/score_margins.py [--spec SPEC] [--paths mkl-compatible,aten-default,qemu-haswell]

Each path runs in a child process (the variables are read when torch starts). Scores are the
inner products of the encoder's unit-length embeddings, as the cell's exact faiss index ranks
them. Nothing is cached or written outside a temporary folder.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from gate_check import QEMU_CPU, emulator, why_no_emulator  # this folder: the emulated CPU's runner

# Float paths this CPU can take, each one another machine's kind of arithmetic: MKL's
# instruction-set-independent GEMM, torch's kernels without SIMD, oneDNN capped at AVX2; and,
# not by default (about 100x slower), a whole Intel AVX2 CPU emulated by QEMU, on which MKL takes
# its Intel-only kernels (benchmarks/gate_check.py, the qemu-* variants).
PATHS = {
    "mkl-compatible": {"MKL_CBWR": "COMPATIBLE"},
    "aten-default": {"ATEN_CPU_CAPABILITY": "default"},
    "onednn-avx2": {"ONEDNN_MAX_CPU_ISA": "AVX2"},
    "qemu-haswell": {QEMU_CPU: "Haswell-v4"},
}
DEFAULT_PATHS = [name for name in PATHS if QEMU_CPU not in PATHS[name]]
TASKS = ("document-retrieval", "product-search", "recommendation")
DEPTH = 11  # the ranks an @10 metric reads, and the one just below them
DEFAULT_SPEC = "dual-encoder:precision=fp32"


def write_scores(spec: str, out: Path) -> None:
    """Every query's score against every document, per task, into ``out`` (.npz)."""
    import torch

    import indexbench

    torch.set_num_threads(2)  # as the CI grid pins
    cfg = indexbench.get_indexer(spec).config
    encoder = indexbench.get_encoder(cfg.encoder, device="cpu", precision=cfg.precision)
    dataset = indexbench.get_dataset("sample")
    scores = {}
    for name in TASKS:
        problem, queries = indexbench.get_task(name).split(dataset)
        docs = encoder.encode(problem.corpus.texts, max_length=cfg.doc_max_length, truncation="right",
                              batch_size=cfg.encode_batch_size)
        ids = sorted(queries.queries)
        q = encoder.encode([queries.queries[i] for i in ids], max_length=cfg.query_max_length,
                           truncation=problem.query_truncation, batch_size=cfg.encode_batch_size)
        scores[name] = np.asarray(q, np.float32) @ np.asarray(docs, np.float32).T
    np.savez(out, **scores)


def smallest_gaps(scores: np.ndarray) -> np.ndarray:
    """Per query, the smallest difference between adjacent scores among its top ``DEPTH``."""
    top = -np.sort(-scores, axis=1)[:, :DEPTH]
    return np.diff(-top, axis=1).min(axis=1)


def run_path(spec: str, env: dict[str, str], out: Path) -> dict[str, np.ndarray]:
    command = [*emulator(env), sys.executable, __file__, "--spec", spec, "--child", str(out)]
    done = subprocess.run(command, env={**os.environ, **env}, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"scoring under {env or 'the native path'} failed: {done.stderr.strip()[-2000:]}")
    with np.load(out) as data:
        return {name: data[name] for name in data.files}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--spec", default=DEFAULT_SPEC, help=f"the dual-encoder cell [default: {DEFAULT_SPEC}]")
    parser.add_argument("--paths", default=",".join(DEFAULT_PATHS),
                        help=f"comma-separated, of {', '.join(PATHS)} [default: {', '.join(DEFAULT_PATHS)}]")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        write_scores(args.spec, args.child)
        return 0
    names = [n for n in args.paths.split(",") if n]
    unknown = [n for n in names if n not in PATHS]
    if unknown:
        parser.error(f"unknown path {unknown[0]!r}; valid: {', '.join(PATHS)}")
    if any(QEMU_CPU in PATHS[n] for n in names) and (why := why_no_emulator()):
        parser.error(why)
    with tempfile.TemporaryDirectory(prefix="indexbench-margins-") as tmp:
        native = run_path(args.spec, {}, Path(tmp) / "native.npz")
        others = {n: run_path(args.spec, PATHS[n], Path(tmp) / f"{n}.npz") for n in names}
    print(f"{args.spec}, sample dataset; scores moved by each float path against the native one")
    print(f"{'task':<20} {'queries':>7} {'smallest top-11 gap':>20}  {'path':<16} {'largest change':>14} "
          f"{'margin':>7}  top-10 order")
    worst = float("inf")
    for task in TASKS:
        gap = float(smallest_gaps(native[task]).min())
        for name, scores in others.items():
            change = float(np.abs(scores[task] - native[task]).max())
            margin = gap / change if change else float("inf")
            worst = min(worst, margin)
            same = np.array_equal(np.argsort(-native[task], axis=1, kind="stable")[:, :10],
                                  np.argsort(-scores[task], axis=1, kind="stable")[:, :10])
            print(f"{task:<20} {len(native[task]):>7} {gap:>20.2e}  {name:<16} {change:>14.2e} {margin:>7.0f}  "
                  f"{'same' if same else 'CHANGED'}")
    print(f"smallest margin: {worst:.0f}x (below 1, a float path of this size can reorder a top-10 ranking)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
