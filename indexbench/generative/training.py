"""Seq2seq fine-tuning: input text → its document's semantic ID (or any target sequence).

One loop for every generative retriever (`train_seq2seq`): AdamW with warm-up and linear decay
(`indexbench.optim`), gradient clipping, bf16 autocast on CUDA, a Rich progress bar showing the
loss, and an optional check on the dev set after each epoch (at most ten times). What differs is
the loss of a batch: for ID indexers (`train_id_generation`) it is `decoding.id_losses`,
cross-entropy over each position's K codes, the same distribution the constrained search ranks
by; an n-gram retriever passes the text-token loss of its targets.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from typing import Any

from .. import distributed
from ..optim import adamw
from ..protocols import RunContext
from .backbones import Seq2SeqBackbone
from .decoding import id_losses
from .options import GenerativeOptions

Example = tuple[list[int], tuple[int, ...]]
"""(input token ids, target: ID codes, or target token ids)."""

BatchLoss = Callable[[Seq2SeqBackbone, list[list[int]], list[tuple[int, ...]]], Any]
"""(backbone, the batch's input token ids, its targets) → the scalar loss tensor."""


def train_id_generation(
    backbone: Seq2SeqBackbone,
    examples: Sequence[Example],
    options: GenerativeOptions,
    ctx: RunContext,
    *,
    dev_check: Callable[[], dict[str, float]] | None = None,
    description: str = "training the ID generator",
) -> dict[str, Any]:
    """Fine-tune ``backbone`` in place on (input → ID) ``examples``; return the training history."""
    return train_seq2seq(backbone, examples, options, ctx, batch_loss=id_batch_loss, dev_check=dev_check,
                         description=description)


def id_batch_loss(backbone: Seq2SeqBackbone, inputs: list[list[int]], targets: list[tuple[int, ...]]):
    """The mean over positions of each position's cross-entropy, averaged over the batch.

    A batch that mixes short inputs (queries) with long ones (documents as queries) is run as
    two padded sub-batches (`length_groups`) whose means are weighted by their sizes: the same
    loss, without the short inputs' padding to the longest one."""
    import torch

    total = None
    for rows in length_groups([len(x) for x in inputs]):
        input_ids, mask = backbone.text.collate([inputs[i] for i in rows], backbone.device)
        codes = torch.tensor([targets[i] for i in rows], dtype=torch.long, device=backbone.device)
        part = id_losses(backbone, input_ids, mask, codes).mean() * (len(rows) / len(inputs))
        total = part if total is None else total + part
    return total


MIN_PADDING_SAVED = 0.25
"""`length_groups` splits a batch only when that saves at least this share of its padded tokens
(a second, smaller forward pass has its own overhead)."""


def length_groups(lengths: list[int]) -> list[list[int]]:
    """Rows of a batch in one group, or in two (the shortest ones, the rest) when padding each
    group to its own longest input saves at least `MIN_PADDING_SAVED` of the padded tokens."""
    n = len(lengths)
    order = sorted(range(n), key=lambda i: (lengths[i], i))
    whole = n * max(lengths, default=0)
    best, split = whole, n
    for k in range(1, n):  # the first k (shortest) rows in one group, the others in another
        cost = k * lengths[order[k - 1]] + (n - k) * lengths[order[-1]]
        if cost < best:
            best, split = cost, k
    if whole == 0 or best > (1 - MIN_PADDING_SAVED) * whole:
        return [list(range(n))]
    return [sorted(order[:split]), sorted(order[split:])]


def train_seq2seq(
    backbone: Seq2SeqBackbone,
    examples: Sequence[Example],
    options: GenerativeOptions,
    ctx: RunContext,
    *,
    batch_loss: BatchLoss,
    dev_check: Callable[[], dict[str, float]] | None = None,
    description: str = "training the generator",
) -> dict[str, Any]:
    """Fine-tune ``backbone`` in place on ``examples`` with ``batch_loss``; return the history."""
    import numpy as np
    import torch

    if not examples:
        raise ValueError("no training examples for the generator")
    started = time.perf_counter()
    per_epoch = math.ceil(len(examples) / options.batch_size)
    total = math.ceil(per_epoch * options.epochs)
    if options.max_steps > 0:
        total = min(total, options.max_steps)
    rng = np.random.default_rng(ctx.seed)
    plan: list[np.ndarray] = []
    while len(plan) < total:
        order = rng.permutation(len(examples))
        plan.extend(order[i : i + options.batch_size] for i in range(0, len(order), options.batch_size))
    plan = plan[:total]

    # By default after each epoch, but at most ~10 times: a check decodes the dev queries.
    check_every = options.dev_every or max(per_epoch, math.ceil(total / 10))

    model = backbone.model
    optimisation = adamw(model.named_parameters(), lr=options.lr, total_steps=total,
                         warmup_ratio=options.warmup_ratio, weight_decay=options.weight_decay,
                         max_grad_norm=options.max_grad_norm, fresh=backbone.is_fresh,
                         fresh_lr=options.fresh_lr, data_parallel=True, schedule=options.lr_schedule,
                         warmup_steps=options.warmup_steps or None, algorithm=options.optimizer)
    best: dict[str, Any] = {}
    losses: list[float] = []
    checks: list[dict[str, float]] = []
    on_cuda = backbone.on_cuda
    with torch.random.fork_rng(devices=[torch.device(backbone.device)] if on_cuda else [],
                               device_type="cuda" if on_cuda else "cpu"):
        torch.manual_seed(ctx.seed)  # dropout
        try:
            with ctx.progress.task(description, total=total) as bar:
                for step, batch in enumerate(plan, start=1):
                    model.train()
                    part, share = distributed.shard(batch)  # all of it outside torchrun
                    with backbone.autocast():
                        loss = batch_loss(backbone, [examples[i][0] for i in part],
                                          [examples[i][1] for i in part]) * share
                    losses.append(optimisation.step(loss))
                    bar.advance(1)
                    bar.set_status(f"loss {np.mean(losses[-20:]):.3f}")
                    if dev_check is not None and (step % check_every == 0 or step == total):
                        model.eval()
                        checks.append({"step": step, **dev_check()})
                        ctx.progress.log(f"dev after step {step}: " + ", ".join(
                            f"{k}={v:.4f}" for k, v in checks[-1].items() if k != "step"))
                        if options.select_best:
                            keep_if_best(best, checks[-1], model)
        finally:
            model.eval()
            optimisation.release()
    if best:
        model.load_state_dict(best["state"])
    window = max(1, min(20, len(losses) // 4))
    return {
        "steps": len(losses),
        "epochs": len(losses) / per_epoch,
        "examples": len(examples),
        "first_loss": float(np.mean(losses[:window])),
        "final_loss": float(np.mean(losses[-window:])),
        "loss_curve": [float(np.mean(losses[i : i + window])) for i in range(0, len(losses), window)],
        "dev_checks": checks,
        **({"selected_step": best["step"]} if best else {}),
        "seconds": time.perf_counter() - started,
    }


SELECTION_METRICS = ("ndcg@10", "recall@10")
"""What ``select_best`` ranks dev checks by: the first of these a check reports."""


def keep_if_best(best: dict[str, Any], check: dict[str, float], model) -> None:
    """Remember ``model``'s weights (a CPU copy) when ``check`` beats the best dev check so far."""
    metric = next((m for m in SELECTION_METRICS if m in check), None)
    if metric is None:
        return
    if not best or check[metric] > best["score"]:
        best.update(step=check["step"], score=check[metric],
                    state={k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()})
