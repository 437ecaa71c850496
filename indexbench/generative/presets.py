"""Named recipes of the generative engine (``--indexer rqvae:preset=tiger``).

A preset fills every option the spec does not give, so ``rqvae:preset=tiger:max_steps=3000`` is
TIGER's setting at a CPU budget. Options an indexer does not have (``hidden_dims`` for ``hc``)
are left out. Sources and every departure from them are in the README's generative section.

``tiger`` -- Rajput et al., "Recommender Systems with Generative Retrieval" (NeurIPS 2023), §4
"Implementation details": semantic IDs of 3 codes of 256 plus a fourth that tells colliding
items apart; a T5 encoder-decoder trained from scratch, 4 + 4 layers, 6 heads of 64, MLP 1,024,
input dimension 128, dropout 0.1 (backbone ``t5-tiger``); batch 256; learning rate 0.01 for the
first 10k steps, then inverse square root decay (T5X's ``rsqrt``, with T5X's default optimiser,
Adafactor); 200k steps on Beauty and Sports; the user id hashed into 2,000 tokens; the history
as the items' semantic IDs. rq-VAE: hidden layers 512, 256, 128 and a latent of 32.

``tiger-tuned`` -- the recipe cornac 3.0.1's TIGER port (``PAISCHER_CONFIG``, from Paischer et
al. 2024's TIGER baseline) reaches R@5 .0419 on Beauty with: 6 + 6 layers, dropout 0.2
(``t5-tiger-tuned``), AdamW at 3e-4 with 10k warm-up steps and cosine decay, weight decay 0.035,
batch 64, the best dev checkpoint; no user token (GRID's ablation found it does not help).
"""

from __future__ import annotations

import dataclasses
from typing import Any

PRESETS: dict[str, dict[str, Any]] = {
    "tiger": {
        "backbone": "t5-tiger", "input": "ids", "user_buckets": 2000,
        "id_length": 4, "codebook_size": 256,
        "batch_size": 256, "optimizer": "adafactor", "lr": 0.01, "fresh_lr": 0.01,
        "lr_schedule": "rsqrt", "warmup_steps": 10000, "weight_decay": 0.0, "max_grad_norm": 1.0,
        "epochs": 1000.0, "max_steps": 200000, "num_beams": 20, "id_init": "none",
        "hidden_dims": "512,256,128", "latent_dim": 32,
    },
    "tiger-tuned": {
        "backbone": "t5-tiger-tuned", "input": "ids", "user_buckets": 0,
        "id_length": 4, "codebook_size": 256,
        "batch_size": 64, "optimizer": "adamw", "lr": 3e-4, "fresh_lr": 3e-4,
        "lr_schedule": "cosine", "warmup_steps": 10000, "weight_decay": 0.035, "max_grad_norm": 1.0,
        "epochs": 1000.0, "max_steps": 200000, "num_beams": 20, "id_init": "none", "select_best": True,
        "hidden_dims": "768,512,256", "latent_dim": 128,
    },
}


def apply_preset(config: Any, given: set[str] | frozenset[str] | None = None) -> None:
    """Set every option of ``config``'s preset that ``config`` has and ``given`` does not name
    (None: the options whose value differs from their default, for a config built in code).
    Only the first call does anything, so the engine may call it again safely."""
    name = getattr(config, "preset", "none")
    if name == "none" or getattr(config, "_preset_applied", False):
        return
    fields = {f.name: f for f in dataclasses.fields(config)}
    if given is None:
        given = {n for n, f in fields.items() if f.default is not dataclasses.MISSING
                 and getattr(config, n) != f.default}
    for option, value in PRESETS[name].items():
        if option in fields and option not in given:
            setattr(config, option, value)
    config._preset_applied = True


__all__ = ["PRESETS", "apply_preset"]
