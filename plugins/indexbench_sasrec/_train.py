"""Training SASRec on the training part of every user's sequence, early-stopped on dev NDCG@10,
and ranking the full catalogue from a history.

Each user contributes one example per epoch: the last ``max_len + 1`` items of their training
part, every position predicting the item after it (the authors' setting). A batch is cut to its
longest real sequence, so short histories cost what they are, not ``max_len``.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ._model import SASRecModel

EVAL_BATCH = 512


class ItemIndex:
    """Document ids <-> the model's item indexes (1..n; 0 is padding)."""

    def __init__(self, doc_ids: Sequence[str]):
        self.ids = list(doc_ids)
        self.index = {doc_id: i + 1 for i, doc_id in enumerate(self.ids)}

    def right_aligned(self, sequences: Sequence[Sequence[str]], width: int) -> np.ndarray:
        """Each sequence's last ``width`` items as indexes, right-aligned, 0-padded on the left."""
        out = np.zeros((len(sequences), width), dtype=np.int64)
        for row, items in enumerate(sequences):
            tail = [self.index[item] for item in items[-width:]]
            if tail:
                out[row, width - len(tail):] = tail
        return out


def trimmed(batch: np.ndarray) -> np.ndarray:
    """Drop the leading columns that are padding in every row (at least one column stays)."""
    used = np.flatnonzero(batch.any(axis=0))
    return batch[:, used[0]:] if len(used) else batch[:, -1:]


def length_batches(lengths: np.ndarray, batch_size: int, rng: np.random.Generator, pool: int = 50) -> list[np.ndarray]:
    """One epoch's batches of row indexes: shuffled, then sorted by length within pools of
    ``pool`` batches, and the batches shuffled -- each batch holds sequences of similar length
    (so cutting it to its longest one saves most of the padding), and no order repeats."""
    order = rng.permutation(len(lengths))
    batches = []
    for lo in range(0, len(order), batch_size * pool):
        chunk = order[lo:lo + batch_size * pool]
        chunk = chunk[np.argsort(lengths[chunk], kind="stable")]
        batches += [chunk[i:i + batch_size] for i in range(0, len(chunk), batch_size)]
    return [batches[i] for i in rng.permutation(len(batches))]


def autocast(device: str):
    return torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.startswith("cuda"))


@torch.inference_mode()
def last_states(model: SASRecModel, histories: np.ndarray, device: str) -> torch.Tensor:
    """The final position's state for each right-aligned history, in float32."""
    model.eval()
    states = torch.zeros(len(histories), model.items.embedding_dim, device=device)
    order = np.argsort((histories > 0).sum(axis=1), kind="stable")  # similar lengths together
    for lo in range(0, len(order), EVAL_BATCH):
        rows = order[lo:lo + EVAL_BATCH]
        batch = torch.from_numpy(trimmed(histories[rows])).to(device)
        with autocast(device):
            states[torch.from_numpy(rows).to(device)] = model(batch)[:, -1].float()
    return states


@torch.inference_mode()
def top_k(model: SASRecModel, histories: np.ndarray, k: int, device: str) -> tuple[np.ndarray, np.ndarray]:
    """(item indexes 1..n, scores) of the ``k`` best items per history, best first."""
    states = last_states(model, histories, device)
    columns, values = [], []
    for lo in range(0, len(states), EVAL_BATCH):
        scores = model.item_scores(states[lo:lo + EVAL_BATCH]).float()
        top = torch.topk(scores, min(k, scores.shape[1]), dim=1)
        values.append(top.values.cpu().numpy())
        columns.append(top.indices.cpu().numpy() + 1)
    if not columns:
        return np.zeros((0, k), dtype=np.int64), np.zeros((0, k), dtype=np.float32)
    return np.concatenate(columns), np.concatenate(values)


def dev_ndcg10(model: SASRecModel, histories: np.ndarray, targets: np.ndarray, device: str) -> float:
    """Mean NDCG@10 of one relevant item per history (1 / log2(rank + 2) in the top 10, else 0)."""
    if not len(targets):
        return 0.0
    ranked, _ = top_k(model, histories, 10, device)
    hit = ranked == targets[:, None]
    ranks = np.argmax(hit, axis=1)
    gains = np.where(hit.any(axis=1), 1.0 / np.log2(ranks + 2), 0.0)
    return float(gains.mean())


def negatives_for(inputs: torch.Tensor, targets: torch.Tensor, n_items: int, generator: torch.Generator) -> torch.Tensor:
    """One negative item per position, uniform over items the user's window does not contain
    (the authors' sampler), redrawn where it hits one (a few rounds; collisions are rare)."""
    window = torch.cat([inputs, targets[:, -1:]], dim=1)
    negatives = torch.randint(1, n_items + 1, targets.shape, generator=generator)
    for _ in range(10):
        clash = (negatives.unsqueeze(-1) == window.unsqueeze(1)).any(-1)
        if not clash.any():
            break
        negatives[clash] = torch.randint(1, n_items + 1, (int(clash.sum()),), generator=generator)
    return negatives


def popularity(examples: np.ndarray, n_items: int, exponent: float) -> torch.Tensor:
    """Sampling weights of item indexes 1..n (column i is item i + 1): each item's count in the
    training windows raised to ``exponent``; an item never seen in training is never drawn."""
    counts = np.bincount(examples[examples > 0], minlength=n_items + 1)[1:].astype(np.float64)
    weights = np.where(counts > 0, counts ** exponent, 0.0)
    return torch.from_numpy(weights / weights.sum())


def shared_loss(states: torch.Tensor, positives: torch.Tensor, shared: torch.Tensor, table: torch.Tensor,
                loss: str) -> torch.Tensor:
    """Each position scored against every target of the batch and the ``shared`` sampled items:
    its own target is the positive, all other columns negatives (an item that is also this row's
    target is not masked, as in cornac). ``ce``: softmax over the row; ``bce``: binary loss
    averaged over every entry."""
    candidates = torch.cat([positives, shared])
    logits = (states @ table[candidates].T).float()
    rows = torch.arange(len(positives), device=logits.device)
    if loss == "ce":
        return F.cross_entropy(logits, rows)
    labels = torch.zeros_like(logits)
    labels[rows, rows] = 1.0
    return F.binary_cross_entropy_with_logits(logits, labels)


def batch_loss(model: SASRecModel, inputs: torch.Tensor, targets: torch.Tensor, loss: str,
               negatives: torch.Tensor | None, shared: torch.Tensor | None = None) -> torch.Tensor:
    states = model(inputs)
    real = targets > 0
    states, positives = states[real], targets[real]
    if shared is not None:
        return shared_loss(states, positives, shared, model.items.weight, loss)
    if loss == "ce":  # softmax over the whole catalogue
        return F.cross_entropy(model.item_scores(states).float(), positives - 1)
    table = model.items.weight
    positive = (states * table[positives]).sum(-1).float()
    negative = (states * table[negatives[real]]).sum(-1).float()
    return (F.binary_cross_entropy_with_logits(positive, torch.ones_like(positive))
            + F.binary_cross_entropy_with_logits(negative, torch.zeros_like(negative)))


def train(model: SASRecModel, config: Any, items: ItemIndex, sequences: Sequence[Sequence[str]],
          dev_histories: np.ndarray, dev_targets: np.ndarray, *, seed: int, device: str,
          progress) -> dict[str, Any]:
    """Train in place; leave the model at its best dev NDCG@10 and return the training history."""
    examples = items.right_aligned([s for s in sequences if len(s) >= 2], config.max_len + 1)
    inputs_all, targets_all = examples[:, :-1], examples[:, 1:]
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)  # dropout
    generator = torch.Generator().manual_seed(seed)  # negatives
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, betas=(0.9, 0.98),
                                 weight_decay=config.weight_decay)
    lengths = (targets_all > 0).sum(axis=1)
    sampler = popularity(examples, len(items.ids), config.popularity_exponent) if config.negatives else None
    n_batches = math.ceil(len(examples) / config.batch_size)
    best = (-1.0, 0, None)  # (dev ndcg@10, epoch, weights)
    curve: list[dict[str, float]] = []
    started = time.perf_counter()
    epoch = 0
    with progress.task(f"sasrec: training ({config.loss} loss, {len(examples):,} users)",
                       total=config.max_epochs) as bar:
        for epoch in range(1, config.max_epochs + 1):
            model.train()
            total = 0.0
            for rows in length_batches(lengths, config.batch_size, rng):
                width = trimmed(targets_all[rows]).shape[1]
                inputs = torch.from_numpy(inputs_all[rows, -width:])
                targets = torch.from_numpy(targets_all[rows, -width:])
                negatives = shared = None
                if sampler is not None:
                    shared = (torch.multinomial(sampler, config.negatives, replacement=True, generator=generator)
                              + 1).to(device)
                elif config.loss == "bce":
                    negatives = negatives_for(inputs, targets, len(items.ids), generator).to(device)
                inputs, targets = inputs.to(device), targets.to(device)
                with autocast(device):
                    loss = batch_loss(model, inputs, targets, config.loss, negatives, shared)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                total += float(loss.detach())
            point = {"epoch": epoch, "loss": total / max(n_batches, 1), "seconds": time.perf_counter() - started}
            if epoch % config.eval_every == 0 or epoch == config.max_epochs:
                point["dev_ndcg@10"] = dev_ndcg10(model, dev_histories, dev_targets, device)
                if point["dev_ndcg@10"] > best[0]:
                    best = (point["dev_ndcg@10"], epoch, copy.deepcopy(model.state_dict()))
            curve.append(point)
            bar.advance()
            shown = f"epoch {epoch}, loss {point['loss']:.4f}"
            bar.set_status(shown + (f", dev ndcg@10 {best[0]:.4f} (epoch {best[1]})" if best[2] is not None else ""))
            if best[2] is not None and (epoch - best[1]) >= config.patience * config.eval_every:
                break
    if best[2] is not None:
        model.load_state_dict(best[2])
    model.eval()
    return {
        "epochs_run": epoch,
        "best_epoch": best[1],
        "best_dev_ndcg@10": best[0],
        "train_seconds": time.perf_counter() - started,
        "n_train_users": len(examples),
        "curve": curve,
    }
