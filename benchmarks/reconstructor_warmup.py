"""The controlled experiment behind LMIndexer's reconstructor (issue #12): the reconstructor
warm-up alone, on amazon-scientific, scored on held-out items beside the unigram baseline.

Every variant starts from the same frozen minilm-encdec indexer with the k-means codebook of the
first position (what ``codebook@1`` does) and trains only the reconstructor, on every item except
a fixed held-out set, for the same number of steps. The held-out items are scored with fixed
hints: reconstruction loss, the unigram loss on the same tokens, top-1 and macro-F1. Then the
warmed-up reconstructor is fed the train@1 input (the code rows the indexer picks) at the train@1
hint ratio, still without further training: what train@1 starts from.

    python benchmarks/reconstructor_warmup.py [DATA] [STEPS] [VARIANT ...]

Variants are ``name:key=value:...`` over LMIndexer's options (e.g. ``rel:query_positions=relative``),
plus ``bias_init=random`` (T5's near-zero start of the relative bias instead of the locality
one) and ``output_bias=zero`` (instead of the corpus unigram log-probabilities); without any, the
study in benchmarks/LOG.md is run. Writes a Markdown table to stdout.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "plugins"))

DEFAULT_VARIANTS = [
    "relative (default; hints 0.5)",
    "relative, all but the target (authors' warm-up):warmup_hint_ratio=1",
    "relative, T5's near-zero bias start:bias_init=random",
    "absolute positions:query_positions=absolute",
    "relative, neither start (T5 bias, zero output bias):bias_init=random:output_bias=zero",
]


def parse(variant: str) -> tuple[str, dict[str, str]]:
    name, *pairs = variant.split(":")
    return name, dict(p.split("=", 1) for p in pairs)


def main() -> None:
    from indexbench_lmindexer._algorithm import Phase, SelfSupervisedTraining

    from indexbench.datasets.amazon import load_lcrec
    from indexbench.generative.backbones import load_backbone
    from indexbench.protocols import RunContext
    from indexbench.registry import get_registry
    from indexbench.specs import build_config

    data = Path(sys.argv[1] if len(sys.argv) > 1 else ROOT.parent / "shared" / "data")
    steps = int(sys.argv[2]) if len(sys.argv) > 2 else 272
    variants = sys.argv[3:] or DEFAULT_VARIANTS
    corpus = load_lcrec(data / "amazon-scientific", name="amazon-scientific", prefix="Scientific").corpus
    entry = get_registry().indexer("lmindexer")
    rows = []
    for variant in variants:
        name, options = parse(variant)
        random_bias = options.pop("bias_init", "") == "random"  # T5's start instead of the locality one
        zero_output_bias = options.pop("output_bias", "") == "zero"  # instead of the corpus unigram
        config = build_config(entry.config_class, options, "lmindexer")
        backbone = load_backbone(config.backbone, seed=0)
        backbone.add_id_tokens((256,) * 3)
        tokens = backbone.text.tokenize(corpus.texts, max_length=config.index_max_length)
        ctx = RunContext(seed=0)
        training = SelfSupervisedTraining(backbone, tokens, config, 2, ctx)
        if random_bias:
            with torch.random.fork_rng():
                torch.manual_seed(0)
                torch.nn.init.normal_(training.reconstructor.relative_bias.weight, std=0.02)
        if zero_output_bias:
            with torch.no_grad():
                training.reconstructor.out_bias.zero_()
        held_out = np.sort(np.random.default_rng(123).choice(len(tokens), 256, replace=False))
        training.sample = held_out
        keep = np.setdiff1d(np.arange(len(tokens)), held_out)
        plan = training._plan

        def train_only(phase, rng, plan=plan, keep=keep):  # never a held-out item in a batch
            return [keep[b % len(keep)] for b in plan(phase, rng)]

        training._plan = train_only
        training._codebook(Phase("codebook@1", "codebook", 0))
        warm = Phase("reconstructor-warmup", "reconstructor-warmup", -1, steps)
        before = training.diagnose(warm)
        started = time.perf_counter()
        training._train(warm, 0)
        seconds = time.perf_counter() - started
        after = training.diagnose(warm)
        # train@1's input without training it: the picked code rows, train@1's hint ratio
        training.state.anchor = None
        fed = training.diagnose(Phase("train@1", "train", 0, 0))
        rows.append((name, before, after, fed, seconds / max(steps, 1)))
        print(f"# {name}: {after}", file=sys.stderr)
    print(f"reconstructor warm-up alone, {steps} steps of batch 32, 256 held-out amazon-scientific items\n")
    print("| variant | unigram | loss before | loss after | nats below unigram | top-1 | macro-F1 "
          "| fed train@1's input | s/step |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name, before, after, fed, per_step in rows:
        print(f"| {name} | {after['unigram_loss']:.2f} | {before['reconstruction_loss']:.2f} "
              f"| {after['reconstruction_loss']:.2f} | {after['nats_below_unigram']:.2f} | {after['top1']:.3f} "
              f"| {after['macro_f1']:.4f} | {fed['reconstruction_loss']:.2f} ({fed['nats_below_unigram']:+.2f}) "
              f"| {per_step:.2f} |")


if __name__ == "__main__":
    main()
