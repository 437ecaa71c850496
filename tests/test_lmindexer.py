"""LMIndexer (the ``lmindexer`` plugin): each loss against a hand-computed value, the
straight-through look-up, the schedule end to end on the tiny backbone, resuming, and the
downstream hand-over to the generative engine."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from indexbench.cache import ArtifactCache
from indexbench.data import Corpus, Document
from indexbench.errors import ConfigError
from indexbench.generative.decoding import decoder_inputs
from indexbench.protocols import QuerySet, RetrievalProblem, RunContext
from indexbench.registry import get_registry

WORDS = ["pipette tips sterile lab", "safety gloves nitrile", "drill bits cobalt steel",
         "soldering iron station", "glass beakers borosilicate", "cable ties nylon"]

# Tiny backbone, few steps: the whole schedule in seconds. K = 64 >= N, so even fully collapsed
# codes de-duplicate (a random 32-wide model has little to tell documents apart by).
FAST = dict(backbone="tiny", codebook_size=64, reconstructor_warmup_steps=3, encoder_warmup_steps=3,
            position_steps=4, index_batch_size=8, diagnostics_every=2, diagnostics_documents=12,
            eval_batch_size=16)


def small_corpus(n: int = 30) -> Corpus:
    return Corpus(Document(id=f"d{i}", text=f"{WORDS[i % len(WORDS)]} model {i} pack of {i % 5 + 1}")
                  for i in range(n))


def make(**options):
    entry = get_registry().indexer("lmindexer")
    return entry.factory(entry.config_class(**{**FAST, **options}))


# --------------------------------------------------------------------------- losses


def test_straight_through_is_the_argmax_row_forward_and_the_softmax_mix_backward():
    from indexbench_lmindexer._model import straight_through

    logits = torch.tensor([[2.0, 0.0, 1.0]], requires_grad=True)
    codebook = torch.tensor([[1.0, 0.0], [0.0, 1.0], [2.0, 2.0]], requires_grad=True)
    out = straight_through(logits, codebook)
    assert out.tolist() == [[1.0, 0.0]]  # row of argmax = 0
    g = torch.tensor([[1.0, -1.0]])
    (out * g).sum().backward()
    # d/dlogits of softmax(l) @ E @ g = p * (E g - p·E g)
    p = torch.softmax(torch.tensor([2.0, 0.0, 1.0]), 0)
    eg = torch.tensor([1.0, -1.0, 0.0])
    expected = p * (eg - (p * eg).sum())
    assert torch.allclose(logits.grad[0], expected, atol=1e-6)
    assert torch.allclose(codebook.grad, p[:, None] * g, atol=1e-6)  # d/dE = p g^T


def test_contrastive_loss_is_its_positive_pair_against_the_documents_sharing_the_prefix():
    from indexbench_lmindexer._model import prefix_contrastive_loss

    h = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    positive = torch.tensor([[2.0, 0.0], [1.0, 1.0], [0.0, 1.0]])
    prefixes = torch.tensor([[0], [0], [1]])
    # raw dot products: documents 0 and 1 share a prefix; 2 is alone, so its loss is 0
    sims = h @ positive.T
    expected = (torch.logsumexp(sims[0, :2], 0) - sims[0, 0] + torch.logsumexp(sims[1, :2], 0) - sims[1, 1]) / 3
    assert prefix_contrastive_loss(h, positive, prefixes, 0.0).item() == pytest.approx(expected.item(), rel=1e-6)
    # cosine / 0.5
    cos = torch.nn.functional.normalize(h, dim=1) @ torch.nn.functional.normalize(positive, dim=1).T / 0.5
    expected = (torch.logsumexp(cos[0, :2], 0) - cos[0, 0] + torch.logsumexp(cos[1, :2], 0) - cos[1, 1]) / 3
    assert prefix_contrastive_loss(h, positive, prefixes, 0.5).item() == pytest.approx(expected.item(), rel=1e-6)
    # an empty prefix (the first position): everyone is a negative of everyone
    empty = torch.zeros((3, 0), dtype=torch.long)
    expected = float(np.mean([torch.logsumexp(sims[i], 0).item() - sims[i, i].item() for i in range(3)]))
    assert prefix_contrastive_loss(h, positive, empty, 0.0).item() == pytest.approx(expected, rel=1e-6)
    # the positive pair is what the loss pulls together: gradient reaches h through it
    h = h.clone().requires_grad_()
    prefix_contrastive_loss(h, positive, empty, 0.5).backward()
    assert h.grad.abs().sum() > 0


def test_commitment_loss_sums_the_earlier_positions_cross_entropy():
    from indexbench_lmindexer._model import commitment_loss

    first = torch.tensor([[2.0, 0.0], [0.0, 1.0]])
    second = torch.tensor([[0.0, 0.0], [3.0, 0.0]])
    prefixes = torch.tensor([[0, 1], [1, 0]])
    expected = (math.log(1 + math.exp(-2)) + math.log(1 + math.exp(-1))) / 2 \
        + (math.log(2) + math.log(1 + math.exp(-3))) / 2
    assert commitment_loss([first, second], prefixes).item() == pytest.approx(expected, rel=1e-6)
    assert commitment_loss([], prefixes[:, :0]).item() == 0.0


def test_every_ordinary_token_is_a_target_and_no_prediction_sees_its_own_token():
    from indexbench_lmindexer._model import sample_visibility

    tokens = torch.tensor([[101, 7, 8, 9, 102, 0], [101, 5, 6, 102, 0, 0]])
    mask = (tokens != 0).long()
    special = torch.isin(tokens, torch.tensor([0, 101, 102]))
    targets, visible = sample_visibility(mask, special, 0.5, torch.Generator().manual_seed(0))
    assert targets.tolist() == [[False, True, True, True, False, False], [False, True, True, False, False, False]]
    assert not visible.diagonal(dim1=1, dim2=2).any()  # never its own token
    assert not visible[~mask.bool()[:, None, :].expand_as(visible)].any()  # never padding
    real_special = (special & mask.bool())[:, None, :].expand_as(visible).clone()
    real_special &= ~torch.eye(6, dtype=torch.bool)
    assert visible[real_special].all()  # [CLS] and [SEP] always
    # ratio 1: every other real token (the warm-up's context); ratio 0: the special tokens only
    _, everything = sample_visibility(mask, special, 1.0)
    assert everything.tolist()[0][2] == [True, True, False, True, True, False]
    _, nothing = sample_visibility(mask, special, 0.0)
    assert nothing.tolist()[0][2] == [True, False, False, False, True, False]
    # each row draws its own hints
    _, big = sample_visibility(torch.ones(1, 40, dtype=torch.long), torch.zeros(1, 40, dtype=torch.bool), 0.5,
                               torch.Generator().manual_seed(1))
    assert not torch.equal(big[0, 1, 2:], big[0, 0, 2:])


def test_the_reconstruction_loss_is_the_cross_entropy_of_every_target():
    from indexbench_lmindexer._model import Reconstructor, reconstruction_loss, sample_visibility

    torch.manual_seed(0)
    tokens = torch.tensor([[101, 7, 8, 9, 102, 0], [101, 5, 6, 102, 0, 0]])
    mask = (tokens != 0).long()
    special = torch.isin(tokens, torch.tensor([0, 101, 102]))
    targets, visible = sample_visibility(mask, special, 0.5)
    words = torch.randn(120, 8)
    recon = Reconstructor(8, 4, 120, layers=1, max_length=16, dropout=0.0)
    logits, wanted = recon(torch.randn(2, 2, 4), tokens, targets, visible, words)
    assert wanted.tolist() == [7, 8, 9, 5, 6] and logits.shape == (5, 120)
    expected = float(np.mean([-torch.log_softmax(logits[i], 0)[t].item() for i, t in enumerate(wanted.tolist())]))
    assert reconstruction_loss(logits, wanted).item() == pytest.approx(expected, rel=1e-5)
    assert torch.isfinite(logits).all()
    # nothing to predict (only special tokens)
    logits, wanted = recon(torch.randn(2, 1, 4), tokens, torch.zeros_like(targets), visible, words)
    assert wanted.numel() == 0 and reconstruction_loss(logits, wanted).item() == 0.0


def test_the_reconstructors_gradients_are_the_same_bits_every_time():
    """Same inputs, same seed: the same gradient to every weight, bit for bit. Indexing the word
    embeddings with repeated token ids (``W[ids]``) accumulated their gradient in a thread-dependent
    order on the CPU, so two runs with one seed parted from the first phase that trains W
    (benchmarks/LOG.md, "train@1 is not repeatable")."""
    import hashlib

    from indexbench_lmindexer._model import Reconstructor, reconstruction_loss, sample_visibility

    torch.manual_seed(0)
    tokens = torch.randint(1000, 1500, (32, 64))  # many repeats, as in a real batch
    tokens[:, 0], tokens[:, -1] = 101, 102
    special = torch.isin(tokens, torch.tensor([101, 102]))
    words = torch.randn(5000, 64, requires_grad=True)
    ids = torch.randn(32, 1, 64, requires_grad=True)
    recon = Reconstructor(64, 64, 5000, layers=1, max_length=64, dropout=0.1)
    digests = set()
    for _ in range(4):
        words.grad = ids.grad = None
        recon.zero_grad()
        torch.manual_seed(1)
        targets, visible = sample_visibility(torch.ones_like(tokens), special, 0.5,
                                             torch.Generator().manual_seed(2))
        logits, wanted = recon(ids, tokens, targets, visible, words)
        reconstruction_loss(logits, wanted).backward()
        grads = [words.grad, ids.grad, *(p.grad for p in recon.parameters() if p.grad is not None)]
        digests.add(hashlib.sha256(b"".join(g.numpy().tobytes() for g in grads)).hexdigest())
    assert len(digests) == 1


def test_the_reconstructor_reads_the_ids():
    """Different ID vectors, different predictions: the IDs are an input, not decoration."""
    from indexbench_lmindexer._model import Reconstructor, sample_visibility

    torch.manual_seed(0)
    tokens = torch.tensor([[101, 7, 8, 102]])
    mask = torch.ones_like(tokens)
    targets, visible = sample_visibility(mask, torch.tensor([[True, False, False, True]]), 0.0)
    words = torch.randn(120, 8)
    for positions in ("relative", "absolute"):
        recon = Reconstructor(8, 8, 120, dropout=0.0, query_positions=positions).eval()
        a, _ = recon(torch.randn(1, 1, 8), tokens, targets, visible, words)
        b, _ = recon(torch.randn(1, 1, 8), tokens, targets, visible, words)
        assert not torch.allclose(a, b)


def _positional_states(recon, norm: float):
    """A fresh reconstructor's states for every position of one document whose ID vector has
    ``norm`` and whose hints are its special tokens only: where it is is all that tells the
    positions apart."""
    from indexbench_lmindexer._model import sample_visibility

    torch.manual_seed(1)
    length = 12
    tokens = torch.tensor([[101] + list(range(5, 5 + length - 2)) + [102]])
    special = torch.isin(tokens, torch.tensor([101, 102]))
    _, visible = sample_visibility(torch.ones_like(tokens), special, 0.0)
    c = torch.nn.functional.normalize(torch.randn(1, 1, 32), dim=-1) * norm
    words = torch.randn(200, 32)
    with torch.no_grad():
        return recon.streams(c, tokens, visible, words)[0]  # (L, dim)


@pytest.mark.parametrize("positions", ["relative", "absolute"])
def test_queries_keep_their_position_whatever_the_id_vectors_scale(positions):
    """Issue #12: with the query LayerNorm(proj(c) + P[i]) and a codebook row of norm 32, two
    positions' queries had cosine 0.9999, so every token of a document got the same prediction.
    The ID vector is now normalised before any position enters."""
    from indexbench_lmindexer._model import Reconstructor

    torch.manual_seed(0)
    recon = Reconstructor(32, 32, 200, heads=4, max_length=16, dropout=0.0, query_positions=positions).eval()
    big, unit = _positional_states(recon, 32.0), _positional_states(recon, 1.0)
    assert torch.allclose(big, unit, atol=1e-3)  # the scale of c changes nothing (but LayerNorm eps)
    cosine = torch.nn.functional.cosine_similarity(big[3], big[8], dim=0)
    assert cosine < 0.95, f"positions 3 and 8 of one document look alike (cosine {cosine:.4f})"


@pytest.mark.parametrize("positions", ["relative", "absolute"])
def test_a_tiny_reconstructor_learns_tokens_that_depend_on_the_position(positions):
    """A toy corpus whose documents are two fixed token sequences, told apart only by their ID
    vector (norm 32, as the codebook rows at position 1), with no hints but [CLS]/[SEP]: the
    tokens can be predicted only from the ID *and* the position. A position-blind reconstructor
    stays at 1/8 top-1; this one must get nearly all of them."""
    from indexbench_lmindexer._model import Reconstructor, reconstruction_loss, sample_visibility

    torch.manual_seed(0)
    sequences = torch.tensor([[101, *range(10, 18), 102], [101, *range(17, 9, -1), 102]])
    codes = torch.nn.functional.normalize(torch.randn(2, 32), dim=-1) * 32
    tokens = sequences.repeat(8, 1)
    ids = codes.repeat(8, 1)[:, None]
    special = torch.isin(tokens, torch.tensor([101, 102]))
    targets, visible = sample_visibility(torch.ones_like(tokens), special, 0.0)
    words = torch.nn.Parameter(torch.randn(120, 32) * 0.5)
    recon = Reconstructor(32, 32, 120, heads=4, max_length=16, dropout=0.0, query_positions=positions)
    optimiser = torch.optim.Adam([*recon.parameters(), words], lr=3e-3)
    for _ in range(150):
        logits, wanted = recon(ids, tokens, targets, visible, words)
        optimiser.zero_grad()
        reconstruction_loss(logits, wanted).backward()
        optimiser.step()
    with torch.no_grad():
        logits, wanted = recon(ids, tokens, targets, visible, words)
    accuracy = float((logits.argmax(-1) == wanted).float().mean())
    assert accuracy > 0.95, f"top-1 {accuracy:.3f} on position-dependent tokens"


# --------------------------------------------------------------------------- gradients


def _training(config_overrides=None, n=20):
    from indexbench_lmindexer._algorithm import SelfSupervisedTraining

    from indexbench.generative.backbones import load_backbone

    indexer = make(**(config_overrides or {}))
    backbone = load_backbone("tiny", seed=0)
    backbone.add_id_tokens((64, 64, 64))
    tokens = backbone.text.tokenize(small_corpus(n).texts, max_length=16)
    return SelfSupervisedTraining(backbone, tokens, indexer.config, 2, RunContext(seed=0))


def _encoder_grad_after_reconstruction(training):
    from indexbench_lmindexer._algorithm import Phase

    training.state.codes = np.zeros((len(training.doc_tokens), 1), dtype=np.int64)
    losses, *_ = training._forward(Phase("train@2", "train", 1, 1), np.arange(8), torch.Generator().manual_seed(0))
    training.backbone.model.zero_grad()
    losses["reconstruction"].backward()
    # The encoder's layers, not its token embeddings: those are W of Eq. 5 and get a gradient
    # from the reconstructor's output side whatever the look-up does.
    grads = [p.grad for n, p in training.backbone.model.get_encoder().named_parameters()
             if p.grad is not None and "embeddings" not in n]
    return sum(float(g.abs().sum()) for g in grads)


def test_reconstruction_gradients_reach_the_encoder_through_the_straight_through_lookup(monkeypatch):
    training = _training({"contrastive": False, "commitment": False})
    assert _encoder_grad_after_reconstruction(training) > 0
    # The control: a plain (hard) look-up of the current code cuts the path, as the paper says.
    import indexbench_lmindexer._algorithm as schedule

    monkeypatch.setattr(schedule, "straight_through", lambda logits, book: book[logits.argmax(-1)].detach())
    training = _training({"contrastive": False, "commitment": False})
    # The earlier position's code vector is a plain embedding row: no path to the encoder either.
    assert _encoder_grad_after_reconstruction(training) == 0


def test_code_anchor_is_the_weighted_cross_entropy_to_the_k_means_codes():
    from indexbench_lmindexer._algorithm import Phase

    training = _training({"contrastive": False, "commitment": False, "code_anchor": 0.5})
    training.state.codes = np.zeros((len(training.doc_tokens), 0), dtype=np.int64)
    training.state.anchor = np.arange(len(training.doc_tokens)) % 7
    rows = np.arange(8)
    training.backbone.model.eval()  # no dropout: the two forward passes below agree
    training.reconstructor.eval()
    losses, *_ = training._forward(Phase("train@1", "train", 0, 1), rows, torch.Generator().manual_seed(0))
    with torch.no_grad():
        ids, mask, _ = training._collate(rows)
        bb = training.backbone
        hidden, _ = bb.decode(decoder_inputs(bb, torch.zeros((8, 1), dtype=torch.long)), bb.encode(ids, mask), mask)
        expected = 0.5 * torch.nn.functional.cross_entropy(bb.position_logits(hidden[:, 0], 0),
                                                           torch.as_tensor(training.state.anchor[rows]))
    assert float(losses["anchor"].detach()) == pytest.approx(float(expected), rel=1e-5)
    # Off at 0 (the paper's objective), and never outside train@t.
    plain = _training({"contrastive": False, "commitment": False, "code_anchor": 0})
    plain.state.anchor = training.state.anchor
    assert "anchor" not in plain._forward(Phase("train@1", "train", 0, 1), rows, torch.Generator())[0]
    assert "anchor" not in training._forward(Phase("encoder-warmup@1", "encoder-warmup", 0, 1), rows,
                                             torch.Generator())[0]


# --------------------------------------------------------------------------- schedule


def test_phases_follow_algorithm_1_and_the_ablation_switches():
    from indexbench_lmindexer._algorithm import plan_phases

    def names(**o):
        return [p.name for p in plan_phases(make(**o).config, 2, 30)]

    # The reconstructor warm-up reads the IDs of the k-means codebook of position 1 (so it
    # learns what train@1 will feed it); an encoder warm-up moves h^1, so the codebook is refitted.
    assert names() == ["codebook@1", "reconstructor-warmup", "encoder-warmup@1", "codebook@1 (refit)", "train@1",
                       "encoder-warmup@2", "codebook@2", "train@2"]
    assert names(encoder_warmup_steps=-1) == ["codebook@1", "reconstructor-warmup", "train@1", "codebook@2",
                                             "train@2"]
    assert names(reconstructor_warmup=False)[:2] == ["encoder-warmup@1", "codebook@1"]
    assert names(encoder_warmup=False) == ["reconstructor-warmup", "train@1", "train@2"]


def test_auto_steps_scale_with_the_corpus_up_to_the_cpu_caps():
    from indexbench_lmindexer._algorithm import plan_phases

    auto = make(reconstructor_warmup_steps=0, encoder_warmup_steps=0, position_steps=0, index_batch_size=32)
    assert [p.steps for p in plan_phases(auto.config, 2, 300)] == [0, 75, 10, 0, 11, 10, 0, 11]
    assert [p.steps for p in plan_phases(auto.config, 2, 4344)] == [0, 1086, 136, 0, 150, 136, 0, 150]
    assert [p.steps for p in plan_phases(auto.config, 1, 100_000)] == [0, 1200, 150, 0, 150]
    assert [p.name for p in plan_phases(auto.config, 1, 300)] == [
        "codebook@1", "reconstructor-warmup", "encoder-warmup@1", "codebook@1 (refit)", "train@1"]
    assert auto.config.code_anchor == 0  # the paper's objective


def test_the_paper_schedule_presets_table_9_and_keeps_explicit_options():
    from indexbench_lmindexer._algorithm import plan_phases

    paper = make(schedule="paper", reconstructor_warmup_steps=0, encoder_warmup_steps=0, position_steps=0,
                 index_batch_size=32, index_fresh_lr=1e-3)  # the defaults: the preset replaces them
    config = paper.config
    assert (config.index_max_length, config.index_batch_size, config.index_lr, config.code_anchor) == (512, 128, 1e-3, 0)
    # 30 epochs a phase, uncapped: ceil(30 x 4,344 / 128) steps
    assert [p.steps for p in plan_phases(config, 2, 4344)] == [0, 1019, 1019, 0, 1019, 1019, 0, 1019]
    assert make(schedule="paper", index_batch_size=64).config.index_batch_size == 64


def test_bad_options_are_config_errors():
    with pytest.raises(ConfigError, match="hint_ratios"):
        make(hint_ratios="half")
    with pytest.raises(ConfigError, match="hint_ratios"):
        make(hint_ratios="0.5,1.5")
    with pytest.raises(ConfigError, match="reconstructor_layers"):
        make(reconstructor_layers=0)
    with pytest.raises(ConfigError, match="position_steps"):
        make(position_steps=-1)
    with pytest.raises(ConfigError, match="encoder_warmup_steps"):
        make(encoder_warmup_steps=-2)
    with pytest.raises(ConfigError, match="reconstructor_init"):
        make(reconstructor_init="pretrained")
    with pytest.raises(ConfigError, match="code_anchor"):
        make(code_anchor=-1)
    with pytest.raises(ConfigError, match="encoder_warmup_steps=-1"):  # the anchor would have no target
        make(code_anchor=1, encoder_warmup=False)
    assert make(code_anchor=1, encoder_warmup_steps=-1).config.code_anchor == 1
    with pytest.raises(ConfigError, match="schedule"):
        make(schedule="fast")
    with pytest.raises(ConfigError, match="query_positions"):
        make(query_positions="none")
    with pytest.raises(ConfigError, match="warmup_hint_ratio"):
        make(warmup_hint_ratio=2.0)
    with pytest.raises(ConfigError, match="unknown encoder 'word2vec'"):
        make(first_codebook="word2vec")


def test_the_first_codebook_oracle_clusters_the_given_embeddings_and_features_is_the_default_key():
    """``first_codebook=ENCODER`` makes codebook@1 the k-means of that encoder's embeddings (the
    two-stage input) instead of h^1; the default leaves the cache key as it was before the option."""
    from indexbench.kmeans import kmeans

    training = _training(n=160)
    emb = np.random.default_rng(1).normal(size=(160, 8)).astype(np.float32)
    training.first_codebook_input = emb
    training._codebook(training.phases[0])
    centred = emb - emb.mean(axis=0, keepdims=True)
    unit = centred / np.linalg.norm(centred, axis=1, keepdims=True)
    expected = kmeans(unit, 64, seed=0, spherical=True)[1]
    assert np.array_equal(training.state.anchor, expected)
    own = _training(n=160)
    own._codebook(own.phases[0])
    assert not np.array_equal(own.state.anchor, expected)
    corpus = small_corpus()
    default_key = make()._key(corpus, 3, 64, RunContext(seed=0))
    assert "first_codebook" not in default_key["options"]
    assert make(first_codebook="tiny")._key(corpus, 3, 64, RunContext(seed=0))["options"]["first_codebook"] == "tiny"


def test_schedule_runs_end_to_end_on_the_tiny_backbone_and_is_deterministic():
    corpus = small_corpus()
    a = make()
    ids = a.assign_ids(corpus, RunContext(seed=3))
    ids.validate(corpus)
    assert ids.codebook_sizes == (64, 64, 64)
    assert [p["phase"] for p in a.details["phases"]] == [
        "codebook@1", "reconstructor-warmup", "encoder-warmup@1", "codebook@1 (refit)", "train@1",
        "encoder-warmup@2", "codebook@2", "train@2"]
    train2 = a.details["phases"][-1]
    assert {"mean_reconstruction", "mean_contrastive", "mean_commitment", "perplexity", "diff_ratio",
            "previous_perplexity@1", "previous_agreement@1"} <= set(train2)
    curves = a.details["curves"]
    assert curves and all({"macro_f1", "top1", "reconstruction_loss", "unigram_loss"} <= set(c) for c in curves)
    assert all(c["nats_below_unigram"] == pytest.approx(c["unigram_loss"] - c["reconstruction_loss"]) for c in curves)
    warmup = a.details["phases"][1]
    assert {"reconstruction_loss", "nats_below_unigram", "top1", "macro_f1"} <= set(warmup)
    assert a.details["unigram_baseline_nats"] > 0
    assert any("perplexity" in c and "diff_ratio" in c for c in curves if c["phase"].startswith("train"))
    b = make()
    assert b.assign_ids(corpus, RunContext(seed=3)).ids == ids.ids


def test_category_ami_of_every_codebook_fit_and_assignment_is_reported_and_never_read():
    """With category paths the phases report the level-2 AMI of each k-means fit and of each
    position's assigned codes (a diagnostic for controlled runs); the IDs are those of the same
    texts without categories."""
    from indexbench.metrics import ami

    plain = small_corpus()
    labelled = Corpus(Document(id=d.id, text=d.text, categories=("Root", "even" if i % 2 else "odd", "x"))
                      for i, d in enumerate(plain))
    with_categories, without = make(), make()
    ids = with_categories.assign_ids(labelled, RunContext(seed=3))
    assert ids.ids == without.assign_ids(plain, RunContext(seed=3)).ids
    phases = {p["phase"]: p for p in with_categories.details["phases"]}
    assert {"kmeans_category_ami"} <= set(phases["codebook@1"]) and "category_ami" in phases["train@2"]
    truth = [d.categories[:2] for d in labelled]
    first = [ids.ids[d.id][:1] for d in labelled]
    assert phases["train@1"]["category_ami"] == pytest.approx(ami(truth, first))
    assert all("category_ami" not in p and "kmeans_category_ami" not in p for p in without.details["phases"])


def test_fit_metrics_are_the_reconstructors_final_diagnostics_and_the_warmup_raises_them():
    corpus = small_corpus()
    warmed = make(reconstructor_warmup_steps=150, diagnostics_documents=30)
    warmed.assign_ids(corpus, RunContext(seed=0))
    last = warmed.details["phases"][-1]
    assert warmed.fit_metrics == {"reconstruction_nats_below_unigram": last["nats_below_unigram"],
                                  "reconstruction_macro_f1": last["macro_f1"]}
    cold = make(reconstructor_warmup=False, diagnostics_documents=30)
    cold.assign_ids(corpus, RunContext(seed=0))
    # What the gate's planted "no reconstructor warm-up" regression relies on (Fig. 4(a)).
    assert (warmed.fit_metrics["reconstruction_nats_below_unigram"]
            > cold.fit_metrics["reconstruction_nats_below_unigram"] + 0.05)


def test_ablations_drop_their_losses():
    corpus = small_corpus(16)
    indexer = make(contrastive=False, commitment=False, encoder_warmup=False, reconstructor_warmup=False)
    indexer.assign_ids(corpus, RunContext(seed=0))
    phases = indexer.details["phases"]
    assert [p["phase"] for p in phases] == ["train@1", "train@2"]
    assert all("mean_contrastive" not in p and "mean_commitment" not in p for p in phases)


def test_interrupted_training_resumes_from_its_checkpoint_with_the_same_ids(tmp_path, monkeypatch):
    import indexbench_lmindexer._algorithm as schedule

    corpus = small_corpus()
    reference = make().assign_ids(corpus, RunContext(seed=1, cache=ArtifactCache(tmp_path / "ref")))

    original = schedule.SelfSupervisedTraining._codebook
    calls = []

    def interrupted(self, phase):
        calls.append(phase.name)
        if phase.position == 1:
            raise KeyboardInterrupt
        return original(self, phase)

    cache = ArtifactCache(tmp_path / "cache")
    monkeypatch.setattr(schedule.SelfSupervisedTraining, "_codebook", interrupted)
    with pytest.raises(KeyboardInterrupt):
        make().assign_ids(corpus, RunContext(seed=1, cache=cache))
    assert list((tmp_path / "cache" / "lmindexer-checkpoints").glob("*/state.pt"))
    artifacts = tmp_path / "cache" / "lmindexer"
    assert not [p for p in artifacts.glob("*") if not p.name.startswith(".")]  # nothing half-written

    monkeypatch.setattr(schedule.SelfSupervisedTraining, "_codebook", original)
    logs = []

    class Recorder:
        from indexbench.protocols import SilentProgress as _S
        task = _S.task
        track = _S.track

        def log(self, message, level="info"):
            logs.append(message)

    resumed = make().assign_ids(corpus, RunContext(seed=1, cache=cache, progress=Recorder()))
    assert any("resuming after encoder-warmup@2" in m for m in logs)
    assert not any("reconstructor-warmup done" in m for m in logs)  # not redone
    assert resumed.ids == reference.ids
    assert not list((tmp_path / "cache" / "lmindexer-checkpoints").glob("*/state.pt"))  # cleaned up


def test_training_curves_are_plotted_into_the_run_artifact(tmp_path):
    indexer = make()
    indexer.assign_ids(small_corpus(16), RunContext(seed=0, cache=ArtifactCache(tmp_path)))
    plot = indexer.details["plot"]
    assert plot and open(plot, "rb").read(8) == b"\x89PNG\r\n\x1a\n"


# --------------------------------------------------------------------------- downstream


def test_downstream_fine_tuning_starts_from_the_trained_indexer(tmp_path):
    from indexbench.generative.engine import GenerativeRetrieval

    corpus = small_corpus()
    ctx = RunContext(seed=0, cache=ArtifactCache(tmp_path))
    indexer = make(max_steps=3, batch_size=8, num_beams=5)
    ids = indexer.assign_ids(corpus, ctx)
    trained = torch.load(indexer._trained["path"])

    backbone = indexer._backbone(ctx, 3, 64)
    fresh_rows = backbone.output_head().weight.detach().clone()
    indexer.init_generative_model(backbone, ids, ctx)
    rows = backbone.vocabulary.rows(0)
    assert torch.equal(backbone.output_head().weight[rows], trained["decoder.cls.predictions.decoder.weight"][rows])
    assert not torch.equal(backbone.output_head().weight[rows], fresh_rows[rows])

    problem = RetrievalProblem(task="t", corpus=corpus, train_pairs=[(d.text, d.id) for d in corpus][:10],
                               dev=QuerySet({}, {}), documents_as_queries=True)
    engine = GenerativeRetrieval(indexer)
    retriever = engine.build_retriever(problem, ctx)
    assert engine.details["training"]["steps"] == 3 and "id_init" not in engine.details["training"]
    results = retriever.search([corpus[0].text, "glass beakers"], 5)
    valid = set(corpus.ids)
    assert all(1 <= len(r) <= 5 and {d for d, _ in r} <= valid for r in results)
    assert all(len({d for d, _ in r}) == len(r) for r in results)


def test_a_mismatched_backbone_is_refused(tmp_path):
    from indexbench.generative.backbones import load_backbone

    ctx = RunContext(seed=0, cache=ArtifactCache(tmp_path))
    indexer = make()
    ids = indexer.assign_ids(small_corpus(16), ctx)
    other = load_backbone("tiny", seed=5)
    other.add_id_tokens((64, 64, 64))
    with pytest.raises(ConfigError, match="learned its IDs with backbone"):
        indexer.init_generative_model(other, ids, ctx)


def test_unseen_documents_get_ids_from_the_trained_indexer():
    indexer = make()
    indexer.assign_ids(small_corpus(), RunContext(seed=0))
    texts = ["nitrile gloves size large", "cobalt drill bit set"]
    codes = indexer.ids_for_texts(texts, RunContext(seed=0))
    assert codes.shape == (2, 2) and codes.min() >= 0 and codes.max() < 64
    assert np.array_equal(codes, indexer.ids_for_texts(texts, RunContext(seed=0)))


def test_reconstructor_starts_from_a_bert_encoder_when_shapes_allow():
    from indexbench_lmindexer._model import Reconstructor, init_from_bert
    from transformers import BertConfig, BertModel

    torch.manual_seed(0)
    encoder = BertModel(BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                                   intermediate_size=64, max_position_embeddings=32), add_pooling_layer=False)
    recon = Reconstructor(16, 16, 50, heads=2, max_length=32, query_positions="absolute")
    assert init_from_bert(recon, encoder)
    assert torch.equal(recon.layers[0].query.weight, encoder.encoder.layer[0].attention.self.query.weight)
    assert torch.equal(recon.layers[0].value.bias, encoder.encoder.layer[0].attention.self.value.bias)
    assert torch.equal(recon.layers[0].feed_forward[2].weight, encoder.encoder.layer[0].output.dense.weight)
    expected = encoder.embeddings.position_embeddings.weight + encoder.embeddings.token_type_embeddings.weight[0]
    assert torch.allclose(recon.positions.weight, expected)
    # other head counts or widths: left random, and said so
    assert not init_from_bert(Reconstructor(16, 16, 50, heads=4, max_length=32), encoder)
    assert not init_from_bert(Reconstructor(16, 16, 50, heads=2, max_length=64, query_positions="absolute"), encoder)
    assert init_from_bert(Reconstructor(16, 16, 50, heads=2, max_length=64), encoder)  # relative: no positions


def test_the_bf16_path_learns_ids_and_fine_tunes_under_autocast(tmp_path, monkeypatch):
    """On CUDA every forward pass runs under bf16 autocast. No GPU is needed to check the dtype
    handling of that path (bf16 logits into the straight-through look-up, the k-means features,
    the diagnostics' numpy conversions, the engine's training and beam search): CPU autocast
    to bf16 produces the same mixed dtypes."""
    from indexbench.generative.backbones import Seq2SeqBackbone
    from indexbench.generative.engine import GenerativeRetrieval

    entered = []

    def bf16_autocast(self):
        entered.append(True)
        return torch.autocast("cpu", dtype=torch.bfloat16)

    monkeypatch.setattr(Seq2SeqBackbone, "autocast", bf16_autocast)
    corpus = small_corpus()
    ctx = RunContext(seed=0, cache=ArtifactCache(tmp_path))
    indexer = make(max_steps=3, batch_size=8, num_beams=5)
    ids = indexer.assign_ids(corpus, ctx)
    ids.validate(corpus)
    assert entered, "the schedule never entered the backbone's autocast"
    assert all(np.isfinite(p.get("mean_reconstruction", 0.0)) for p in indexer.details["phases"])

    problem = RetrievalProblem(task="t", corpus=corpus, train_pairs=[(d.text, d.id) for d in corpus][:10],
                               dev=QuerySet({}, {}), documents_as_queries=True)
    engine = GenerativeRetrieval(indexer)
    retriever = engine.build_retriever(problem, ctx)
    assert np.isfinite(engine.details["training"]["final_loss"])
    results = retriever.search([corpus[0].text, "glass beakers"], 5)
    valid = set(corpus.ids)
    assert all(1 <= len(r) <= 5 and {d for d, _ in r} <= valid for r in results)
