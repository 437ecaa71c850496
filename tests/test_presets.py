"""Named engine recipes (``preset=tiger``), the learning-rate schedules and optimisers they use,
and keeping the best dev checkpoint."""

from __future__ import annotations

import math

import pytest

from indexbench.generative.presets import PRESETS
from indexbench.registry import get_registry
from indexbench.specs import IndexerSpec


def build(spec: str):
    parsed = IndexerSpec.parse(spec)
    entry = get_registry().indexer(parsed.name)
    return parsed.build_config(entry)


def test_a_preset_fills_what_the_spec_leaves_out():
    config = build("rqvae:preset=tiger:max_steps=3000:batch_size=32")
    assert (config.backbone, config.input, config.user_buckets) == ("t5-tiger", "ids", 2000)
    assert (config.id_length, config.codebook_size) == (4, 256)
    assert (config.optimizer, config.lr, config.lr_schedule, config.warmup_steps) == ("adafactor", 0.01, "rsqrt", 10000)
    assert (config.hidden_dims, config.latent_dim) == ("512,256,128", 32)  # TIGER's rq-VAE
    # What the spec gives wins, even a value equal to the engine's default (batch 32).
    assert (config.max_steps, config.batch_size) == (3000, 32)
    tuned = build("hc:preset=tiger-tuned")
    assert (tuned.backbone, tuned.select_best, tuned.user_buckets, tuned.lr_schedule) == (
        "t5-tiger-tuned", True, 0, "cosine")
    assert not hasattr(tuned, "hidden_dims")  # options hc does not have are left out
    plain = build("hc")
    assert (plain.backbone, plain.input, plain.preset) == ("minilm-encdec", "text", "none")


def test_a_preset_in_code_keeps_the_options_set_there():
    entry = get_registry().indexer("rqkmeans")
    indexer = entry.factory(entry.config_class(preset="tiger", max_steps=40))
    assert indexer.config.max_steps == 40 and indexer.config.batch_size == 256
    indexer.config.apply_preset()  # applying again changes nothing
    assert indexer.config.max_steps == 40


def test_every_preset_option_is_an_option_somewhere():
    import dataclasses

    from indexbench_rqvae import RQVAEConfig

    from indexbench.generative.options import GenerativeOptions

    known = {f.name for f in dataclasses.fields(RQVAEConfig)} | {f.name for f in dataclasses.fields(GenerativeOptions)}
    for name, values in PRESETS.items():
        assert set(values) <= known, (name, set(values) - known)
        assert values["backbone"] in get_registry().backbones


def test_schedules():
    from indexbench.optim import SCHEDULES

    rsqrt = SCHEDULES["rsqrt"](1000, 100)
    assert rsqrt(0) == rsqrt(99) == 1.0  # TIGER: 0.01 for the first 10k steps
    assert rsqrt(100) == 1.0 and rsqrt(400) == pytest.approx(0.5) and rsqrt(10000) == pytest.approx(0.1)
    cosine = SCHEDULES["cosine"](1100, 100)
    assert cosine(49) == pytest.approx(0.5) and cosine(100) == pytest.approx(1.0)
    assert cosine(600) == pytest.approx(0.5) and cosine(1100) == pytest.approx(0.0, abs=1e-12)
    constant = SCHEDULES["constant"](1000, 10)
    assert constant(4) == pytest.approx(0.5) and constant(500) == 1.0
    linear = SCHEDULES["linear"](1000, 0)
    assert linear(500) == pytest.approx(0.5)


def test_adafactor_and_schedule_reach_the_optimiser():
    import torch

    from indexbench.optim import adamw

    model = torch.nn.Linear(4, 2)
    opt = adamw(model.named_parameters(), lr=0.01, total_steps=50, algorithm="adafactor", schedule="rsqrt",
                warmup_steps=5)
    assert isinstance(opt.optimizer, torch.optim.Adafactor)
    for _ in range(20):
        opt.step(model(torch.randn(8, 4)).pow(2).mean())
    assert opt.optimizer.param_groups[0]["lr"] == pytest.approx(0.01 * math.sqrt(5 / 20))
    with pytest.raises(ValueError, match="unknown optimiser"):
        adamw(model.named_parameters(), lr=0.01, total_steps=5, algorithm="sgd")


def test_keep_if_best_restores_the_best_checks_weights():
    import torch

    from indexbench.generative.training import keep_if_best

    model = torch.nn.Linear(2, 1)
    best: dict = {}
    for step, score in ((1, 0.2), (2, 0.5), (3, 0.4)):
        with torch.no_grad():
            model.weight.fill_(float(step))
        keep_if_best(best, {"step": step, "ndcg@10": score, "recall@10": 1.0 - score}, model)
    assert best["step"] == 2  # by NDCG@10, not recall
    model.load_state_dict(best["state"])
    assert torch.all(model.weight == 2.0)


def test_options_added_later_enter_cache_keys_only_when_set():
    import dataclasses

    from indexbench.generative.options import KEYED_WHEN_SET, GenerativeOptions, cache_key_options

    every = {f.name for f in dataclasses.fields(GenerativeOptions)}
    # At the defaults the key holds exactly the options that existed before these: models
    # cached then are still found.
    assert set(cache_key_options(GenerativeOptions())) == every - set(KEYED_WHEN_SET)
    keyed = cache_key_options(GenerativeOptions(input="ids", lr_schedule="rsqrt"))
    assert (keyed["input"], keyed["lr_schedule"]) == ("ids", "rsqrt") and "preset" not in keyed
