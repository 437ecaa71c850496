"""The generative engine's training step on the amazon-scientific product-search cell: where the
time goes, and what each speed-up changes (issue #17, point 2).

The cell's own examples (product-search queries and the items' texts as indexing pairs, inputs of
64 tokens at most) with the IDs of ``random-ids`` in the default shape (IDs cost nothing to make,
and a step's cost does not depend on which IDs they are), trained with `train_seq2seq` from the
same seed for ``--steps`` steps, once per variant:

* ``before`` -- the engine before issue #17: per-tensor AdamW, every batch padded to its longest
  input;
* ``fused-adamw`` -- only the optimiser fused (`indexbench.optim.adamw`);
* ``length-split`` -- only a mixed batch run as two padded sub-batches (`length_groups`);
* ``now`` -- the engine as it is (both);
* ``bf16-autocast`` -- the engine as it is, its forward passes under bf16 autocast on the CPU
  (what CUDA does already; fast only where the CPU has AMX bf16 tiles). Its loss curve is not
  the float one: the table states the difference.

Prints seconds per step (the first 3 steps excluded: allocation warm-up) and the largest
difference of a step's loss from the baseline's, and with ``--profile`` the top operators of
the ``before`` steps (torch.profiler). Run it on an otherwise idle machine:

    python benchmarks/training_step.py [--data-dir ../shared/data] [--steps 50] [--profile]
"""

from __future__ import annotations

import argparse
import json
import time
from contextlib import contextmanager
from pathlib import Path


def cell_examples(data_dir: Path, backbone_name: str):
    from indexbench_random_ids import RandomIdsConfig, RandomIdsIndexer

    from indexbench.generative.backbones import load_backbone
    from indexbench.generative.engine import GenerativeRetrieval
    from indexbench.protocols import RunContext
    from indexbench.registry import get_registry

    registry = get_registry()
    dataset = registry.dataset("amazon-scientific").load(data_dir / "amazon-scientific")
    problem, _ = registry.task("product-search").split(dataset)
    indexer = RandomIdsIndexer(RandomIdsConfig(backbone=backbone_name))
    ids = indexer.assign_ids(problem.corpus, RunContext())
    engine = GenerativeRetrieval(indexer)
    backbone = load_backbone(backbone_name)
    backbone.add_id_tokens(ids.codebook_sizes)
    return ids, engine._examples(problem, backbone, ids), indexer.config


VARIANTS = ("before", "fused-adamw", "length-split", "now", "bf16-autocast")


@contextmanager
def variant_of_engine(variant: str):
    """The engine as it was before issue #17, in the parts ``variant`` does not switch on."""
    import torch

    from indexbench.generative import training
    from indexbench.generative.backbones import Seq2SeqBackbone

    real_adamw, real_groups, real_autocast = torch.optim.AdamW, training.length_groups, Seq2SeqBackbone.autocast
    if variant == "bf16-autocast":  # the engine as it is, its forward passes under CPU bf16 autocast
        Seq2SeqBackbone.autocast = lambda self: torch.autocast("cpu", dtype=torch.bfloat16)
    if variant in ("before", "length-split"):
        torch.optim.AdamW = lambda *a, fused=None, **k: real_adamw(*a, **k)
    if variant in ("before", "fused-adamw"):
        training.length_groups = lambda lengths: [list(range(len(lengths)))]
    try:
        yield
    finally:
        torch.optim.AdamW, training.length_groups, Seq2SeqBackbone.autocast = real_adamw, real_groups, real_autocast


def without_dropout(model) -> None:
    """Every dropout of ``model`` off: the variants' losses must then agree to float rounding
    (with dropout on, a differently shaped batch draws different masks)."""
    import torch

    for module in model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0
        for name in ("dropout_prob", "attention_dropout", "dropout"):
            if isinstance(getattr(module, name, None), float):
                setattr(module, name, 0.0)


def train(variant: str, ids, examples, options, steps: int, backbone_name: str, profile: bool = False,
          dropout: bool = True, device: str = "cpu") -> dict:
    import dataclasses

    from indexbench.generative.backbones import load_backbone
    from indexbench.generative.training import id_batch_loss

    backbone = load_backbone(backbone_name, device=device)
    backbone.add_id_tokens(ids.codebook_sizes)
    if not dropout:
        without_dropout(backbone.model)
    options = dataclasses.replace(options, max_steps=steps)
    losses, stamps = [], []

    def recorded(*args):
        loss = id_batch_loss(*args)
        losses.append(float(loss.detach()))  # a device sync too: the stamps time whole steps
        stamps.append(time.perf_counter())
        return loss

    with variant_of_engine(variant):
        _run(backbone, examples, options, recorded, profile)
    per_step = (stamps[-1] - stamps[3]) / (len(stamps) - 4)
    return {"variant": variant, "steps": len(losses), "s_per_step": per_step, "losses": losses}


def _run(backbone, examples, options, batch_loss, profile: bool) -> None:
    from indexbench.generative.training import train_seq2seq
    from indexbench.protocols import RunContext

    if profile:
        from torch.profiler import ProfilerActivity
        from torch.profiler import profile as torch_profile

        with torch_profile(activities=[ProfilerActivity.CPU]) as prof:
            train_seq2seq(backbone, examples, options, RunContext(), batch_loss=batch_loss)
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=25))
    else:
        train_seq2seq(backbone, examples, options, RunContext(), batch_loss=batch_loss)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=Path("../shared/data"))
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--backbone", default="minilm-encdec")
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--no-dropout", action="store_true", help="switch dropout off in every variant")
    args = parser.parse_args()
    ids, examples, options = cell_examples(args.data_dir, args.backbone)
    print(f"{len(examples):,} examples, ID shape {list(ids.codebook_sizes)}, batch {options.batch_size}")
    rows = []
    for variant in args.variants.split(","):
        rows.append(train(variant, ids, examples, options, args.steps, args.backbone,
                          profile=args.profile and variant == "before", dropout=not args.no_dropout, device=args.device))
    base = rows[0]
    for row in rows:
        diffs = [a - b for a, b in zip(row["losses"], base["losses"])]
        print(json.dumps({"variant": row["variant"], "s_per_step": round(row["s_per_step"], 3),
                          "speed_up": round(base["s_per_step"] / row["s_per_step"], 2),
                          "max_abs_loss_difference": max(abs(d) for d in diffs),
                          "mean_loss_difference": sum(diffs) / len(diffs),
                          "mean_loss": sum(row["losses"]) / len(row["losses"])}))
    out = Path("benchmarks/out")
    out.mkdir(parents=True, exist_ok=True)
    (out / "training_step.json").write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
