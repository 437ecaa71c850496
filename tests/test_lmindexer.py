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


def test_contrastive_loss_compares_only_documents_sharing_the_prefix():
    from indexbench_lmindexer._model import prefix_contrastive_loss

    h = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    prefixes = torch.tensor([[0], [0], [1]])
    # raw dot products (Eq. 9 as written): documents 0 and 1 share a prefix, 2 is alone (loss 0)
    expected = 2 * (math.log(math.e + 1.0) - 1.0) / 3
    assert prefix_contrastive_loss(h, prefixes, 0.0).item() == pytest.approx(expected, rel=1e-6)
    # cosine / 0.5: self 1/0.5 = 2, the pair's cosine 0 -> 0
    expected = 2 * (math.log(math.exp(2.0) + 1.0) - 2.0) / 3
    assert prefix_contrastive_loss(h, prefixes, 0.5).item() == pytest.approx(expected, rel=1e-6)
    # an empty prefix (the first position): everyone shares it
    empty = torch.zeros((3, 0), dtype=torch.long)
    sims = h @ h.T
    expected = float(np.mean([torch.logsumexp(sims[i], 0).item() - sims[i, i].item() for i in range(3)]))
    assert prefix_contrastive_loss(h, empty, 0.0).item() == pytest.approx(expected, rel=1e-6)


def test_commitment_loss_sums_the_earlier_positions_cross_entropy():
    from indexbench_lmindexer._model import commitment_loss

    first = torch.tensor([[2.0, 0.0], [0.0, 1.0]])
    second = torch.tensor([[0.0, 0.0], [3.0, 0.0]])
    prefixes = torch.tensor([[0, 1], [1, 0]])
    expected = (math.log(1 + math.exp(-2)) + math.log(1 + math.exp(-1))) / 2 \
        + (math.log(2) + math.log(1 + math.exp(-3))) / 2
    assert commitment_loss([first, second], prefixes).item() == pytest.approx(expected, rel=1e-6)
    assert commitment_loss([], prefixes[:, :0]).item() == 0.0


def test_reconstructor_predicts_exactly_the_masked_tokens_and_the_loss_is_their_cross_entropy():
    from indexbench_lmindexer._model import Reconstructor, reconstruction_loss, sample_hints

    torch.manual_seed(0)
    tokens = torch.tensor([[101, 7, 8, 9, 102, 0], [101, 5, 6, 102, 0, 0]])
    mask = (tokens != 0).long()
    special = torch.isin(tokens, torch.tensor([0, 101, 102]))
    hints = sample_hints(mask, special, 0.0)
    assert hints.tolist() == [[True, False, False, False, True, False], [True, False, False, True, False, False]]
    words = torch.randn(120, 8)
    recon = Reconstructor(8, 4, 120, layers=1, max_length=16, dropout=0.0)
    logits, targets = recon(torch.randn(2, 2, 4), tokens, mask, hints, words)
    assert targets.tolist() == [7, 8, 9, 5, 6] and logits.shape == (5, 120)
    expected = float(np.mean([-torch.log_softmax(logits[i], 0)[t].item() for i, t in enumerate(targets.tolist())]))
    assert reconstruction_loss(logits, targets).item() == pytest.approx(expected, rel=1e-5)
    # with every ordinary token shown there is nothing left to predict
    logits, targets = recon(torch.randn(2, 1, 4), tokens, mask, mask.bool(), words)
    assert targets.numel() == 0 and reconstruction_loss(logits, targets).item() == 0.0


def test_the_reconstructor_reads_the_ids():
    """Different ID vectors, different predictions: the IDs are an input, not decoration."""
    from indexbench_lmindexer._model import Reconstructor

    torch.manual_seed(0)
    tokens = torch.tensor([[101, 7, 8, 102]])
    mask = torch.ones_like(tokens)
    hints = torch.tensor([[True, False, False, True]])
    recon = Reconstructor(8, 8, 120, dropout=0.0).eval()
    words = torch.randn(120, 8)
    a, _ = recon(torch.randn(1, 1, 8), tokens, mask, hints, words)
    b, _ = recon(torch.randn(1, 1, 8), tokens, mask, hints, words)
    assert not torch.allclose(a, b)


# --------------------------------------------------------------------------- gradients


def _training(config_overrides=None, n=20):
    from indexbench_lmindexer._schedule import SelfSupervisedTraining

    from indexbench.generative.backbones import load_backbone

    indexer = make(**(config_overrides or {}))
    backbone = load_backbone("tiny", seed=0)
    backbone.add_id_tokens((64, 64, 64))
    tokens = backbone.text.tokenize(small_corpus(n).texts, max_length=16)
    return SelfSupervisedTraining(backbone, tokens, indexer.config, 2, RunContext(seed=0))


def _encoder_grad_after_reconstruction(training):
    from indexbench_lmindexer._schedule import Phase

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
    import indexbench_lmindexer._schedule as schedule

    monkeypatch.setattr(schedule, "straight_through", lambda logits, book: book[logits.argmax(-1)].detach())
    training = _training({"contrastive": False, "commitment": False})
    # The earlier position's code vector is a plain embedding row: no path to the encoder either.
    assert _encoder_grad_after_reconstruction(training) == 0


def test_code_anchor_is_the_weighted_cross_entropy_to_the_k_means_codes():
    from indexbench_lmindexer._schedule import Phase

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
    assert float(losses["anchor"]) == pytest.approx(float(expected), rel=1e-5)
    # Off at 0 (the paper's objective), and never outside train@t.
    plain = _training({"contrastive": False, "commitment": False, "code_anchor": 0})
    plain.state.anchor = training.state.anchor
    assert "anchor" not in plain._forward(Phase("train@1", "train", 0, 1), rows, torch.Generator())[0]
    assert "anchor" not in training._forward(Phase("encoder-warmup@1", "encoder-warmup", 0, 1), rows,
                                             torch.Generator())[0]


# --------------------------------------------------------------------------- schedule


def test_phases_follow_algorithm_1_and_the_ablation_switches():
    from indexbench_lmindexer._schedule import plan_phases

    def names(**o):
        return [p.name for p in plan_phases(make(**o).config, 2, 30)]

    assert names() == ["reconstructor-warmup", "encoder-warmup@1", "codebook@1", "train@1",
                       "encoder-warmup@2", "codebook@2", "train@2"]
    assert names(reconstructor_warmup=False)[0] == "encoder-warmup@1"
    assert names(encoder_warmup=False) == ["reconstructor-warmup", "train@1", "train@2"]


def test_auto_steps_scale_with_the_corpus_up_to_the_cpu_caps():
    from indexbench_lmindexer._schedule import plan_phases

    auto = make(reconstructor_warmup_steps=0, encoder_warmup_steps=0, position_steps=0, index_batch_size=32)
    assert [p.steps for p in plan_phases(auto.config, 2, 300)] == [19, 0, 11, 0, 11]
    assert [p.steps for p in plan_phases(auto.config, 2, 4344)] == [272, 0, 150, 0, 150]
    assert [p.steps for p in plan_phases(auto.config, 1, 100_000)] == [300, 0, 150]
    # No encoder warm-up by default, but the k-means codebook initialisation still runs.
    assert [p.name for p in plan_phases(auto.config, 1, 300)] == ["reconstructor-warmup", "codebook@1", "train@1"]


def test_bad_options_are_config_errors():
    with pytest.raises(ConfigError, match="hint_ratios"):
        make(hint_ratios="half")
    with pytest.raises(ConfigError, match="hint_ratios"):
        make(hint_ratios="0.5,1.5")
    with pytest.raises(ConfigError, match="reconstructor_layers"):
        make(reconstructor_layers=0)
    with pytest.raises(ConfigError, match="position_steps"):
        make(position_steps=-1)
    with pytest.raises(ConfigError, match="reconstructor_init"):
        make(reconstructor_init="pretrained")
    with pytest.raises(ConfigError, match="code_anchor"):
        make(code_anchor=-1)


def test_schedule_runs_end_to_end_on_the_tiny_backbone_and_is_deterministic():
    corpus = small_corpus()
    a = make()
    ids = a.assign_ids(corpus, RunContext(seed=3))
    ids.validate(corpus)
    assert ids.codebook_sizes == (64, 64, 64)
    assert [p["phase"] for p in a.details["phases"]] == [
        "reconstructor-warmup", "encoder-warmup@1", "codebook@1", "train@1", "encoder-warmup@2",
        "codebook@2", "train@2"]
    train2 = a.details["phases"][-1]
    assert {"mean_reconstruction", "mean_contrastive", "mean_commitment", "perplexity", "diff_ratio",
            "previous_perplexity@1", "previous_agreement@1"} <= set(train2)
    curves = a.details["curves"]
    assert curves and all("macro_f1" in c for c in curves)
    assert any("perplexity" in c and "diff_ratio" in c for c in curves if c["phase"].startswith("train"))
    b = make()
    assert b.assign_ids(corpus, RunContext(seed=3)).ids == ids.ids


def test_ablations_drop_their_losses():
    corpus = small_corpus(16)
    indexer = make(contrastive=False, commitment=False, encoder_warmup=False, reconstructor_warmup=False)
    indexer.assign_ids(corpus, RunContext(seed=0))
    phases = indexer.details["phases"]
    assert [p["phase"] for p in phases] == ["train@1", "train@2"]
    assert all("mean_contrastive" not in p and "mean_commitment" not in p for p in phases)


def test_interrupted_training_resumes_from_its_checkpoint_with_the_same_ids(tmp_path, monkeypatch):
    import indexbench_lmindexer._schedule as schedule

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

        def log(self, message):
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
    recon = Reconstructor(16, 16, 50, heads=2, max_length=32)
    assert init_from_bert(recon, encoder)
    q = encoder.encoder.layer[0].attention.self.query.weight
    assert torch.equal(recon.layers[0].attention.in_proj_weight[:16], q)
    assert torch.equal(recon.layers[0].feed_forward[2].weight, encoder.encoder.layer[0].output.dense.weight)
    expected = encoder.embeddings.position_embeddings.weight + encoder.embeddings.token_type_embeddings.weight[0]
    assert torch.allclose(recon.positions.weight, expected)
    # other head counts or widths: left random, and said so
    assert not init_from_bert(Reconstructor(16, 16, 50, heads=4, max_length=32), encoder)
    assert not init_from_bert(Reconstructor(16, 16, 50, heads=2, max_length=64), encoder)


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
