"""Training SASRec on the training part of every user's sequence, early-stopped on dev NDCG@10,
and ranking the full catalogue from a history.

Each user contributes one example per epoch: the last ``max_len + 1`` items of their training
part, every position predicting the item after it (the authors' setting). A batch is cut to its
longest real sequence, so short histories cost what they are, not ``max_len``.

Under torchrun every process draws the same batches and negatives, computes its rows' share of
the batch's mean loss, and the gradients are summed (`indexbench.distributed`): the same steps
as one process takes, up to dropout masks and float order.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from indexbench import distributed

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


def training_windows(items: ItemIndex, sequences: Sequence[Sequence[str]], max_len: int) -> np.ndarray:
    """One example per user with at least two training items: the last ``max_len + 1`` of them."""
    return items.right_aligned([s for s in sequences if len(s) >= 2], max_len + 1)


def training_counts(examples: np.ndarray, n_items: int) -> np.ndarray:
    """How often each item (column i is item index i + 1) occurs in the training windows."""
    return np.bincount(examples[examples > 0], minlength=n_items + 1)[1:]


def untrained_items(examples: np.ndarray, n_items: int) -> torch.Tensor:
    """Which item columns (item index - 1) occur in no training window. Such an item's embedding
    gets no gradient from a sampled loss (it is never a target, an input or a drawn negative),
    so its score is its random initialisation -- above every trained item's once a binary loss
    has pushed those down. Ranking ranks these items last, whatever the loss."""
    return torch.from_numpy(training_counts(examples, n_items) == 0)


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
def top_k(model: SASRecModel, histories: np.ndarray, k: int, device: str,
          untrained: torch.Tensor | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(item indexes 1..n, scores) of the ``k`` best items per history, best first; the
    ``untrained`` columns (see `untrained_items`) score the lowest float32 (a finite score, so a
    ranking longer than the trained items still serialises)."""
    states = last_states(model, histories, device)
    columns, values = [], []
    for lo in range(0, len(states), EVAL_BATCH):
        scores = model.item_scores(states[lo:lo + EVAL_BATCH]).float()
        if untrained is not None:
            scores[:, untrained.to(scores.device)] = torch.finfo(torch.float32).min
        top = torch.topk(scores, min(k, scores.shape[1]), dim=1)
        values.append(top.values.cpu().numpy())
        columns.append(top.indices.cpu().numpy() + 1)
    if not columns:
        return np.zeros((0, k), dtype=np.int64), np.zeros((0, k), dtype=np.float32)
    return np.concatenate(columns), np.concatenate(values)


def dev_ndcg10(model: SASRecModel, histories: np.ndarray, targets: np.ndarray, device: str,
               untrained: torch.Tensor | None = None) -> float:
    """Mean NDCG@10 of one relevant item per history (1 / log2(rank + 2) in the top 10, else 0)."""
    if not len(targets):
        return 0.0
    ranked, _ = top_k(model, histories, 10, device, untrained)
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
    counts = training_counts(examples, n_items).astype(np.float64)
    weights = np.where(counts > 0, counts ** exponent, 0.0)
    return torch.from_numpy(weights / weights.sum())


def shared_loss(states: torch.Tensor, columns: torch.Tensor, candidates: torch.Tensor, table: torch.Tensor,
                loss: str) -> torch.Tensor:
    """Each position scored against ``candidates`` (every target of the batch, then the shared
    sampled items); its own target (column ``columns[i]``) is the positive, every other column
    a negative (an item that is also this row's target is not masked, as in cornac). Summed over
    positions -- ``ce``: softmax over the row; ``bce``: binary loss over every entry (the caller
    divides by the entries of the whole batch, giving cornac's mean)."""
    logits = (states @ table[candidates].T).float()
    if loss == "ce":
        return F.cross_entropy(logits, columns, reduction="sum")
    labels = torch.zeros_like(logits)
    labels[torch.arange(len(columns), device=logits.device), columns] = 1.0
    return F.binary_cross_entropy_with_logits(logits, labels, reduction="sum")


@dataclass
class Batch:
    """One step's examples as this process computes them: its rows of the batch (all of them
    outside torchrun), with what the loss needs of the whole batch."""
    inputs: torch.Tensor
    targets: torch.Tensor
    negatives: torch.Tensor | None  # one per position (the paper's bce)
    columns: torch.Tensor | None  # shared negatives: each of this process's positions' own column
    candidates: torch.Tensor | None  # shared negatives: every target of the batch, then the sampled
    scale: float  # 1 / the whole batch's positions (shared bce: position x candidate pairs); 0 for a stand-in


def batch_loss(model: SASRecModel, batch: Batch, loss: str) -> torch.Tensor:
    """This process's part of the batch's mean loss: summed here, divided by the whole batch's
    count, so the parts' gradients add up to one process's."""
    states = model(batch.inputs)
    real = batch.targets > 0
    states, positives = states[real], batch.targets[real]
    if batch.candidates is not None:
        total = shared_loss(states, batch.columns, batch.candidates, model.items.weight, loss)
    elif loss == "ce":  # softmax over the whole catalogue
        total = F.cross_entropy(model.item_scores(states).float(), positives - 1, reduction="sum")
    else:
        table = model.items.weight
        positive = (states * table[positives]).sum(-1).float()
        negative = (states * table[batch.negatives[real]]).sum(-1).float()
        total = (F.binary_cross_entropy_with_logits(positive, torch.ones_like(positive), reduction="sum")
                 + F.binary_cross_entropy_with_logits(negative, torch.zeros_like(negative), reduction="sum"))
    return total * batch.scale


def make_batch(inputs: np.ndarray, targets: np.ndarray, config: Any, n_items: int, sampler: torch.Tensor | None,
               generator: torch.Generator, device: str) -> Batch:
    """Draw the batch's negatives (every process draws the same: same generator, same batch),
    then keep this process's rows."""
    mine = distributed.shard_indices(len(inputs))
    real = targets > 0
    n_positions = int(real.sum())
    negatives = columns = candidates = None
    denominator = float(n_positions)
    if sampler is not None:
        shared = torch.multinomial(sampler, config.negatives, replacement=True, generator=generator) + 1
        candidates = torch.cat([torch.from_numpy(targets[real]), shared]).to(device)
        order = np.full(targets.shape, -1)
        order[real] = np.arange(n_positions)
        columns = torch.from_numpy(order[mine][order[mine] >= 0]).to(device)
        if config.loss == "bce":
            denominator *= len(candidates)
    elif config.loss == "bce":
        negatives = negatives_for(torch.from_numpy(inputs), torch.from_numpy(targets), n_items, generator)
        negatives = negatives[mine].to(device)
    stand_in = distributed.shard_share(len(inputs)) == 0  # a batch smaller than the world: no rows here
    return Batch(torch.from_numpy(inputs[mine]).to(device), torch.from_numpy(targets[mine]).to(device),
                 negatives, columns, candidates, 0.0 if stand_in else 1.0 / max(denominator, 1.0))


def train(model: SASRecModel, config: Any, items: ItemIndex, sequences: Sequence[Sequence[str]],
          dev_histories: np.ndarray, dev_targets: np.ndarray, *, seed: int, device: str,
          progress) -> dict[str, Any]:
    """Train in place; leave the model at its best dev NDCG@10 and return the training history."""
    examples = training_windows(items, sequences, config.max_len)
    untrained = untrained_items(examples, len(items.ids))
    inputs_all, targets_all = examples[:, :-1], examples[:, 1:]
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)  # dropout
    generator = torch.Generator().manual_seed(seed)  # negatives
    params = list(model.parameters())
    optimizer = torch.optim.Adam(params, lr=config.lr, betas=(0.9, 0.98),
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
                batch = make_batch(inputs_all[rows, -width:], targets_all[rows, -width:], config, len(items.ids),
                                   sampler, generator, device)
                with autocast(device):
                    loss = batch_loss(model, batch, config.loss)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                distributed.all_reduce_gradients(params)  # a no-op outside torchrun
                optimizer.step()
                total += distributed.all_reduce_sum(float(loss.detach()), device)
            point = {"epoch": epoch, "loss": total / max(n_batches, 1), "seconds": time.perf_counter() - started}
            if epoch % config.eval_every == 0 or epoch == config.max_epochs:
                point["dev_ndcg@10"] = dev_ndcg10(model, dev_histories, dev_targets, device, untrained)
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
