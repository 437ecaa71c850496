"""The shared optimiser recipe: parameter groups, fresh-weight learning rate, schedule."""

from __future__ import annotations

import pytest
import torch

from indexbench.generative.backbones import load_backbone
from indexbench.optim import adamw


def groups_by_parameter(opt):
    return {id(p): group for group in opt.optimizer.param_groups for p in group["params"]}


def test_fresh_parameters_get_their_own_rate_and_biases_no_decay():
    model = torch.nn.ModuleDict({"old": torch.nn.Linear(3, 3), "new": torch.nn.Linear(3, 3)})
    opt = adamw(model.named_parameters(), lr=1e-4, fresh=lambda n: n.startswith("new"), fresh_lr=3e-3,
                total_steps=10, warmup_ratio=0.0, weight_decay=0.1)
    groups = groups_by_parameter(opt)
    assert groups[id(model["old"].weight)]["lr"] == pytest.approx(1e-4)
    assert groups[id(model["new"].weight)]["lr"] == pytest.approx(3e-3)
    assert groups[id(model["new"].bias)]["lr"] == pytest.approx(3e-3)
    assert groups[id(model["old"].weight)]["weight_decay"] == 0.1
    assert groups[id(model["old"].bias)]["weight_decay"] == 0.0
    assert len(opt.params) == 4
    loss = sum(p.sum() for p in model.parameters())
    opt.step(loss)  # the schedule scales both rates alike
    assert groups[id(model["new"].weight)]["lr"] / groups[id(model["old"].weight)]["lr"] == pytest.approx(30)


def test_without_fresh_every_parameter_learns_at_lr():
    model = torch.nn.Linear(3, 3)
    opt = adamw(model.named_parameters(), lr=2e-4, total_steps=4, warmup_ratio=0.0)
    assert all(g["lr"] == pytest.approx(2e-4) for g in opt.optimizer.param_groups)


def test_minilm_encdec_marks_only_what_starts_untrained():
    backbone = load_backbone("minilm-encdec")
    names = [n for n, _ in backbone.model.named_parameters()]
    fresh = {n for n in names if backbone.is_fresh(n)}
    assert any("crossattention" in n for n in fresh)
    assert "decoder.bert.embeddings.word_embeddings.weight" in fresh  # where the ID tokens live
    assert not any(n.startswith("encoder.") for n in fresh)  # MiniLM's encoder is pretrained
    assert "decoder.bert.encoder.layer.0.attention.self.query.weight" not in fresh  # warm-started
    tiny = load_backbone("tiny")
    assert all(tiny.is_fresh(n) for n, _ in tiny.model.named_parameters())


def test_a_non_finite_loss_stops_training_before_it_poisons_the_weights():
    model = torch.nn.Linear(2, 1)
    before = model.weight.detach().clone()
    opt = adamw(model.named_parameters(), lr=1e-2, total_steps=3, warmup_ratio=0.0)
    opt.step(model(torch.ones(1, 2)).sum())
    after_one = model.weight.detach().clone()
    assert not torch.equal(before, after_one)
    with pytest.raises(FloatingPointError, match="diverged.*after 1 steps"):
        opt.step(model(torch.ones(1, 2)).sum() * float("nan"))
    assert torch.equal(model.weight.detach(), after_one)
