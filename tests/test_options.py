"""Options that check themselves (`indexbench.options`): declared ranges and choices, finiteness,
a config's own validate(), and every built-in default within its own declaration."""

from __future__ import annotations

import dataclasses
import re

import pytest

from indexbench import option
from indexbench.errors import ConfigError
from indexbench.options import check_options, rules_of
from indexbench.registry import get_registry
from indexbench.specs import build_config


@dataclasses.dataclass
class Config:
    rate: float = option(0.1, gt=0, lt=1)
    steps: int = option(10, ge=0)
    mode: str = option("fast", choices=("fast", "exact"))
    scale: float = 1.0  # plain field: only finiteness is checked
    limit: int | None = option(None, ge=1)

    def validate(self) -> None:
        if self.mode == "exact" and self.steps == 0:
            raise ConfigError("option 'steps' must be > 0 when mode is exact")


@pytest.mark.parametrize(("options", "message"), [
    ({"rate": "0"}, "thing option 'rate' must be > 0, got 0.0"),
    ({"rate": "1"}, "thing option 'rate' must be < 1, got 1.0"),
    ({"steps": "-5"}, "thing option 'steps' must be >= 0, got -5"),
    ({"mode": "slow"}, "thing option 'mode' must be one of fast, exact, got 'slow'"),
    ({"scale": "inf"}, "thing option 'scale' must be a finite number, got inf"),
    ({"rate": "nan"}, "thing option 'rate' must be a finite number, got nan"),
    ({"limit": "0"}, "thing option 'limit' must be >= 1, got 0"),
    ({"mode": "exact", "steps": "0"}, "option 'steps' must be > 0 when mode is exact"),
])
def test_a_value_outside_its_declaration_is_one_clear_error(options, message):
    with pytest.raises(ConfigError) as caught:
        build_config(Config, options, "thing")
    assert str(caught.value) == message


def test_values_inside_their_declaration_pass():
    config = build_config(Config, {"rate": "0.5", "steps": "3", "mode": "exact", "limit": "none"}, "thing")
    assert (config.rate, config.steps, config.mode, config.limit) == (0.5, 3, "exact", None)
    assert rules_of(dataclasses.fields(Config)[0]) == {"gt": 0, "lt": 1}
    assert rules_of(dataclasses.fields(Config)[3]) == {}


@pytest.mark.parametrize("name", sorted(get_registry().indexers))
def test_every_built_in_default_lies_within_its_own_declaration(name):
    entry = get_registry().indexer(name)
    check_options(entry.config_class(), f"indexer {name!r}")


def test_the_indexers_that_took_nan_and_negatives_now_refuse_them():
    registry = get_registry()
    for spec, message in (("bm25:k1=nan", "must be a finite number"), ("bm25:k1=-1", "must be >= 0"),
                          ("hc:max_steps=-5", "must be >= 0"), ("rqvae:hidden_dims=0", "hidden_dims"),
                          ("hc:codebook_size=1", "must be 0 (the default) or >= 2"),
                          ("dual-encoder:precision=fp16", "must be one of auto, fp32, int8, bf16"),
                          ("seal:coverage=1.5", "must be <= 1"), ("lmindexer:encoder_warmup_steps=-2", ">= -1")):
        name, _, options = spec.partition(":")
        key, _, value = options.partition("=")
        entry = registry.indexer(name)
        with pytest.raises(ConfigError, match=re.escape(message)):
            build_config(entry.config_class, {key: value}, f"indexer {name!r}")
