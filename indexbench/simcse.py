"""Unsupervised SimCSE (Gao et al., EMNLP 2021): in-domain fine-tuning of a text encoder.

Every text of a batch goes through the encoder twice in train mode; the two dropout masks are the
only augmentation, so the two embeddings of one text form a positive pair and the other texts of
the batch are the negatives (InfoNCE over cosine similarity / temperature). The paper's Table 1
builds rq-VAE and HC IDs on "in-domain SimCSE" embeddings: the encoder fine-tuned this way on the
corpus itself, without any label.

Defaults follow Gao et al.'s unsupervised recipe (lr 3e-5, batch 64, temperature 0.05, linear
decay with no warm-up, no weight decay) except two CPU concessions: texts are cut to 64 tokens
(they used 32-token Wikipedia sentences; product texts are longer) and the epoch is capped at
``max_steps``. MiniLM keeps its own mean pooling; SimCSE's training-time MLP head is not used.
A MiniLM step (64 texts x 2 passes x 64 tokens, forward and backward) takes about 4 s on the
2-core reference CPU, so the default 50 steps (3,200 of amazon-scientific's 4,344 items) take
about 3.5 minutes.

`simcse_encoder` caches the fine-tuned weights in the artifact cache, keyed by the texts, the
base encoder, this config and the seed.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import distributed
from .data import fingerprint_of
from .encoders import loss_summary, make_encoder, train_steps
from .protocols import Progress

if TYPE_CHECKING:  # pragma: no cover
    from .encoders import TextEncoder
    from .protocols import RunContext

NAMESPACE = "simcse"
_HISTORY_FILE = "simcse.json"


@dataclass(frozen=True)
class SimCSEConfig:
    max_steps: int = 50
    """Cap on optimiser steps (0: no cap)."""
    epochs: int = 1
    """Passes over the texts (Gao et al.: one); each pass is shuffled anew."""
    batch_size: int = 64
    lr: float = 3e-5
    temperature: float = 0.05
    max_length: int = 64
    """Tokens kept per text (from the start)."""


def train_simcse(encoder: TextEncoder, texts: Sequence[str], config: SimCSEConfig | None = None, *,
                 seed: int = 0, progress: Progress | None = None) -> dict[str, Any]:
    """Fine-tune ``encoder`` in place with unsupervised SimCSE on ``texts``; return the history.

    Identical texts are kept once: a duplicate in the same batch would be a false negative. Each
    epoch visits the texts in a ``seed``-shuffled order; a final batch of one text (no negative)
    is dropped. Deterministic for a seed on CPU.
    """
    import numpy as np
    import torch

    config = config or SimCSEConfig()
    start = time.perf_counter()
    unique = list(dict.fromkeys(str(t) for t in texts if str(t).strip()))
    if len(unique) < 2:
        raise ValueError("SimCSE needs at least two distinct texts")
    if config.temperature <= 0:
        raise ValueError("temperature must be positive")
    tokens = encoder.tokenize(unique, max_length=config.max_length)
    rng = np.random.default_rng(seed)
    batches = []
    for _ in range(max(1, config.epochs)):
        order = rng.permutation(len(unique)).tolist()
        batches += [order[i : i + config.batch_size] for i in range(0, len(order), config.batch_size)]
    batches = [b for b in batches if len(b) >= 2]
    if config.max_steps > 0:
        batches = batches[: config.max_steps]

    def batch_loss(batch: list[int]):
        # Under torchrun each process embeds its shard; the negatives span the gathered batch.
        ids = [tokens[batch[i]] for i in distributed.shard_indices(len(batch))]
        # One forward pass over the rows twice: each copy of a row gets its own dropout mask.
        emb = encoder.embed_ids(ids + ids)
        emb = torch.nn.functional.normalize(emb, dim=-1)
        first = distributed.gather_batch(emb[: len(ids)], len(batch))
        second = distributed.gather_batch(emb[len(ids):], len(batch))
        logits = first @ second.T / config.temperature
        loss = torch.nn.functional.cross_entropy(logits, torch.arange(len(batch), device=logits.device))
        return loss / distributed.world_size()  # every process holds all of it; summed after

    losses = train_steps(encoder, batches, batch_loss, lr=config.lr, seed=seed, warmup_ratio=0.0,
                         weight_decay=0.0, max_grad_norm=1.0, progress=progress, data_parallel=True,
                         description=f"SimCSE fine-tuning {encoder.name} ({len(unique):,} texts)")
    return {
        "losses": losses,
        "steps": len(losses),
        "texts": len(unique),
        **loss_summary(losses),
        "seconds": time.perf_counter() - start,
        "config": asdict(config),
        "seed": seed,
    }


def simcse_encoder(base: str, texts: Sequence[str], ctx: RunContext,
                   config: SimCSEConfig | None = None) -> tuple[TextEncoder, dict[str, Any]]:
    """The registered encoder ``base`` fine-tuned with SimCSE on ``texts``, from the artifact
    cache when it holds one for these texts, base weights, config and seed. Returns the encoder
    and the training history (``cached`` says whether it came from the cache)."""
    config = config or SimCSEConfig()
    encoder = make_encoder(base, ctx.device)
    key = {
        "texts": fingerprint_of(list(texts)),
        "n": len(texts),
        "base": encoder.identity,
        "precision": encoder.training_precision,
        "config": asdict(config),
        "seed": ctx.seed,
    }
    encoder.name = f"simcse-{base}"  # after the key, which names the base

    def create(directory: Path) -> None:
        history = train_simcse(encoder, texts, config, seed=ctx.seed, progress=ctx.progress)
        encoder.save(directory)
        (directory / _HISTORY_FILE).write_text(json.dumps(history), encoding="utf-8")

    def load(directory: Path) -> dict[str, Any]:
        encoder.load_weights(directory)
        return json.loads((directory / _HISTORY_FILE).read_text(encoding="utf-8"))

    hits = ctx.cache.hits
    history = ctx.cache.get_or_create(NAMESPACE, key, create, load)
    history["cached"] = ctx.cache.hits > hits
    return encoder, history


__all__ = ["NAMESPACE", "SimCSEConfig", "simcse_encoder", "train_simcse"]
