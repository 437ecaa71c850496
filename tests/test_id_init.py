"""Warm-starting the first ID position from the documents (indexbench.generative.id_init) and the
mean-pooling cross-attention of minilm-encdec."""

from __future__ import annotations

import pytest
import torch

from indexbench.generative.backbones import load_backbone
from indexbench.generative.decoding import id_logits
from indexbench.generative.id_init import init_first_position

TEXTS = ["nitrile gloves", "latex gloves box", "drill bit cobalt", "hss drill bits",
         "glass beaker 500ml", "beaker borosilicate", "cable ties", "zip ties nylon"]
FIRST = [0, 0, 1, 1, 2, 2, 3, 3]


@pytest.fixture()
def minilm():
    backbone = load_backbone("minilm-encdec")
    backbone.add_id_tokens((5, 2))  # code 4 of the first position: no document carries it
    return backbone


def first_position_predictions(backbone, tokens):
    ids, mask = backbone.text.collate(tokens, backbone.device)
    codes = torch.tensor([[c, 0] for c in FIRST])
    with torch.no_grad():
        return id_logits(backbone, ids, mask, codes)[0].argmax(-1).tolist()


def test_documents_start_on_their_own_first_code(minilm):
    tokens = minilm.text.tokenize(TEXTS, max_length=16)
    before = first_position_predictions(minilm, tokens)
    assert len(set(before)) == 1  # fresh ID tokens: every document gets the same guess
    untouched = minilm.id_embeddings(0)[4].detach().clone()
    report = init_first_position(minilm, tokens, FIRST)
    assert first_position_predictions(minilm, tokens) == FIRST
    assert report["documents"] == 8 and report["codes"] == 4 and report["accuracy"] == 1.0
    assert report["applied"] and report["held_out_cross_entropy"] < report["chance_cross_entropy"]
    assert torch.equal(minilm.id_embeddings(0)[4], untouched)  # no document, no change
    minilm.check_head()  # the restricted scoring still equals the model's own logits


def test_minilm_cross_attention_starts_as_mean_pooling(minilm):
    """Uniform attention and identity projections: the first cross-attention adds exactly the
    masked mean of the encoder states."""
    layer = minilm._decoder_body().encoder.layer[0].crossattention
    states = torch.randn(2, 5, 384)
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 0, 0, 0]])
    with torch.no_grad():
        query = torch.zeros(2, 1, 384)
        extended = (1.0 - mask[:, None, None, :].float()) * torch.finfo(torch.float32).min
        context = layer.self(query, encoder_hidden_states=states, attention_mask=extended)[0]
    expected = torch.stack([states[0].mean(0), states[1, :2].mean(0)])[:, None]
    assert torch.allclose(context, expected, atol=1e-5)


def test_features_that_say_nothing_leave_the_rows_alone():
    """A random backbone's features do not predict the codes on held-out documents: no warm start."""
    backbone = load_backbone("tiny")
    backbone.add_id_tokens((4, 2))
    before = backbone.id_embeddings(0).detach().clone()
    codes = [i % 4 for i in range(64)]  # unrelated to the texts
    tokens = backbone.text.tokenize([f"item {i} of a shuffled catalogue" for i in range(64)], max_length=16)
    report = init_first_position(backbone, tokens, codes)
    assert not report["applied"]
    assert torch.equal(backbone.id_embeddings(0), before)


def test_centred_rows_reproduce_a_clustering_of_centred_features(minilm):
    """Features with a large common component: uncentred dot products send most documents to the
    code whose row points along it; with ``centre`` the head's bias removes it and every document
    scores highest on its own cluster (LMIndexer's k-means codebook start)."""
    from indexbench.generative.id_init import set_code_rows

    generator = torch.Generator().manual_seed(0)
    k, per, dim = 5, 40, minilm.output_head().weight.shape[1]
    common = torch.nn.functional.normalize(torch.randn(dim, generator=generator), dim=0) * 50
    centres = torch.nn.functional.normalize(torch.randn(k, dim, generator=generator), dim=1)
    codes = torch.arange(k).repeat_interleave(per)
    features = common + centres[codes] + 0.05 * torch.randn(k * per, dim, generator=generator)

    def accuracy(centre: bool) -> float:
        report = set_code_rows(minilm, 0, features, codes, centre=centre)
        head, rows = minilm.output_head(), minilm.vocabulary.rows(0)
        with torch.no_grad():
            logits = features @ head.weight[rows].T + head.bias[rows]
        assert report["centred"] is centre and report["accuracy"] == pytest.approx(
            float((logits.argmax(1) == codes).float().mean()), abs=1e-6)
        return report["accuracy"]

    assert accuracy(centre=False) < 0.6
    assert accuracy(centre=True) == 1.0
