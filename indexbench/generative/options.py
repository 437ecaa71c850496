"""The options of the generative engine, shared by every ID indexer's config.

An ID indexer's config dataclass inherits `GenerativeOptions`, so a user tunes the engine through
the same ``--indexer name:key=value`` spec, e.g. ``hc:backbone=t5-small-scratch:epochs=5``, and a
grid compares indexers trained the same way unless told otherwise.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from ..options import option
from .history_input import INPUTS
from .presets import apply_preset


@dataclass
class GenerativeOptions:
    backbone: str = "minilm-encdec"
    """A registered backbone name (``indexbench backbones``) or a local Hugging Face seq2seq
    checkpoint directory."""

    decoder_layers: int = option(0, ge=0)
    """Decoder depth of a built-in backbone (0: the backbone's default)."""

    epochs: float = option(3.0, gt=0)
    """Passes over the training pairs (query → ID, plus document → ID when indexing pairs are on)."""

    max_steps: int = option(500, ge=0)
    """Cap on optimiser steps, so a CPU run stays in minutes; 0 means no cap. A MiniLM step of 32
    inputs of 64 tokens takes about 2 s on two CPU cores: 500 steps cover product search's 3
    epochs but only ~half an epoch of recommendation's 33k pairs; raise it on a GPU."""

    batch_size: int = option(32, ge=1)
    lr: float = option(1e-4, gt=0)
    """AdamW peak learning rate of pretrained weights (linear warm-up, then linear decay)."""

    fresh_lr: float = option(3e-4, gt=0)
    """Peak learning rate of the weights that start untrained: minilm-encdec's cross-attention,
    output head and ID-token embeddings; every weight of a from-scratch backbone (tiny,
    t5-small-scratch). A local checkpoint's weights all count as pretrained. Measured on
    amazon-scientific (first ID position, K = 256, 50 steps after the `id_init` warm start):
    3e-4 reached 85 % of documents right, 3e-3 first wrecked the warm start (loss back to
    chance) and recovered to 65 %. Without a warm start a single rate of 5e-4 for everything
    left the first position at chance."""

    id_init: str = option("documents", choices=("documents", "none"))
    """"documents": before training, set each first-position code's token embedding to the mean
    decoder feature of the documents carrying it (`indexbench.generative.id_init`); "none": keep
    the backbone's initialisation. An indexer with its own ``init_generative_model`` (LMIndexer)
    is never overridden."""

    preset: str = option("none", choices=("none", "tiger", "tiger-tuned"))
    """A named recipe that fills every option the spec does not give (`presets.PRESETS`):
    ``tiger`` -- TIGER's paper setting (Rajput et al. 2023); ``tiger-tuned`` -- the tuned recipe
    cornac's TIGER port reaches its Beauty figures with."""

    optimizer: str = option("adamw", choices=("adamw", "adafactor"))
    """AdamW, or Adafactor (T5X's default, the optimiser TIGER's T5X training implies)."""

    lr_schedule: str = option("linear", choices=("linear", "rsqrt", "cosine", "constant"))
    """After the warm-up: linear decay to zero; ``rsqrt`` -- T5's, flat at the peak for the
    warm-up steps then sqrt(warm-up / step); cosine to zero; constant (`indexbench.optim`)."""

    warmup_steps: int = option(0, ge=0)
    """Warm-up steps; 0 = ``warmup_ratio`` of the steps."""

    select_best: bool = False
    """Keep the weights of the best dev check (dev NDCG@10) instead of the last step's."""

    dev_every: int = option(0, ge=0)
    """Steps between dev checks (recall@10 and NDCG@10 on the first ``dev_queries`` dev queries,
    the learning curve in the record); 0 = after each epoch, at most ten times."""

    dev_queries: int = option(200, ge=1)
    """Dev queries each check decodes (the first ones by id): more give a less noisy curve."""

    warmup_ratio: float = option(0.05, ge=0, le=1)
    weight_decay: float = option(0.01, ge=0)
    max_grad_norm: float = option(1.0, ge=0)

    input: str = option("text", choices=INPUTS)
    """How a recommendation history reaches the encoder (`indexbench.generative.history_input`):
    "text" -- the titles of its last 20 items (the LMIndexer paper's format); "ids" -- their
    semantic IDs, each item as its T code tokens (TIGER's); "both" -- each item's ID tokens then
    its title. Tasks whose queries are text (search, document retrieval) take only "text"."""

    user_buckets: int = option(0, ge=0)
    """With ``input=ids`` or ``both``: a first input token for the user, its id hashed into this
    many buckets (TIGER: 2,000); 0 = no user token."""

    query_max_length: int = option(64, ge=1)
    """Input tokens kept per query (recommendation histories keep their most recent end)."""

    doc_max_length: int = option(64, ge=1)
    """Input tokens kept per document in the DSI indexing pairs."""

    indexing_pairs: str = option("auto", choices=("auto", "yes", "no"))
    """Train on (document text → its ID) pairs too (DSI's indexing examples): "auto" (when the
    task says a document's text is a fair query for it: document-retrieval and product-search,
    not recommendation), "yes" or "no"."""

    num_beams: int = option(20, ge=1)
    """Beams of the constrained beam search (the paper's 20); a query returns at most this many
    documents."""

    eval_batch_size: int = option(64, ge=1)

    def apply_preset(self, given: set[str] | frozenset[str] | None = None) -> None:
        """Fill the options the user did not give (``given``) from ``preset`` (`presets.apply_preset`)."""
        apply_preset(self, given)


KEYED_WHEN_SET = ("input", "user_buckets", "preset", "optimizer", "lr_schedule", "warmup_steps", "select_best",
                  "dev_every", "dev_queries")
"""Options that enter a trained model's cache key only when they differ from their default, so
the models cached before they existed (every one of them at today's defaults) are still found."""


def cache_key_options(config: GenerativeOptions, *, engine_only: bool = True) -> dict:
    """The options a trained model's cache key holds: the engine's (``engine_only``) or all of
    ``config``'s, less those of `KEYED_WHEN_SET` that are at their default."""
    fields = dataclasses.fields(GenerativeOptions if engine_only else config)
    return {f.name: getattr(config, f.name) for f in fields
            if not (f.name in KEYED_WHEN_SET and getattr(config, f.name) == f.default)}
