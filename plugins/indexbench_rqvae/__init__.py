"""``rqvae``: residual-quantisation semantic IDs (TIGER, Rajput et al. 2023), the paper's rq-VAE
indexer.

Documents are embedded (``encoder`` option, MiniLM by default); an MLP auto-encoder with a
residual quantiser of T-1 levels (one K-code codebook per level, k-means initialised, codebook +
commitment loss with stop-gradients, straight-through estimator) is trained to reconstruct the
embeddings; a document's semantic codes are its nearest code at each level, and the last position
de-duplicates (`indexbench.id_indexers`). Codes that no batch picks for 50 steps are moved onto
a current residual (until 80% of training), so the codebooks stay in use.

The trained codes are cached, keyed by the embeddings' content, the quantiser options, (T, K),
the seed, the device and this plugin's version. Importing this module is cheap: torch loads inside `semantic_codes`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from indexbench import IndexerEntry, hookimpl, option
from indexbench.errors import ConfigError
from indexbench.id_indexers import IdIndexerOptions, TwoStageIdIndexer, embeddings_fingerprint

__version__ = "0.1.0"

NAMESPACE = "rqvae-codes"

# Options that shape the trained quantiser (and so key the cache).
_QUANTISER_FIELDS = ("hidden_dims", "latent_dim", "vae_steps", "vae_batch_size", "vae_lr", "beta",
                     "reset_dead_codes")


@dataclass
class RQVAEConfig(IdIndexerOptions):
    """Options of ``--indexer rqvae:key=value:...``.

    ID options (shared by every ID indexer): ``id_length`` (T, 0 = default 3), ``codebook_size``
    (K, 0 = next power of two >= 2·sqrt(N) in [16, 512]), ``encoder`` (``minilm``, ``simcse``,
    ...), ``encoder_max_length``, ``simcse_steps``; the other options tune the generative engine.
    Own options: ``hidden_dims`` -- encoder MLP widths, comma-separated (the decoder mirrors
    them); ``latent_dim`` -- width of the quantised latent; ``vae_steps``, ``vae_batch_size``,
    ``vae_lr`` -- Adam training of the auto-encoder; ``beta`` -- commitment weight (TIGER's
    0.25); ``reset_dead_codes`` -- revive unused codes during training.
    """

    hidden_dims: str = "512,256"
    latent_dim: int = option(64, ge=1)
    vae_steps: int = option(1500, ge=0)
    vae_batch_size: int = option(1024, ge=1)
    vae_lr: float = option(1e-3, gt=0)
    beta: float = option(0.25, ge=0)
    reset_dead_codes: bool = True

    def validate(self) -> None:
        super().validate()
        _hidden(self.hidden_dims)


def _hidden(text: str) -> list[int]:
    try:
        dims = [int(p) for p in str(text).split(",") if p.strip()]
    except ValueError:
        dims = []
    if not dims or min(dims) < 1:
        raise ConfigError(f"rqvae option 'hidden_dims' expects comma-separated widths such as 512,256, got {text!r}")
    return dims


class RQVAEIndexer(TwoStageIdIndexer):
    """MLP encoder -> residual quantiser (T-1 levels) -> MLP decoder, trained on embeddings."""

    name = "rqvae"
    config_class = RQVAEConfig

    def semantic_codes(self, emb, n_docs, levels, codebook_size, ctx, details):
        import numpy as np

        cfg = self.config
        hidden = _hidden(cfg.hidden_dims)
        key = {
            "embeddings": embeddings_fingerprint(emb),
            "quantiser": {f: getattr(cfg, f) for f in _QUANTISER_FIELDS},
            "levels": levels,
            "codebook_size": codebook_size,
            "seed": ctx.seed,
            "device": "cuda" if str(ctx.device).startswith("cuda") else "cpu",
            "plugin": __version__,  # bump when training changes, so old codes are not reused
        }

        def create(directory: Path) -> None:
            from ._train import train_rqvae

            codes, report = train_rqvae(
                emb, levels=levels, codebook_size=codebook_size, hidden=hidden, latent=cfg.latent_dim,
                steps=cfg.vae_steps, batch_size=cfg.vae_batch_size, lr=cfg.vae_lr, beta=cfg.beta,
                reset_dead_codes=cfg.reset_dead_codes, seed=ctx.seed, device=ctx.device,
                progress=ctx.progress,
            )
            np.save(directory / "codes.npy", codes)
            (directory / "report.json").write_text(json.dumps(report), encoding="utf-8")

        def load(directory: Path):
            report = json.loads((directory / "report.json").read_text(encoding="utf-8"))
            return np.load(directory / "codes.npy"), report

        hits = ctx.cache.hits
        codes, report = ctx.cache.get_or_create(NAMESPACE, key, create, load)
        details["rqvae"] = {**report, "cached": ctx.cache.hits > hits}
        return codes


@hookimpl
def register_indexers(register):
    register(IndexerEntry(
        name="rqvae",
        factory=RQVAEIndexer,
        config_class=RQVAEConfig,
        description="residual-quantised auto-encoder semantic IDs on text embeddings (TIGER; "
        "paper's rq-VAE indexer), last position de-duplicates",
        kind="ids",
    ))


__all__ = ["RQVAEConfig", "RQVAEIndexer", "register_indexers"]
