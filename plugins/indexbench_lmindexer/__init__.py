"""``lmindexer``: self-supervised semantic IDs learned by a generative language model (LMIndexer,
Jin et al., ICML 2024 -- the paper this project reproduces).

The semantic indexer is the generative engine's own backbone (``backbone`` option,
``minilm-encdec`` by default): the decoder state at ID position t, given the document and the
ID prefix, is h_d^t (Eq. 1); the codebook E^t of position t is that backbone's ID-token rows, so
c_d^t = argmax_j h_d^t · e_j^t (Eq. 2-3) is exactly the distribution the engine later decodes
with. A shallow reconstructor recovers masked document tokens from the ID vectors and a few hint
tokens (Eq. 4-8); contrastive (Eq. 9) and commitment (Eq. 10) losses join it (Eq. 11), and
Algorithm 1's schedule -- reconstructor warm-up, then per position an encoder warm-up without the
new codebook, k-means codebook initialisation and full training, earlier codes fixed -- guards
against the two collapses of §3.2 (`_algorithm`). The last position de-duplicates, as for every
ID indexer here.

Downstream (Eq. 14), the engine fine-tunes *this* trained encoder-decoder with its codebooks as
the ID embeddings (`init_generative_model`), and `ids_for_texts` gives IDs to documents the
indexer never saw (zero-shot, App. A.10).

Where this differs from the paper's T5-base setup, and why:

* Backbone: all-MiniLM-L6-v2 as encoder plus a 2-layer decoder warm-started from its first layers
  (the only pretrained model available offline; T5-base is 10x the compute on a 2-core CPU).
  Any local T5 checkpoint works through ``backbone=/path``.
* Budget: the paper trains 30 epochs per Amazon dataset at batch 128 (``schedule=paper``); the
  CPU defaults (`_algorithm.SCHEDULES`) train the reconstructor alone for 8 epochs (capped at
  1,200 steps), then per position one epoch of encoder warm-up and 1.1 of training at batch 32
  -- on amazon-scientific 1,086 reconstructor-only steps + 2 x (136 + 150), 28 minutes on 2
  cores (benchmarks/LOG.md).
* Reconstructor (Eq. 5/7), as the authors' code has it and where the paper is silent: every
  token is predicted, each from its own random subset of the other tokens (never itself); the
  query is the ID vector, *normalised* before anything is added, and positions enter as a T5
  relative-position bias. Two starts of ours, each measured (benchmarks/LOG.md):
  the bias starts as a locality prior (`_model.locality_bias`; after 272 warm-up steps T5's
  near-zero start ended 0.55 nats below unigram on held-out items, this one 1.08) and the output
  bias as the corpus's unigram log-probabilities (with neither start: 0.28; at lr 1e-3 the bias
  alone needs thousands of steps to span the vocabulary's frequencies).
* Reconstructor warm-up (Eq. 12): conditioned on the IDs the frozen indexer picks with the
  k-means codebook of position 1, as in the authors' warm-up (frozen ID generator and codebook),
  so it learns what train@1 feeds it; the paper's equation has no ID at all. Its hints are the
  first position's 0.5 (``warmup_hint_ratio``), not the authors' all-but-the-target: on 256
  held-out items that reconstructor did better at its own context but worse on train@1's input.
* Contrastive loss (Eq. 9): the positive is the document's own h from a second, independently
  dropped-out pass (SimCSE, as the authors' code), computed without gradient (one backward pass
  a step, not two); negatives are the batch's documents sharing the prefix. Pairs are scored by
  cosine / temperature (0.1); ``contrastive_positive=self`` gives Eq. 9 as printed (h·h in the
  numerator, a constant for normalised h) and ``contrastive_temperature=0`` raw dot products.
* Objective and schedule: the paper's -- Eq. 13's encoder warm-up runs (one epoch a position on
  the CPU schedule) and nothing pulls the codes towards their k-means start. Measured against a
  ``code_anchor`` cross-entropy to the k-means codes (still an option, ``code_anchor=W``), the
  paper's objective scores as well or slightly higher in AMI on amazon-scientific, 0.014 lower
  on Beauty; without the encoder warm-up, unanchored training collapses onto few codes on both
  (benchmarks/LOG.md, "LMIndexer fidelity" and "Beauty: where LMIndexer's first position loses
  its categories").
* Codebook initialisation: k-means runs on the centred, normalised h^t (from t = 2 on, centred
  within each prefix group) and the centroids become rows of one norm fitted on held-out
  documents (`set_code_rows`): the raw features' dot products are in the hundreds, which
  saturates the softmax of Eq. 6 so no gradient would pass the straight-through look-up.

Importing this module is cheap: torch loads inside `assign_ids`.
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from indexbench import IndexerEntry, hookimpl, option
from indexbench.data import Corpus, SemanticIds, fingerprint_of
from indexbench.errors import ConfigError
from indexbench.generative import GenerativeOptions
from indexbench.id_indexers import DEDUP_POSITION, id_options, ids_from_codes, resolve_id_shape
from indexbench.options import check_options

# Part of the artifact key: bump it whenever a change alters the IDs or weights that training
# produces, so that cached results of the old algorithm are never reused for the new one.
__version__ = "0.3.2"

NAMESPACE = "lmindexer"


@dataclass
class LMIndexerConfig(GenerativeOptions):
    """Options of ``--indexer lmindexer:key=value:...``.

    ID shape (shared with every ID indexer): ``id_length`` (T, 0 = default 3), ``codebook_size``
    (K, 0 = the shared default for the corpus size). The generative engine's options
    (``backbone``, ``decoder_layers``, ``lr``, ``max_steps``, ...) pick the indexer's backbone
    too and tune the downstream fine-tuning.

    Self-supervised ID learning:

    * ``index_max_length`` -- document tokens the indexer reads and reconstructs.
    * ``index_batch_size``; ``index_lr`` (pretrained weights) and ``index_fresh_lr`` (the
      reconstructor, codebooks and other untrained weights).
    * ``schedule`` -- ``cpu`` (default) or ``paper``: Table 9's budget and objective for a GPU
      (`_algorithm.PAPER_PRESET`: 512 tokens, batch 128, lr 1e-3, 30 epochs a phase, encoder
      warm-up on, no code anchor); options left at their defaults take the preset's values.
    * ``reconstructor_warmup_steps`` (Eq. 12), ``encoder_warmup_steps`` (Eq. 13, per position),
      ``position_steps`` (Eq. 11, per position); 0 = auto, from the schedule
      (`_algorithm.SCHEDULES`; ``cpu``: 8 epochs capped at 1,200 reconstructor-only steps, then
      per position 1 epoch capped at 150 of encoder warm-up and 1.1 epochs capped at 150).
      ``encoder_warmup_steps=-1`` skips the encoder warm-up but keeps the k-means codebook
      initialisation (``encoder_warmup=false`` drops both).
    * ``hint_ratios`` -- fraction of the other tokens each prediction sees, per position,
      comma-separated (paper: 0.5,0.3); later positions reuse the last value. 1 = all but the
      target. ``warmup_hint_ratio`` -- the same for the reconstructor warm-up (0.5).
    * ``query_positions`` -- ``relative`` (T5 bias, default) or ``absolute`` (a position
      embedding added to the normalised ID query); see `_model.Reconstructor`.
    * ``reconstructor_init`` -- ``random`` (default, as in the paper) or ``encoder``: start the
      reconstructor's layers from the backbone encoder's first layer(s) when it is BERT-like
      (`_model.init_from_bert`).
    * ``train_word_embeddings`` -- whether the reconstruction loss trains W (the tied token
      embeddings) after the warm-up, as in the paper (default true).
    * ``contrastive_temperature`` -- Eq. 9 scores: cosine / temperature, or 0 for raw dot
      products; ``contrastive_positive`` -- ``dropout`` (SimCSE second pass, default) or
      ``self`` (Eq. 9 as printed).
    * ``code_anchor`` -- weight of a cross-entropy that keeps position t's codes on the k-means
      codes its codebook started from during train@t (0 = off, the default, as in the paper).
    * ``first_codebook`` -- what codebook@1's k-means clusters: ``features`` (the model's own
      h¹, Eq. 10; default) or an encoder name (``minilm``): that encoder's sentence embeddings
      of the documents (256 tokens), the input the two-stage indexers cluster. A diagnostic
      (an oracle input for the first position), not the paper's method.
    * ``diagnostics_every`` (steps) and ``diagnostics_documents`` -- the sample the training
      curves (reconstruction loss beside the unigram baseline, top-1, macro-F1, perplexity, diff
      ratio) are measured on.

    Ablation switches (paper Table 2, Fig. 4, Table 5): ``contrastive``, ``commitment``,
    ``reconstructor_warmup``, ``encoder_warmup`` (encoder warm-up and k-means codebook
    initialisation together), ``reconstructor_layers``.
    """

    id_length: int = option(0, ge=0)
    codebook_size: int = option(0, ge=0)
    index_max_length: int = option(64, ge=1)
    index_batch_size: int = option(32, ge=2)
    index_lr: float = option(1e-4, gt=0)
    index_fresh_lr: float = option(1e-3, gt=0)
    reconstructor_warmup_steps: int = option(0, ge=0)  # 0: auto
    encoder_warmup_steps: int = option(0, ge=-1)  # 0: auto, -1: none
    position_steps: int = option(0, ge=0)  # 0: auto
    hint_ratios: str = "0.5,0.3"
    warmup_hint_ratio: float = option(0.5, ge=0, le=1)
    query_positions: str = option("relative", choices=("relative", "absolute"))
    reconstructor_layers: int = option(1, ge=1)
    reconstructor_init: str = option("random", choices=("random", "encoder"))
    train_word_embeddings: bool = True
    contrastive: bool = True
    contrastive_temperature: float = option(0.1, ge=0)  # 0: raw dot products
    contrastive_positive: str = option("dropout", choices=("dropout", "self"))
    schedule: str = option("cpu", choices=("cpu", "paper"))
    commitment: bool = True
    code_anchor: float = option(0.0, ge=0)
    reconstructor_warmup: bool = True
    encoder_warmup: bool = True
    first_codebook: str = "features"
    diagnostics_every: int = option(50, ge=0)
    diagnostics_documents: int = option(512, ge=0)

    def parsed_hint_ratios(self) -> list[float]:
        try:
            ratios = [float(p) for p in str(self.hint_ratios).split(",") if p.strip()]
        except ValueError:
            ratios = []
        if not ratios or not all(0.0 <= r <= 1.0 for r in ratios):
            raise ConfigError(f"lmindexer option 'hint_ratios' expects comma-separated fractions in "
                              f"[0, 1] such as 0.5,0.3, got {self.hint_ratios!r}")
        return ratios

    def apply_schedule(self) -> None:
        """``schedule=paper``: every option still at its default takes `_algorithm.PAPER_PRESET`'s
        value (so ``schedule=paper:index_batch_size=64`` keeps its 64)."""
        if self.schedule != "paper":
            return
        from ._algorithm import PAPER_PRESET

        defaults = {f.name: f.default for f in dataclasses.fields(type(self))}
        for name, value in PAPER_PRESET.items():
            if getattr(self, name) == defaults[name]:
                setattr(self, name, value)

    def validate(self) -> None:
        """Rules across options and against the registry (`check_options` runs it)."""
        self.parsed_hint_ratios()
        if self.code_anchor > 0 and not self.encoder_warmup:
            raise ConfigError("lmindexer option 'code_anchor' pulls each position toward its k-means codes, "
                              "which encoder_warmup=false never computes; to drop only the warm-up's steps "
                              "and keep the codebooks, use encoder_warmup_steps=-1")
        if self.first_codebook != "features":
            from indexbench.errors import UnknownNameError
            from indexbench.registry import get_registry

            try:
                get_registry().encoder(self.first_codebook)
            except UnknownNameError as exc:
                raise ConfigError(f"lmindexer option 'first_codebook' is features or an encoder name: {exc}") from None


class LMIndexer:
    """Learns semantic IDs with a generative LM (Algorithm 1) and hands the engine its model."""

    name = "lmindexer"
    config_class = LMIndexerConfig
    collision_policy = DEDUP_POSITION  # its last position numbers items sharing the learned codes

    def __init__(self, config: LMIndexerConfig | None = None):
        self.config = config if config is not None else LMIndexerConfig()
        check_options(self.config, "indexer 'lmindexer'")
        self.config.apply_schedule()
        self.details: dict[str, Any] = {}
        self.fit_metrics: dict[str, float] = {}  # the reconstructor's final diagnostics (id-quality records them)
        self._trained: dict[str, Any] | None = None  # where the trained model is, once known

    # ----------------------------------------------------------------- ID learning

    def _key(self, corpus: Corpus, t: int, k: int, ctx) -> dict[str, Any]:
        cfg = self.config
        options = id_options(cfg)
        if options.get("first_codebook") == "features":  # the default: keys from before the option stay valid
            del options["first_codebook"]
        return {"corpus": corpus.fingerprint, "id_length": t, "codebook_size": k,
                "options": options, "backbone": cfg.backbone, "decoder_layers": cfg.decoder_layers,
                "seed": ctx.seed, "device": str(ctx.device).split(":")[0], "version": __version__}

    def _first_codebook_input(self, corpus: Corpus, ctx):
        """The documents' sentence embeddings for ``first_codebook=ENCODER`` (None for ``features``)."""
        if self.config.first_codebook == "features":
            return None
        from indexbench.encoders import encode_cached, make_encoder

        encoder = make_encoder(self.config.first_codebook, ctx.device)
        return encode_cached(encoder, corpus.texts, ctx.cache, max_length=256, progress=ctx.progress,
                             description=f"lmindexer: {encoder.name} embeddings for codebook@1")

    def _backbone(self, ctx, t: int, k: int):
        from indexbench.generative import load_backbone

        cfg = self.config
        backbone = load_backbone(cfg.backbone, device=ctx.device, seed=ctx.seed,
                                 decoder_layers=cfg.decoder_layers or None)
        backbone.add_id_tokens((k,) * t)
        return backbone

    def assign_ids(self, corpus: Corpus, ctx) -> SemanticIds:
        import numpy as np

        t, k = resolve_id_shape(self.config, len(corpus))
        key = self._key(corpus, t, k, ctx)
        started = time.perf_counter()
        checkpoints = ctx.cache.root / "lmindexer-checkpoints" / fingerprint_of(key) if ctx.cache.enabled else None

        def create(directory: Path) -> None:
            import shutil

            import torch

            from ._algorithm import SelfSupervisedTraining
            from ._plot import plot_curves

            backbone = self._backbone(ctx, t, k)
            tokens = backbone.text.tokenize(corpus.texts, max_length=self.config.index_max_length)
            labels = [d.categories[:2] if len(d.categories) >= 2 else None for d in corpus]
            training = SelfSupervisedTraining(backbone, tokens, self.config, t - 1, ctx, checkpoints,
                                              first_codebook_input=self._first_codebook_input(corpus, ctx),
                                              category_labels=labels if any(labels) else None)
            state = training.run()
            torch.save(backbone.state_dict(), directory / "model.pt")
            np.save(directory / "codes.npy", state.codes)
            report = {"phases": state.phases, "curves": state.curves, "backbone": backbone.identity,
                      "unigram_baseline_nats": training.unigram_entropy, "seconds": time.perf_counter() - started}
            (directory / "history.json").write_text(json.dumps(report))
            plot_curves(state.curves, directory / "diagnostics.png", title=f"lmindexer on {ctx.dataset_name or 'corpus'}")
            if checkpoints is not None:
                shutil.rmtree(checkpoints, ignore_errors=True)

        def load(directory: Path) -> tuple[Any, dict[str, Any]]:
            codes = np.load(directory / "codes.npy")
            report = json.loads((directory / "history.json").read_text())
            if ctx.cache.enabled:
                self._trained = {"path": directory / "model.pt", "identity": report["backbone"]}
            else:  # the directory is temporary: keep the weights in memory
                import torch

                self._trained = {"state": torch.load(directory / "model.pt", map_location="cpu"),
                                 "identity": report["backbone"]}
            plot = directory / "diagnostics.png"
            report["plot"] = str(plot) if ctx.cache.enabled and plot.exists() else None
            return codes, report

        codes, report = ctx.cache.get_or_create(NAMESPACE, key, create, load)
        self._trained["key"] = fingerprint_of(key)
        ids, stats = ids_from_codes(corpus.ids, codes, k)
        self.details = {
            "id_length": t, "codebook_size": k, "options": id_options(self.config),
            "backbone": self.config.backbone, **stats,
            "training_s": report["seconds"], "assign_ids_s": time.perf_counter() - started,
            "phases": report["phases"], "curves": report["curves"], "plot": report["plot"],
            "unigram_baseline_nats": report.get("unigram_baseline_nats"),
        }
        self.fit_metrics = reconstruction_fit(report["phases"])
        return ids

    # ----------------------------------------------------------------- downstream

    @property
    def generative_init_key(self) -> str | None:
        """Part of the engine's cache key: which trained indexer the fine-tuning started from."""
        return None if self._trained is None else self._trained["key"]

    def init_generative_model(self, backbone, ids: SemanticIds, ctx) -> None:
        """Start the engine's fine-tuning (Eq. 14) from the trained semantic indexer: its
        encoder-decoder, and its codebooks as the ID-token embeddings."""
        import torch

        if self._trained is None:
            raise RuntimeError("lmindexer: assign_ids must run before init_generative_model")
        if backbone.identity != self._trained["identity"]:
            raise ConfigError(f"lmindexer learned its IDs with backbone {self._trained['identity']}, "
                              f"but the generative engine loaded {backbone.identity}")
        state = self._trained.get("state")
        if state is None:
            state = torch.load(self._trained["path"], map_location=backbone.device)
        backbone.load_state_dict(state)

    def ids_for_texts(self, texts: list[str], ctx) -> Any:
        """Semantic codes (N, T-1) the trained indexer gives texts it never saw (zero-shot,
        App. A.10): the greedy argmax of P_s position by position. Call `assign_ids` first."""
        import numpy as np

        from indexbench.generative import decoder_features

        if self._trained is None:
            raise RuntimeError("lmindexer: assign_ids must run before ids_for_texts")
        t, k = self.details["id_length"], self.details["codebook_size"]
        backbone = self._backbone(ctx, t, k)
        self.init_generative_model(backbone, None, ctx)
        tokens = backbone.text.tokenize(list(texts), max_length=self.config.index_max_length)
        codes = np.zeros((len(tokens), 0), dtype=np.int64)
        for _ in range(t - 1):
            _, picks = decoder_features(backbone, tokens, codes, batch_size=self.config.eval_batch_size)
            codes = np.concatenate([codes, picks[:, None]], axis=1)
        return codes

    def __repr__(self) -> str:
        return f"LMIndexer({dataclasses.asdict(self.config)})"


def reconstruction_fit(phases: list[dict[str, Any]]) -> dict[str, float]:
    """How well the reconstructor reconstructs when training ends: its loss below the corpus
    unigram's (nats a token) and its token macro-F1 -- Fig. 4(a)'s measure of reconstructor
    collapse, what the warm-up of Eq. 12 exists to prevent -- from the last phase that measured
    them."""
    measured = [p for p in phases if "nats_below_unigram" in p]
    if not measured:
        return {}
    last = measured[-1]
    return {"reconstruction_nats_below_unigram": float(last["nats_below_unigram"]),
            "reconstruction_macro_f1": float(last["macro_f1"])}


@hookimpl
def register_indexers(register):
    register(IndexerEntry(
        name="lmindexer",
        factory=LMIndexer,
        config_class=LMIndexerConfig,
        description="self-supervised semantic IDs learned by a generative LM with discrete "
        "auto-reconstruction (the paper's method); fine-tunes its own indexer downstream",
        kind="ids",
    ))


__all__ = ["LMIndexer", "LMIndexerConfig", "register_indexers"]
