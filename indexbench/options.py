"""Options that check themselves: a config field declares its valid values once, beside its type.

    @dataclass
    class BM25Config:
        k1: float = option(1.2, ge=0)
        b: float = option(0.75, ge=0, le=1)
        method: str = option("lucene", choices=("lucene", "robertson", "atire", "bm25l", "bm25+"))

`check_options` (run on every config built from a ``name:key=value`` spec, before any cell runs)
refuses a value outside its range or choices, a float that is NaN or infinite, and then calls the
config's own ``validate()`` if it has one (for rules across options). Plain fields, without
`option`, are still checked for finiteness.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any

from .errors import ConfigError

_KEY = "indexbench"


def option(default: Any, *, ge: float | None = None, gt: float | None = None, le: float | None = None,
           lt: float | None = None, choices: Sequence[Any] | None = None) -> Any:
    """A dataclass field with ``default`` whose value must be >= ``ge``, > ``gt``, <= ``le``,
    < ``lt`` and one of ``choices``, as given."""
    rules = {name: value for name, value in (("ge", ge), ("gt", gt), ("le", le), ("lt", lt)) if value is not None}
    if choices is not None:
        rules["choices"] = tuple(choices)
    return dataclasses.field(default=default, metadata={_KEY: rules})


def rules_of(field: dataclasses.Field) -> dict[str, Any]:
    """The rules `option` gave ``field`` (empty for a plain field)."""
    return dict(field.metadata.get(_KEY, {}))


_WORDS = {"ge": ">=", "gt": ">", "le": "<=", "lt": "<"}


def _broken_rule(value: Any, rules: dict[str, Any]) -> str | None:
    if "choices" in rules and value not in rules["choices"]:
        return "must be one of " + ", ".join(str(c) for c in rules["choices"])
    if value is None or isinstance(value, (str, bool)):
        return None
    for name, bound in rules.items():
        if name == "choices":
            continue
        ok = {"ge": value >= bound, "gt": value > bound, "le": value <= bound, "lt": value < bound}[name]
        if not ok:
            return f"must be {_WORDS[name]} {bound:g}"
    return None


def check_options(config: Any, owner: str) -> None:
    """Raise `ConfigError` (one line naming ``owner`` and the option) for the first option of
    ``config`` outside its declared range or choices, or a float that is not finite; then run
    the config's own ``validate()``."""
    if dataclasses.is_dataclass(config):
        for field in dataclasses.fields(config):
            value = getattr(config, field.name)
            if isinstance(value, float) and not math.isfinite(value):
                raise ConfigError(f"{owner} option {field.name!r} must be a finite number, got {value!r}")
            problem = _broken_rule(value, rules_of(field))
            if problem:
                raise ConfigError(f"{owner} option {field.name!r} {problem}, got {value!r}")
    validate = getattr(config, "validate", None)
    if callable(validate):
        validate()


__all__ = ["check_options", "option", "rules_of"]
