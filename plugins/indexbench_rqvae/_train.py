"""The heavy half of the rqvae plugin: the residual-quantised auto-encoder and its training (torch).

TIGER's RQ-VAE (Rajput et al. 2023, after Lee et al. 2022): an MLP encoder maps an embedding to a
latent z; level l picks the code nearest to the residual r_l (r_1 = z, r_{l+1} = r_l - e_l); the
decoder reconstructs the embedding from z_q = sum of the chosen codes, passed with the
straight-through estimator so the reconstruction loss reaches the encoder. Loss =
MSE(x, x_hat) + sum over levels of ||sg[r_l] - e_l||² + beta·||r_l - sg[e_l]||².
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch
from torch import nn

from indexbench.encoders import loss_summary
from indexbench.kmeans import kmeans

INIT_ROWS = 50_000
"""k-means initialisation reads at most this many rows (all of them on the corpora here)."""

RESET_EVERY = 50
"""Steps between dead-code checks."""

RESET_UNTIL = 0.8
"""No resets in the last 20% of training, so the final codebooks settle."""


def _mlp(dims: list[int]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(dims, dims[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(dims) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


class RQVAE(nn.Module):
    def __init__(self, in_dim: int, hidden: list[int], latent: int, levels: int, codebook_size: int):
        super().__init__()
        self.encoder = _mlp([in_dim, *hidden, latent])
        self.decoder = _mlp([latent, *reversed(hidden), in_dim])
        self.codebooks = nn.Parameter(torch.randn(levels, codebook_size, latent) * 0.01)

    def quantize(self, z: torch.Tensor):
        """Codes (B, levels), the straight-through quantised latent, the codebook + commitment
        terms per level, and the residual entering each level."""
        residual, quantized = z, torch.zeros_like(z)
        codes, terms, residuals = [], [], []
        for book in self.codebooks:
            dist = (residual.pow(2).sum(-1, keepdim=True) - 2 * residual @ book.T
                    + book.pow(2).sum(-1)[None, :])
            code = dist.argmin(dim=-1)
            # A one-hot product rather than book[code]: the backward of indexing accumulates with
            # multi-threaded scatter-adds on CPU, whose order (and so the result) varies run to run.
            chosen = nn.functional.one_hot(code, book.shape[0]).to(book.dtype) @ book
            codebook = (residual.detach() - chosen).pow(2).mean()
            commitment = (residual - chosen.detach()).pow(2).mean()
            terms.append((codebook, commitment))
            residuals.append(residual)
            codes.append(code)
            quantized = quantized + chosen
            residual = residual - chosen.detach()
        z_q = z + (quantized - z).detach()  # straight-through: decoder gradients reach the encoder
        return torch.stack(codes, dim=1), z_q, terms, residuals


def _standardise(emb: np.ndarray) -> np.ndarray:
    """Centre the embeddings and scale them to unit mean square per element.

    Sentence-encoder embeddings share a large common direction, and unit-norm rows have elements
    near 1/sqrt(d): centring removes the former and scaling puts the inputs where default
    initialisation and lr 1e-3 work, without changing the geometry (one scalar for all dims).
    """
    x = emb.astype(np.float32) - emb.mean(axis=0, keepdims=True, dtype=np.float64).astype(np.float32)
    scale = float(np.sqrt(np.mean(np.square(x, dtype=np.float64)))) or 1.0
    return x / scale


@torch.no_grad()
def _kmeans_init(model: RQVAE, x: torch.Tensor, seed: int) -> None:
    """Initialise each level's codebook with k-means of that level's residuals (TIGER)."""
    residual = model.encoder(x).cpu().numpy()
    k = model.codebooks.shape[1]
    rng = np.random.default_rng(seed)
    for level in range(model.codebooks.shape[0]):
        centroids, assign = kmeans(residual, k, seed=seed + level)
        if len(centroids) < k:  # fewer rows than codes: spare codes start on random rows
            extra = residual[rng.integers(0, len(residual), size=k - len(centroids))]
            centroids = np.concatenate([centroids, extra])
        model.codebooks[level] = torch.from_numpy(centroids).to(model.codebooks.device)
        residual = residual - centroids[assign]


@torch.no_grad()
def _reset_dead_codes(model: RQVAE, usage: torch.Tensor, residuals: list[torch.Tensor],
                      generator: torch.Generator) -> int:
    """Move every code no batch chose since the last check onto a residual of the current batch.

    A dead code never receives a gradient again, so without this a level can end up using a
    fraction of its K codes and more documents collide.
    """
    reset = 0
    for level, residual in enumerate(residuals):
        dead = (usage[level] == 0).nonzero().flatten()
        if len(dead):
            pick = torch.randint(0, len(residual), (len(dead),), generator=generator)
            model.codebooks[level, dead] = residual[pick.to(residual.device)].detach()
            reset += len(dead)
    usage.zero_()
    return reset


def train_rqvae(emb: np.ndarray, *, levels: int, codebook_size: int, hidden: list[int], latent: int,
                steps: int, batch_size: int, lr: float, beta: float, reset_dead_codes: bool,
                seed: int, device: str, progress: Any) -> tuple[np.ndarray, dict[str, Any]]:
    """Train the RQ-VAE on ``emb``; return the (N, levels) codes and a report."""
    start = time.perf_counter()
    n = len(emb)
    data = torch.from_numpy(_standardise(emb)).to(device)
    generator = torch.Generator().manual_seed(seed)
    history: list[float] = []
    recon_history: list[float] = []
    resets = 0
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = RQVAE(data.shape[1], hidden, latent, levels, codebook_size).to(device)
    init_rows = torch.randperm(n, generator=generator)[:INIT_ROWS].to(device)
    _kmeans_init(model, data[init_rows], seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    usage = torch.zeros(levels, codebook_size, device=device)
    order, cursor = torch.randperm(n, generator=generator), 0
    model.train()
    with progress.task(f"rqvae: training ({n:,} embeddings)", total=steps) as task:
        for step in range(steps):
            if cursor >= n:
                order, cursor = torch.randperm(n, generator=generator), 0
            x = data[order[cursor : cursor + batch_size].to(device)]
            cursor += batch_size
            codes, z_q, terms, residuals = model.quantize(model.encoder(x))
            recon = (model.decoder(z_q) - x).pow(2).mean()
            loss = recon + sum(cb + beta * cm for cb, cm in terms)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            history.append(float(loss.detach()))
            recon_history.append(float(recon.detach()))
            for level in range(levels):
                usage[level] += torch.bincount(codes[:, level], minlength=codebook_size)
            if reset_dead_codes and (step + 1) % RESET_EVERY == 0 and step < RESET_UNTIL * steps:
                resets += _reset_dead_codes(model, usage, residuals, generator)
            task.advance(1)
            if step % 10 == 0:
                task.set_status(f"loss {history[-1]:.4f}")

    model.eval()
    with torch.no_grad():
        codes, z_q, terms, _ = model.quantize(model.encoder(data))
        recon = float((model.decoder(z_q) - data).pow(2).mean())
        quant = float(sum(cb for cb, _ in terms))
    codes_np = codes.cpu().numpy().astype(np.int64)
    report = {
        "steps": steps,
        **loss_summary(history),
        "first_reconstruction_mse": loss_summary(recon_history)["first_loss"],
        "final_reconstruction_mse": recon,
        "final_quantization_mse": quant,
        "codebook_utilization": [len(np.unique(codes_np[:, lv])) / codebook_size for lv in range(levels)],
        "dead_code_resets": resets,
        "loss_every_50": history[::50],
        "reconstruction_every_50": recon_history[::50],
        "train_s": time.perf_counter() - start,
    }
    return codes_np, report

