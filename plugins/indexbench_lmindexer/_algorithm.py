"""Algorithm 1 (paper App. A.2): LMIndexer's self-supervised ID learning, one phase at a time.

Phases, for T-1 semantic positions (the last position de-duplicates and is not learned):

1. ``codebook@1`` then ``reconstructor-warmup`` (Eq. 12): the first position's codebook is
   initialised by k-means (below), and the reconstructor alone learns to fill in tokens from the
   hints and the IDs the frozen indexer picks with that codebook -- against reconstructor
   collapse, and so that what it learns is what train@1 will feed it.
2. For each position t:

   * ``encoder-warmup@t`` (Eq. 13): the indexer and reconstructor train with the continuous
     h_d^t in place of the t-th code -- against posterior collapse (none with
     ``encoder_warmup_steps=-1``; ``encoder_warmup=false`` also drops the k-means codebooks);
   * ``codebook@t``: E^t is initialised by k-means of {h_d^t} over the corpus (`set_code_rows`
     turns the centroids into ID-token rows of a fitted norm); from t = 2 on, of h_d^t centred
     within each prefix group. At t = 1 it is the warm-up's codebook, refitted only after an
     encoder warm-up (which moves h^1);
   * ``train@t`` (Eq. 11): reconstruction through the straight-through look-up, plus contrastive
     (Eq. 9) and commitment (Eq. 10) losses, and (``code_anchor``, not in the paper) a pull
     toward the k-means codes; then every document's c^t = argmax P_s, fixed from here on
     (progressive training).

Every training phase is measured on a fixed sample of documents at its start and every
``diagnostics_every`` steps: the reconstruction loss beside the corpus unigram's on the same
tokens, top-1 accuracy and macro-F1, and the current position's perplexity and diff ratio.

After each phase the whole state (weights, codes so far, history) is written to a checkpoint, so
an interrupted run resumes at the next phase; every phase seeds its own random streams from the
run's seed and its index, so a resumed run ends with the same IDs as an uninterrupted one.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from indexbench import distributed
from indexbench.data import SemanticIds
from indexbench.generative import decoder_features, group_means, prefix_states, set_code_rows
from indexbench.kmeans import kmeans
from indexbench.metrics import id_diagnostics
from indexbench.optim import adamw

from ._model import (
    Reconstructor,
    commitment_loss,
    init_from_bert,
    prefix_contrastive_loss,
    reconstruction_loss,
    sample_visibility,
    straight_through,
)

CHECKPOINT = "state.pt"

RECONSTRUCTION_DIAGNOSTICS = ("reconstruction_loss", "unigram_loss", "nats_below_unigram", "top1", "macro_f1")
"""What `SelfSupervisedTraining.diagnose` says about the reconstructor, kept in each phase's summary."""


@dataclass
class Phase:
    name: str
    kind: str  # "reconstructor-warmup" | "encoder-warmup" | "codebook" | "train"
    position: int  # 0-based ID position (-1 for the reconstructor warm-up)
    steps: int = 0


SCHEDULES = {  # schedule: {option: (epochs, cap)} -- what 0 ("auto") means for N documents
    "cpu": {
        "reconstructor_warmup_steps": (8.0, 1200),
        "encoder_warmup_steps": (1.0, 150),
        "position_steps": (1.1, 150),
    },
    "paper": {  # Table 9: 30 epochs a phase (the authors' scripts: warm-ups included), no cap
        "reconstructor_warmup_steps": (30.0, None),
        "encoder_warmup_steps": (30.0, None),
        "position_steps": (30.0, None),
    },
}
"""The CPU budget (``schedule=cpu``, the default): amazon-scientific (4,344 items, batch 32) gets
1,086 reconstructor-only steps (cheap: the frozen indexer's codes are computed once), then per
position 136 steps of encoder warm-up and 150 of train@t, 28 minutes on 2 cores; the built-in
sample (300 items) 75 + 2 x (10 + 11), so a first run takes a few minutes. ``schedule=paper`` is
Table 9's budget for a GPU (`PAPER_PRESET`)."""

AUTO_STEPS = SCHEDULES["cpu"]

PAPER_PRESET = {"index_max_length": 512, "index_batch_size": 128, "index_lr": 1e-3, "index_fresh_lr": 1e-3,
                "hint_ratios": "0.5,0.3", "code_anchor": 0.0}
"""``schedule=paper``: Table 9's lengths, batch and learning rate (the lowest of the searched
{1e-3, 2e-3, 5e-3}, the authors' script's), the paper's objective (no code anchor) and
`SCHEDULES`["paper"]'s epochs. Options left at their defaults take these values."""


def phase_steps(config: Any, option: str, n_docs: int) -> int:
    """Steps of a phase: the option's value, or for 0 its epochs over the corpus up to its cap
    (0 steps when the schedule gives it none, or for -1)."""
    value = int(getattr(config, option))
    if value > 0:
        return value
    if value < 0:  # encoder_warmup_steps=-1: none
        return 0
    epochs, cap = SCHEDULES[getattr(config, "schedule", "cpu")][option]
    if epochs <= 0:
        return 0
    steps = math.ceil(epochs * n_docs / int(config.index_batch_size))
    return max(1, steps if cap is None else min(cap, steps))


def plan_phases(config: Any, levels: int, n_docs: int) -> list[Phase]:
    """The phases Algorithm 1 runs for ``levels`` semantic positions under ``config``'s switches.

    The reconstructor warm-up (Eq. 12) reads the IDs that the frozen indexer gives with the
    first position's codebook, as the authors' warm-up does (frozen ID generator and codebook):
    so it is preceded by that codebook's k-means initialisation, and what the reconstructor
    learns is what it will be fed in train@1. An encoder warm-up moves h^1, so the codebook is
    fitted again after it; without one the first fit stands (a second would be identical)."""
    phases = []
    warm_codebook = bool(config.reconstructor_warmup and config.encoder_warmup)
    if config.reconstructor_warmup:
        if warm_codebook:
            phases.append(Phase("codebook@1", "codebook", 0))
        phases.append(Phase("reconstructor-warmup", "reconstructor-warmup", -1,
                            phase_steps(config, "reconstructor_warmup_steps", n_docs)))
    for t in range(levels):
        if config.encoder_warmup:
            steps = phase_steps(config, "encoder_warmup_steps", n_docs)
            if steps:
                phases.append(Phase(f"encoder-warmup@{t + 1}", "encoder-warmup", t, steps))
            if not (t == 0 and warm_codebook and not steps):
                name = f"codebook@{t + 1}" + (" (refit)" if t == 0 and warm_codebook else "")
                phases.append(Phase(name, "codebook", t))
        phases.append(Phase(f"train@{t + 1}", "train", t, phase_steps(config, "position_steps", n_docs)))
    return phases


def hint_ratio(config: Any, position: int) -> float:
    """Hint ratio of ``position`` (-1: the reconstructor warm-up's ``warmup_hint_ratio``);
    positions past the list reuse its last value."""
    if position < 0:
        return float(config.warmup_hint_ratio)
    ratios = config.parsed_hint_ratios()
    return ratios[min(max(position, 0), len(ratios) - 1)]


@dataclass
class State:
    codes: np.ndarray  # (N, t): the codes fixed so far
    anchor: np.ndarray | None = None  # (N,): the k-means codes of the position being learned
    picks: np.ndarray | None = None  # (N,): the frozen indexer's codes there (the warm-up's IDs)
    done: int = 0  # phases completed
    curves: list[dict[str, float]] = field(default_factory=list)  # diagnostics through training
    phases: list[dict[str, Any]] = field(default_factory=list)  # one summary per phase done


class SelfSupervisedTraining:
    """Runs the phases on one backbone (ID tokens added) over one tokenised corpus."""

    def __init__(self, backbone, doc_tokens: Sequence[list[int]], config: Any, levels: int, ctx: Any,
                 checkpoint_dir: Path | None = None, first_codebook_input: np.ndarray | None = None,
                 category_labels: Sequence[Any] | None = None):
        self.backbone = backbone
        # Each document's level-2 category (None where its path is shorter), for a diagnostic
        # only: the AMI of every codebook fit and every assignment, so a controlled run can see
        # which phase gains or loses categories. Training never reads them.
        self.category_labels = category_labels
        # When given (the ``first_codebook=ENCODER`` oracle), codebook@1 clusters these document
        # embeddings instead of the model's own h^1: the two-stage indexers' input.
        self.first_codebook_input = first_codebook_input
        self.doc_tokens = list(doc_tokens)
        self.config = config
        self.levels = levels
        self.ctx = ctx
        self.checkpoint_dir = checkpoint_dir
        self.codebook_size = backbone.vocabulary.codebook_sizes[0]
        self.base = backbone.vocabulary.base
        word = backbone.model.get_encoder().get_input_embeddings().weight[: self.base]
        feature_dim = backbone.output_head().weight.shape[1]
        encoder = backbone.model.get_encoder()
        from_encoder = config.reconstructor_init == "encoder"
        heads = getattr(encoder.config, "num_attention_heads", 0) if from_encoder else 0
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(ctx.seed)
            self.reconstructor = Reconstructor(
                word.shape[1], feature_dim, self.base, layers=config.reconstructor_layers, heads=heads,
                max_length=min(backbone.text.max_positions, 512),
                predictable=np.unique(np.concatenate([np.asarray(t, dtype=np.int64) for t in doc_tokens])),
                query_positions=config.query_positions,
            )
        self.reconstructor_from_encoder = from_encoder and init_from_bert(self.reconstructor, encoder)
        self.reconstructor.to(backbone.device)
        self.special_ids = torch.tensor(sorted(set(backbone.tokenizer.all_special_ids)), device=backbone.device)
        self.unigram_logp, self.unigram_entropy = self._unigram()
        with torch.no_grad():
            # The output bias starts as the corpus's unigram log-probabilities: the reconstructor
            # starts at the unigram baseline and all it learns goes below it. (From zero, at
            # lr 1e-3, the bias alone needs thousands of steps to span the ~10 nats between
            # frequent and rare tokens; 272 warm-up steps ended 0.3 nats below unigram.)
            finite = torch.isfinite(self.unigram_logp)
            floor = float(self.unigram_logp[finite].min()) if bool(finite.any()) else 0.0
            self.reconstructor.out_bias.copy_(self.unigram_logp.clamp(min=floor))
        n = len(self.doc_tokens)
        rng = np.random.default_rng(ctx.seed)
        take = min(n, max(int(config.diagnostics_documents), 0))
        self.sample = np.sort(rng.choice(n, take, replace=False)) if take else np.arange(0)
        self.phases = plan_phases(config, levels, n)
        self.state = State(codes=np.zeros((n, 0), dtype=np.int64))

    # ----------------------------------------------------------------- pieces

    def _unigram(self) -> tuple[torch.Tensor, float]:
        """The corpus's unigram log-probabilities over the reconstructor's output vocabulary
        (special tokens excluded: they are never predicted), and their entropy in nats -- the
        loss of a reconstructor that ignores both the IDs and the hints."""
        every = torch.as_tensor(np.concatenate([np.asarray(t, dtype=np.int64) for t in self.doc_tokens]))
        every = every[~torch.isin(every, self.special_ids.cpu())]
        counts = torch.bincount(self.reconstructor.lookup.cpu()[every], minlength=len(self.reconstructor.predictable))
        p = counts.double() / counts.sum()
        logp = torch.where(counts > 0, p.clamp(min=1e-300).log(), torch.full_like(p, -math.inf))
        entropy = float(-(p[counts > 0] * logp[counts > 0]).sum())
        return logp.float().to(self.backbone.device), entropy

    def _word_embeddings(self, phase: Phase):
        """W of Eq. 5: the encoder's token embeddings, text rows only. Trained through the
        reconstructor after the warm-up (``train_word_embeddings``, as the paper's tied W);
        during the warm-up the indexer, W included, is frozen."""
        weight = self.backbone.model.get_encoder().get_input_embeddings().weight[: self.base]
        if phase.kind == "reconstructor-warmup" or not self.config.train_word_embeddings:
            return weight.detach()
        return weight

    def codebook(self, position: int):
        """E^t: the output head's ID-token rows of ``position``."""
        return self.backbone.output_head().weight[self.backbone.vocabulary.rows(position)]

    def _collate(self, rows):
        ids, mask = self.backbone.text.collate([self.doc_tokens[i] for i in rows], self.backbone.device)
        return ids, mask, torch.isin(ids, self.special_ids)

    def _semantic_state(self, ids, mask, prefix):
        """Decoder states (B, t+1, D) of the semantic indexer for the documents and ID prefixes."""
        with self.backbone.autocast():
            return prefix_states(self.backbone, ids, mask, prefix).float()

    def _forward(self, phase: Phase, rows, generator: torch.Generator, shard: bool = False):
        """The losses of one batch (a dict of scalar tensors) and the reconstruction outputs.

        ``shard`` (training under torchrun): this process computes its shard of the batch and
        each loss is its share of the whole batch's (`indexbench.distributed`), so the summed
        gradients are one process's. The hints are drawn for the whole batch first, so every
        process sees the draws one process would."""
        backbone = self.backbone
        ids, mask, special = self._collate(rows)
        targets, visible = sample_visibility(mask, special, hint_ratio(self.config, phase.position), generator)
        word = self._word_embeddings(phase)
        losses: dict[str, torch.Tensor] = {}
        batch_rows, share = np.asarray(rows), 1.0
        recon = reconstruction_loss
        if shard and distributed.world_size() > 1:
            mine = distributed.shard_indices(len(rows))
            share, tokens = distributed.shard_share(len(rows)), int(targets.sum())
            pick = torch.as_tensor(mine, device=ids.device)
            rows = batch_rows[mine]
            ids, mask, targets, visible = ids[pick], mask[pick], targets[pick], visible[pick]

            def recon(logits, wanted):  # this shard's tokens over the whole batch's count
                if wanted.numel() == 0 or share == 0:
                    return logits.sum() * 0.0
                return torch.nn.functional.cross_entropy(logits.float(), wanted, reduction="sum") / tokens
        if phase.kind == "reconstructor-warmup":
            # Eq. 12 with the frozen indexer's IDs: the rows of the codes it picks at position 1.
            codes = torch.as_tensor(self.state.picks[rows], device=backbone.device)
            vectors = self.codebook(0).detach()[codes].float()[:, None]
            logits, wanted = self.reconstructor(vectors, ids, targets, visible, word)
            losses["reconstruction"] = recon(logits, wanted)
            return losses, logits, wanted, None
        t = phase.position
        prefix = torch.as_tensor(self.state.codes[rows, :t], device=backbone.device)
        hidden = self._semantic_state(ids, mask, prefix)
        h = backbone.head_features(hidden[:, t]).float()
        logits_t = backbone.position_logits(hidden[:, t], t).float()
        # F.embedding, not codebook[codes]: a repeatable gradient to the codebook rows (see
        # Reconstructor.streams).
        vectors = [torch.nn.functional.embedding(prefix[:, j], self.codebook(j)).float() for j in range(t)]
        if phase.kind == "encoder-warmup":
            vectors.append(h)  # Eq. 13: no t-th codebook yet
        else:
            vectors.append(straight_through(logits_t, self.codebook(t)))
        logits, wanted = self.reconstructor(torch.stack(vectors, dim=1), ids, targets, visible, word)
        losses["reconstruction"] = recon(logits, wanted)
        if self.config.contrastive and torch.is_grad_enabled():
            positive = h
            if self.config.contrastive_positive == "dropout":
                # SimCSE: the same documents through the indexer again, other dropout masks.
                with torch.no_grad():
                    positive = backbone.head_features(self._semantic_state(ids, mask, prefix)[:, t]).float()
            if shard and distributed.world_size() > 1:  # in-batch negatives across the processes
                n = len(batch_rows)
                losses["contrastive"] = prefix_contrastive_loss(
                    distributed.gather_batch(h, n), distributed.gather_batch(positive, n),
                    torch.as_tensor(self.state.codes[batch_rows, :t], device=backbone.device),
                    self.config.contrastive_temperature) / distributed.world_size()
            else:
                losses["contrastive"] = prefix_contrastive_loss(h, positive, prefix,
                                                                self.config.contrastive_temperature)
        if phase.kind == "train" and self.config.code_anchor > 0 and self.state.anchor is not None:
            target = torch.as_tensor(self.state.anchor[rows], device=backbone.device)
            losses["anchor"] = self.config.code_anchor * share * torch.nn.functional.cross_entropy(logits_t, target)
        if self.config.commitment and t > 0:
            losses["commitment"] = share * commitment_loss(
                [backbone.position_logits(hidden[:, j], j) for j in range(t)], prefix)
        return losses, logits, wanted, logits_t.argmax(dim=-1)

    # ----------------------------------------------------------------- batches

    def _prefix_groups(self, t: int) -> np.ndarray:
        """(N,) int: which group of documents sharing their first ``t`` fixed codes each is in."""
        _, group = np.unique(self.state.codes[:, :t], axis=0, return_inverse=True)
        return np.asarray(group).reshape(-1)

    def _plan(self, phase: Phase, rng: np.random.Generator) -> list[np.ndarray]:
        """Batches of document rows. From the second position on, documents sharing their ID
        prefix sit in the same batches (prefixes in random order), so the contrastive loss --
        which only compares documents with the same prefix -- has pairs to work on."""
        n, size = len(self.doc_tokens), int(self.config.index_batch_size)
        plan: list[np.ndarray] = []
        while len(plan) < phase.steps:
            if phase.position <= 0:
                order = rng.permutation(n)
            else:
                group = self._prefix_groups(phase.position)
                shuffled = rng.permutation(group.max() + 1)[group]
                order = np.lexsort((rng.random(n), shuffled))
            chunks = [order[i : i + size] for i in range(0, n, size)]
            plan.extend(chunks[i] for i in rng.permutation(len(chunks)))
        return plan[: phase.steps]

    # ----------------------------------------------------------------- diagnostics

    def diagnose(self, phase: Phase) -> dict[str, float]:
        """How well the reconstructor does on the fixed sample of documents (fixed hints): its
        loss beside the unigram baseline's on the same tokens, top-1 accuracy and macro-F1; and
        the perplexity and diff ratio of the codes the model would pick at the phase's position."""
        from sklearn.metrics import f1_score

        if not len(self.sample):
            return {}
        if phase.kind == "reconstructor-warmup" and self.state.picks is None:
            return {}
        model = self.backbone.model
        model.eval()
        self.reconstructor.eval()
        generator = torch.Generator().manual_seed(self.ctx.seed + 7919)
        predicted, truth, picks = [], [], []
        loss_sum = unigram_sum = 0.0
        try:
            with torch.inference_mode():
                for lo in range(0, len(self.sample), self.config.eval_batch_size):
                    rows = self.sample[lo : lo + self.config.eval_batch_size]
                    _, logits, targets, pick = self._forward(phase, rows, generator)
                    if targets.numel():
                        loss_sum += float(torch.nn.functional.cross_entropy(logits.float(), targets, reduction="sum"))
                        unigram_sum += float(-self.unigram_logp[targets].sum())
                    predicted.append(logits.argmax(dim=-1).cpu())
                    truth.append(targets.cpu())
                    if pick is not None:
                        picks.append(pick.cpu())
        finally:
            model.train()
            self.reconstructor.train()
        truth_all, predicted_all = torch.cat(truth).numpy(), torch.cat(predicted).numpy()
        n = max(len(truth_all), 1)
        out = {"reconstruction_loss": loss_sum / n, "unigram_loss": unigram_sum / n,
               "nats_below_unigram": (unigram_sum - loss_sum) / n,
               "top1": float(np.mean(truth_all == predicted_all)) if len(truth_all) else 0.0,
               "macro_f1": float(f1_score(truth_all, predicted_all, average="macro", zero_division=0))
               if len(truth_all) else 0.0}
        if picks and phase.kind != "encoder-warmup":  # no t-th codebook during Eq. 13
            t = phase.position
            codes = np.concatenate([self.state.codes[self.sample, :t], torch.cat(picks).numpy()[:, None]], axis=1)
            out.update(_position_usage(codes, self.codebook_size, t))
        return out

    # ----------------------------------------------------------------- phases

    def _train(self, phase: Phase, index: int) -> dict[str, Any]:
        backbone, config = self.backbone, self.config
        rng = np.random.default_rng([self.ctx.seed, index])
        generator = torch.Generator().manual_seed(int(rng.integers(2**31)))
        plan = self._plan(phase, rng)
        if phase.kind == "reconstructor-warmup" and self.state.picks is None:
            # No k-means codebook before the warm-up (the encoder_warmup=false ablation): the
            # IDs come from the untouched codebook rows.
            _, self.state.picks = decoder_features(backbone, self.doc_tokens, self.state.codes[:, :0],
                                                   batch_size=config.eval_batch_size, progress=self.ctx.progress,
                                                   description="lmindexer: warm-up IDs of every document")
        if phase.kind == "reconstructor-warmup":
            named = [("reconstructor." + n, p) for n, p in self.reconstructor.named_parameters()]
        else:
            named = [*backbone.model.named_parameters(),
                     *(("reconstructor." + n, p) for n, p in self.reconstructor.named_parameters())]
        optimisation = adamw(named, lr=config.index_lr, total_steps=len(plan), warmup_ratio=0.1,
                             weight_decay=config.weight_decay, max_grad_norm=config.max_grad_norm,
                             fresh=lambda n: n.startswith("reconstructor.") or backbone.is_fresh(n),
                             fresh_lr=config.index_fresh_lr, data_parallel=True)
        sums: dict[str, float] = {}
        every = int(config.diagnostics_every)
        on_cuda = backbone.on_cuda
        last: dict[str, float] = {}
        if every > 0:  # where the phase starts from
            last = self.diagnose(phase)
            self.state.curves.append({"phase": phase.name, "step": 0, "global_step": self._global_step(), **last})
        backbone.model.train()
        self.reconstructor.train()
        with torch.random.fork_rng(devices=[torch.device(backbone.device)] if on_cuda else [],
                                   device_type="cuda" if on_cuda else "cpu"):
            torch.manual_seed(int(rng.integers(2**31)))  # dropout
            try:
                with self.ctx.progress.task(f"lmindexer: {phase.name}", total=len(plan)) as bar:
                    for step, rows in enumerate(plan, start=1):
                        losses, *_ = self._forward(phase, rows, generator, shard=True)
                        optimisation.step(sum(losses.values()))
                        # under torchrun each process holds its share: the sum is the batch's
                        losses = {k: distributed.all_reduce_sum(float(v.detach()), v.device)
                                  for k, v in losses.items()}
                        for k, v in losses.items():
                            sums[k] = sums.get(k, 0.0) + v
                        bar.advance(1)
                        bar.set_status(" ".join(f"{k[:5]} {v:.3f}" for k, v in losses.items()))
                        if every > 0 and (step % every == 0 or step == len(plan)):
                            last = self.diagnose(phase)
                            self.state.curves.append({"phase": phase.name, "step": step,
                                                      "global_step": self._global_step() + step,
                                                      **losses,
                                                      **last})
            finally:
                optimisation.release()
                backbone.model.eval()
        reconstruction = {k: last[k] for k in RECONSTRUCTION_DIAGNOSTICS if k in last}
        return {"steps": len(plan), **{f"mean_{k}": v / max(len(plan), 1) for k, v in sums.items()},
                **reconstruction}

    def _global_step(self) -> int:
        return sum(p.get("steps", 0) for p in self.state.phases)

    def _codebook(self, phase: Phase) -> dict[str, Any]:
        """E^t ← k-means of {h_d^t}: spherical k-means of the centred features, whose centroids
        `set_code_rows` turns into ID-token rows that score the centred features (through the
        head's bias). At the first position the model's argmax then reproduces the k-means
        assignment (99.4 % of amazon-scientific items).

        From the second position on, the features are centred *within each prefix group*: h^t
        is dominated by the prefix it was decoded from, so k-means of the raw features would
        only re-learn the first position (on amazon-scientific the second codes then told apart
        8.7 % of the pairs sharing a first code, and 99 % of the items shared their 2-prefix).
        The residuals are what distinguishes documents under one prefix -- the part the
        contrastive loss of Eq. 9 works on. A global bias cannot subtract a per-prefix mean, so
        here the rows do not reproduce the codes at the start (the reported ``accuracy`` is that
        of the residuals); the model learns them through ``code_anchor`` during train@t (42 % of
        amazon items on their k-means code after 60 steps, ``anchor_agreement``)."""
        t = phase.position
        features, _ = decoder_features(self.backbone, self.doc_tokens, self.state.codes[:, :t],
                                       batch_size=self.config.eval_batch_size, progress=self.ctx.progress,
                                       description=f"lmindexer: h^{t + 1} of every document")
        if t > 0:
            group = torch.as_tensor(self._prefix_groups(t))
            prefix_means, _ = group_means(features, group, int(group.max()) + 1)
            centred = features - prefix_means[group]
        else:
            centred = features - features.mean(dim=0, keepdim=True)
        clustered = centred
        if t == 0 and self.first_codebook_input is not None:
            given = torch.as_tensor(self.first_codebook_input, dtype=torch.float32)
            clustered = given - given.mean(dim=0, keepdim=True)
        unit = torch.nn.functional.normalize(clustered, dim=1).numpy()
        _, assignment = kmeans(unit, self.codebook_size, seed=self.ctx.seed, spherical=True)
        self.state.anchor = np.asarray(assignment, dtype=np.int64)
        report = self._category_ami(t, self.state.anchor, "kmeans_category_ami")
        report |= set_code_rows(self.backbone, t, centred if t > 0 else features, assignment, seed=self.ctx.seed,
                               require_signal=False, centre=True)
        with torch.no_grad():  # what the indexer now picks (the IDs the warm-up reads)
            self.state.picks = self.backbone.feature_logits(features, t).argmax(dim=-1).cpu().numpy()
        return {"kmeans_clusters": int(len(np.unique(assignment))), **report}

    def _category_ami(self, t: int, codes: np.ndarray, name: str) -> dict[str, float]:
        """{name: AMI between the level-2 categories and the t+1-prefixes these codes complete},
        over the documents that have one; {} without categories."""
        from indexbench.metrics import ami

        if self.category_labels is None:
            return {}
        rows = [i for i, label in enumerate(self.category_labels) if label is not None]
        if len(rows) < 2:
            return {}
        prefixes = [(*self.state.codes[i, :t].tolist(), int(codes[i])) for i in rows]
        return {name: ami([self.category_labels[i] for i in rows], prefixes)}

    def _assign(self, t: int) -> dict[str, Any]:
        """c^t ← argmax P_s for every document; and how well the model still predicts the
        earlier positions' fixed codes (Table 2's "perplexity of the previously learned IDs")."""
        _, picks = decoder_features(self.backbone, self.doc_tokens, self.state.codes[:, :t],
                                    batch_size=self.config.eval_batch_size, progress=self.ctx.progress,
                                    description=f"lmindexer: c^{t + 1} of every document")
        report: dict[str, Any] = {}
        for j in range(t):
            _, earlier = decoder_features(self.backbone, self.doc_tokens, self.state.codes[:, :j],
                                          batch_size=self.config.eval_batch_size)
            usage = _position_usage(np.concatenate([self.state.codes[:, :j], earlier[:, None]], axis=1),
                                    self.codebook_size, j)
            report[f"previous_perplexity@{j + 1}"] = usage["perplexity"]
            report[f"previous_agreement@{j + 1}"] = float(np.mean(earlier == self.state.codes[:, j]))
        if self.state.anchor is not None:  # how many documents kept their k-means code
            report["anchor_agreement"] = float(np.mean(picks == self.state.anchor))
        report.update(self._category_ami(t, picks, "category_ami"))
        self.state.codes = np.concatenate([self.state.codes, picks[:, None]], axis=1)
        self.state.anchor = self.state.picks = None
        report.update(_position_usage(self.state.codes, self.codebook_size, t))
        return report

    def run(self) -> State:
        self._resume()
        for index, phase in enumerate(self.phases):
            if index < self.state.done:
                continue
            started = time.perf_counter()
            if phase.kind == "codebook":
                summary = self._codebook(phase)
            else:
                summary = self._train(phase, index)
                if phase.kind == "train":
                    summary.update(self._assign(phase.position))
            summary = {"phase": phase.name, "seconds": time.perf_counter() - started, **summary}
            self.state.phases.append(summary)
            self.state.done = index + 1
            self.ctx.progress.log("lmindexer: " + _describe(summary))
            self._checkpoint()
        return self.state

    # ----------------------------------------------------------------- checkpoints

    def _checkpoint(self) -> None:
        if self.checkpoint_dir is None:
            return
        self.checkpoint_dir.mkdir(parents=True, exist_ok=True)
        tmp = self.checkpoint_dir / (CHECKPOINT + ".tmp")
        torch.save({"done": self.state.done, "codes": self.state.codes, "anchor": self.state.anchor,
                    "picks": self.state.picks,
                    "curves": self.state.curves,
                    "phases": self.state.phases, "backbone": self.backbone.state_dict(),
                    "reconstructor": self.reconstructor.state_dict()}, tmp)
        os.replace(tmp, self.checkpoint_dir / CHECKPOINT)  # atomic: never a half-written state

    def _resume(self) -> None:
        path = self.checkpoint_dir / CHECKPOINT if self.checkpoint_dir is not None else None
        if path is None or not path.exists():
            return
        saved = torch.load(path, map_location=self.backbone.device, weights_only=False)
        self.backbone.load_state_dict(saved["backbone"])
        self.reconstructor.load_state_dict(saved["reconstructor"])
        self.state = State(codes=np.asarray(saved["codes"], dtype=np.int64), done=int(saved["done"]),
                           anchor=saved.get("anchor"), picks=saved.get("picks"),
                           curves=list(saved["curves"]), phases=list(saved["phases"]))
        self.ctx.progress.log(f"lmindexer: resuming after {self.phases[self.state.done - 1].name} "
                              f"({self.state.done}/{len(self.phases)} phases done)")


def _position_usage(codes: np.ndarray, codebook_size: int, t: int) -> dict[str, float]:
    """perplexity@t and diff_ratio@t (1-based) of an (N, t+1) code array, by the core's
    definitions (`indexbench.metrics.id_diagnostics`)."""
    ids = SemanticIds({str(i): tuple(int(c) for c in row) for i, row in enumerate(codes)},
                      codebook_sizes=(codebook_size,) * codes.shape[1])
    stats = id_diagnostics(ids)
    return {key: stats[f"{key}@{t + 1}"] for key in ("perplexity", "diff_ratio", "utilization")}


def _describe(summary: dict[str, Any]) -> str:
    parts = [f"{summary['phase']} done in {summary['seconds']:.0f} s"]
    parts += [f"{k}={v:.3f}" for k, v in summary.items() if isinstance(v, float) and k != "seconds"]
    return ", ".join(parts)

__all__ = ["AUTO_STEPS", "PAPER_PRESET", "SCHEDULES", "Phase", "SelfSupervisedTraining", "State", "hint_ratio", "phase_steps", "plan_phases"]
