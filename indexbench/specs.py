"""Names with options, as a user writes them (``bm25:k1=0.9``, ``amazon-scientific:category_text=true``),
and the config objects built from them."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from .entries import DatasetEntry, IndexerEntry
from .errors import ConfigError
from .options import check_options


@dataclass(frozen=True)
class OptionSpec:
    """A name plus options, as written on the command line: ``name:key=value:...``."""

    name: str
    options: tuple[tuple[str, str], ...] = ()
    what = "option"  # what the name names, in error messages

    @classmethod
    def parse(cls, text: str):
        """``name:key=value:...`` -> the spec, options sorted; a clear error for a malformed one."""
        name, *parts = text.strip().split(":")
        options = []
        for part in parts:
            key, sep, value = part.partition("=")
            if not sep or not key:
                raise ConfigError(f"{cls.what} option {part!r} in {text!r} is not of the form key=value")
            options.append((key.strip().replace("-", "_"), value.strip()))
        return cls(name.strip(), tuple(sorted(options)))

    @property
    def label(self) -> str:
        """The canonical name results are filed under (options included)."""
        return ":".join([self.name, *(f"{k}={v}" for k, v in self.options)])


@dataclass(frozen=True)
class IndexerSpec(OptionSpec):
    """An indexer name plus options: ``bm25:k1=0.9``."""

    what = "indexer"

    def build_config(self, entry: IndexerEntry) -> Any:
        return build_config(entry.config_class, dict(self.options), f"indexer {self.name!r}")


@dataclass(frozen=True)
class DatasetSpec(OptionSpec):
    """A dataset name plus options (they change the data, so they are part of its label):
    ``amazon-scientific:category_text=true``."""

    what = "dataset"

    def build_config(self, entry: DatasetEntry) -> Any:
        if entry.config_class is None:
            if self.options:
                raise ConfigError(f"dataset {self.name!r} takes no options, got {self.label!r}")
            return None
        return build_config(entry.config_class, dict(self.options), f"dataset {self.name!r}")


def build_config(config_class: type, options: dict[str, str], owner: str) -> Any:
    """Instantiate a config dataclass from string options, converting to each field's type, and
    check every option (`indexbench.options.check_options`)."""
    fields = {f.name: f for f in dataclasses.fields(config_class)}
    values: dict[str, Any] = {}
    for key, raw in options.items():
        if key not in fields:
            valid = ", ".join(sorted(fields)) or "(none)"
            raise ConfigError(f"{owner} has no option {key!r}; valid options: {valid}")
        values[key] = _convert(raw, fields[key], owner)
    config = config_class(**values)
    preset = getattr(config, "apply_preset", None)
    if callable(preset):  # a named recipe fills what the spec leaves out (`generative.presets`)
        preset(set(values))
    check_options(config, owner)
    return config


def _convert(raw: str, fld: dataclasses.Field, owner: str) -> Any:
    kind = fld.type if isinstance(fld.type, str) else getattr(fld.type, "__name__", str(fld.type))
    kind = kind.replace(" ", "")
    try:
        if kind == "bool":
            low = raw.lower()
            if low in {"1", "true", "yes", "on"}:
                return True
            if low in {"0", "false", "no", "off"}:
                return False
            raise ValueError
        if kind == "int":
            return int(raw)
        if kind == "float":
            return float(raw)
        if kind in {"int|None", "None|int"}:
            return None if raw.lower() == "none" else int(raw)
        if kind in {"float|None", "None|float"}:
            return None if raw.lower() == "none" else float(raw)
    except ValueError:
        raise ConfigError(f"{owner} option {fld.name!r} expects {kind}, got {raw!r}") from None
    return raw


__all__ = ["DatasetSpec", "IndexerSpec", "OptionSpec", "build_config"]
