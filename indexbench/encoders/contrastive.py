"""Fine-tuning an encoder: `train_in_batch_negatives` (InfoNCE with in-batch negatives on
(query, document) text pairs) and its optimiser loop, `train_steps`, which serves any other
objective too (the SimCSE fine-tuning of `indexbench.simcse`). `TextEncoder.save` /
`load_weights` move the result through the artifact cache."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

from .. import distributed
from ..protocols import Progress, SilentProgress
from ..tokenization import Truncation
from .text_encoder import TextEncoder


def conflict_free_batches(keys: Sequence[tuple[str, str]], order: Sequence[int],
                          batch_size: int) -> list[list[int]]:
    """Split ``order`` (indices into ``keys`` = (query, document) pairs) into batches of at most
    ``batch_size`` in which no query and no document occurs twice.

    A document twice in a batch would be a negative for the other query it is relevant to (a
    false negative); the same holds for a query twice. A conflicting pair is deferred to the
    front of the next batch, so the shuffled order is kept as far as possible.
    """
    pending = deque(order)
    batches: list[list[int]] = []
    while pending:
        batch: list[int] = []
        seen_q: set[str] = set()
        seen_d: set[str] = set()
        deferred: list[int] = []
        while pending and len(batch) < batch_size:
            i = pending.popleft()
            q, d = keys[i]
            if q in seen_q or d in seen_d:
                deferred.append(i)
                continue
            batch.append(i)
            seen_q.add(q)
            seen_d.add(d)
        pending.extendleft(reversed(deferred))
        batches.append(batch)
    return batches


def other_positives_mask(queries: Sequence[str], docs: Sequence[str],
                         positives: dict[str, set[str]]) -> list[list[bool]]:
    """``mask[i][j]`` is true where document ``j`` (j != i) of a batch is also relevant to query
    ``i``: it must not count as a negative."""
    return [[j != i and d in positives.get(q, ()) for j, d in enumerate(docs)]
            for i, q in enumerate(queries)]


def train_steps(
    encoder: TextEncoder,
    batches: Sequence[Any],
    batch_loss: Callable[[Any], Any],
    *,
    lr: float,
    seed: int = 0,
    warmup_ratio: float = 0.1,
    weight_decay: float = 0.01,
    max_grad_norm: float = 1.0,
    progress: Progress | None = None,
    description: str = "fine-tuning",
    data_parallel: bool = False,
) -> list[float]:
    """One optimiser step per element of ``batches`` on ``encoder``'s model, in place; returns
    the losses.

    ``batch_loss(batch)`` computes the (scalar tensor) loss of one batch; the model is in train
    mode, so dropout is active. The optimiser is the shared recipe of `indexbench.optim.adamw`
    (AdamW, linear warm-up over ``warmup_ratio`` then linear decay, clipping). Dropout draws
    from the torch RNG seeded with ``seed`` inside a forked RNG state, so training is
    deterministic on CPU and the caller's global RNG state is left alone. Progress shows the loss.
    ``data_parallel``: ``batch_loss`` shards its batch over torchrun's processes (see
    `indexbench.distributed`), and the gradients and loss are summed over them.
    """
    import torch

    from ..optim import adamw

    progress = progress or SilentProgress()
    model = encoder.model
    opt = adamw(model.named_parameters(), lr=lr, total_steps=len(batches), warmup_ratio=warmup_ratio,
                weight_decay=weight_decay, max_grad_norm=max_grad_norm, data_parallel=data_parallel)
    losses: list[float] = []
    fork_devices = [torch.device(encoder.device)] if encoder._on_cuda else []
    with torch.random.fork_rng(devices=fork_devices, device_type="cuda" if fork_devices else "cpu"):
        torch.manual_seed(seed)
        model.train()
        try:
            with progress.task(description, total=len(batches)) as task:
                for batch in batches:
                    losses.append(opt.step(batch_loss(batch)))
                    task.advance(1)
                    task.set_status(f"loss {losses[-1]:.4f}")
        finally:
            model.eval()
            opt.release()
            encoder.weights_changed()
    return losses


def loss_summary(losses: Sequence[float]) -> dict[str, float]:
    """Mean loss over the first and the last few steps (a single step is noisy)."""
    import numpy as np

    window = max(1, min(10, len(losses) // 4 or 1))
    return {"first_loss": float(np.mean(losses[:window])), "final_loss": float(np.mean(losses[-window:]))}


def train_in_batch_negatives(
    encoder: TextEncoder,
    pairs: Sequence[tuple[str, str]],
    *,
    epochs: int = 3,
    batch_size: int = 32,
    lr: float = 2e-5,
    max_steps: int | None = None,
    temperature: float = 0.05,
    seed: int = 0,
    query_max_length: int = 64,
    doc_max_length: int = 256,
    query_truncation: Truncation = "right",
    doc_truncation: Truncation = "right",
    symmetric: bool = False,
    warmup_ratio: float = 0.1,
    weight_decay: float = 0.01,
    max_grad_norm: float = 1.0,
    progress: Progress | None = None,
    description: str | None = None,
) -> dict[str, Any]:
    """Fine-tune ``encoder`` in place on (query text, document text) pairs; return the history.

    Loss: InfoNCE over cosine similarities / ``temperature`` with in-batch negatives, query ->
    document (each query must pick its document among the batch's documents). That is exactly
    the ranking the retriever performs; ``symmetric=True`` adds the document -> query direction
    and averages the two. Batches never hold a query or a document twice (see
    `conflict_free_batches`), and any other known positive that lands in a batch as a negative
    is masked out of the softmax. A batch that ends up with a single pair has no negative and is
    skipped.

    The optimiser, schedule and loop are `train_steps`'. ``max_steps`` (None or <= 0: no cap)
    caps the total number of optimiser steps across epochs. Deterministic for a given seed on CPU:
    dropout and shuffling use ``seed``; the global RNG state is restored after.
    """
    import numpy as np
    import torch

    start_time = time.perf_counter()
    pairs = [(str(q), str(d)) for q, d in pairs]
    if not pairs:
        raise ValueError("no training pairs")
    if temperature <= 0:
        raise ValueError("temperature must be positive")

    positives: dict[str, set[str]] = {}
    for q, d in pairs:
        positives.setdefault(q, set()).add(d)
    queries = sorted(positives)
    docs = sorted({d for _, d in pairs})
    q_tokens = dict(zip(queries, encoder.tokenize(queries, max_length=query_max_length,
                                                  truncation=query_truncation), strict=True))
    d_tokens = dict(zip(docs, encoder.tokenize(docs, max_length=doc_max_length,
                                               truncation=doc_truncation), strict=True))

    rng = np.random.default_rng(seed)
    plan: list[list[int]] = []
    dropped = 0
    for _ in range(max(1, int(epochs))):
        order = rng.permutation(len(pairs)).tolist()
        for batch in conflict_free_batches(pairs, order, batch_size):
            if len(batch) < 2:
                dropped += len(batch)
                continue
            plan.append(batch)
    steps_per_epoch = len(plan) / max(1, int(epochs))
    if max_steps is not None and max_steps > 0:
        plan = plan[:max_steps]
    total = len(plan)
    if total == 0:
        raise ValueError("no batch with at least two distinct pairs; need more training pairs")

    def batch_loss(batch: list[int]):
        bq = [pairs[i][0] for i in batch]
        bd = [pairs[i][1] for i in batch]
        # Under torchrun each process embeds its shard and the similarities span the whole
        # batch (`distributed.gather_batch`): the same negatives as one process.
        mine = distributed.shard_indices(len(batch))
        q_emb = distributed.gather_batch(encoder.embed_ids([q_tokens[bq[i]] for i in mine]), len(batch))
        d_emb = distributed.gather_batch(encoder.embed_ids([d_tokens[bd[i]] for i in mine]), len(batch))
        logits = q_emb @ d_emb.T / temperature
        mask = torch.tensor(other_positives_mask(bq, bd, positives), device=logits.device)
        logits = logits.masked_fill(mask, float("-inf"))
        target = torch.arange(len(batch), device=logits.device)
        loss = torch.nn.functional.cross_entropy(logits, target)
        if symmetric:
            loss = (loss + torch.nn.functional.cross_entropy(logits.T, target)) / 2
        return loss / distributed.world_size()  # every process holds all of it; summed after

    losses = train_steps(
        encoder, plan, batch_loss, lr=lr, seed=seed, warmup_ratio=warmup_ratio,
        weight_decay=weight_decay, max_grad_norm=max_grad_norm, progress=progress, data_parallel=True,
        description=description or f"fine-tuning {encoder.name}",
    )

    return {
        "losses": losses,
        "steps": len(losses),
        "epochs": len(losses) / steps_per_epoch if steps_per_epoch else 0.0,
        "steps_per_epoch": steps_per_epoch,
        "pairs": len(pairs),
        "unique_queries": len(queries),
        "unique_documents": len(docs),
        "dropped_singleton_pairs": dropped,
        **loss_summary(losses),
        "seconds": time.perf_counter() - start_time,
        "config": {
            "epochs": epochs, "batch_size": batch_size, "lr": lr, "max_steps": max_steps,
            "temperature": temperature, "seed": seed, "query_max_length": query_max_length,
            "doc_max_length": doc_max_length, "query_truncation": query_truncation,
            "doc_truncation": doc_truncation, "symmetric": symmetric, "warmup_ratio": warmup_ratio,
            "weight_decay": weight_decay, "max_grad_norm": max_grad_norm,
        },
    }


__all__ = ["conflict_free_batches", "loss_summary", "other_positives_mask", "train_in_batch_negatives", "train_steps"]
