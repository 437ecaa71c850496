"""Plugin loading and the registry of everything plugins register.

Plugins come from the entry-point group ``indexbench`` (the built-in methods in ``plugins/``
included) plus the core's own built-ins (tasks, dataset formats, encoders), which register through
the very same hooks. A plugin that fails to import, or whose hook raises, is recorded with its
error and skipped: one broken third-party package must not take the whole tool down.

Names are resolved deterministically, whatever order entry points come in: the core and the
methods shipped with indexbench load first and keep their names; a third-party plugin that
registers a taken built-in name is told so (``indexbench plugins``) and that one item is dropped;
a name that two third-party plugins register belongs to neither -- looking it up is an error that
names both plugins and how to disable one.
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import pluggy

from . import hookspecs
from .errors import ConfigError, UnknownNameError

ENTRY_POINT_GROUP = "indexbench"


@dataclass
class NoOptions:
    """Config class of an indexer that takes no options."""


@dataclass(frozen=True)
class IndexerEntry:
    name: str
    factory: Callable[[Any], Any]
    config_class: type = NoOptions
    description: str = ""
    kind: Literal["retrieval", "ids"] = "retrieval"
    plugin: str = ""
    uses_device: bool = True
    """Whether its cells run on the accelerator when ``--device cuda``: a Ray executor gives
    each such cell a GPU. False for a CPU-only method (BM25)."""


@dataclass(frozen=True)
class DatasetEntry:
    """A named dataset. ``load(directory)`` returns a `Dataset`; ``directory`` is where its files
    live (None for datasets generated in code). ``files`` lists the paths, relative to that
    directory, that must exist; ``subdir`` is its folder name under the data directory.

    A dataset with options (``--dataset name:key=value``) names a ``config_class`` dataclass;
    ``load(directory, config)`` then receives an instance of it."""

    name: str
    load: Callable[[Path | None], Any]
    description: str = ""
    files: tuple[str, ...] = ()
    subdir: str | None = None
    tasks: tuple[str, ...] = ()
    plugin: str = ""
    config_class: type | None = None

    @property
    def builtin(self) -> bool:
        return self.subdir is None


@dataclass(frozen=True)
class EncoderEntry:
    name: str
    factory: Callable[..., Any]
    description: str = ""
    plugin: str = ""


@dataclass(frozen=True)
class BackboneEntry:
    name: str
    factory: Callable[..., Any]
    description: str = ""
    plugin: str = ""


@dataclass
class PluginInfo:
    name: str
    version: str = ""
    registers: dict[str, list[str]] = field(default_factory=dict)
    error: str | None = None
    builtin: bool = False
    warnings: list[str] = field(default_factory=list)


@dataclass
class Registry:
    indexers: dict[str, IndexerEntry] = field(default_factory=dict)
    tasks: dict[str, Any] = field(default_factory=dict)
    datasets: dict[str, DatasetEntry] = field(default_factory=dict)
    encoders: dict[str, EncoderEntry] = field(default_factory=dict)
    backbones: dict[str, BackboneEntry] = field(default_factory=dict)
    plugins: list[PluginInfo] = field(default_factory=list)
    ambiguous: dict[tuple[str, str], list[str]] = field(default_factory=dict)
    """(kind, name) -> the third-party plugins that all register that name (none of them gets it)."""

    def indexer(self, name: str) -> IndexerEntry:
        return self._lookup(self.indexers, "indexer", name)

    def task(self, name: str) -> Any:
        return self._lookup(self.tasks, "task", name)

    def dataset(self, name: str) -> DatasetEntry:
        return self._lookup(self.datasets, "dataset", name)

    def encoder(self, name: str) -> EncoderEntry:
        return self._lookup(self.encoders, "encoder", name)

    def backbone(self, name: str) -> BackboneEntry:
        return self._lookup(self.backbones, "backbone", name)

    def plugin(self, name: str) -> PluginInfo | None:
        return next((p for p in self.plugins if p.name == name), None)

    def _lookup(self, table: dict[str, Any], kind: str, name: str) -> Any:
        owners = self.ambiguous.get((kind, name))
        if owners:
            raise ConfigError(
                f"{kind} {name!r} is registered by {len(owners)} plugins ({', '.join(owners)}), so by "
                f"neither; disable all but one with INDEXBENCH_DISABLE_PLUGINS={owners[-1]} (or uninstall it)")
        try:
            return table[name]
        except KeyError:
            raise UnknownNameError(kind, name, table) from None


_HOOKS = {
    # hook name -> (registry attribute, kind word used in listings)
    "register_indexers": ("indexers", "indexer"),
    "register_tasks": ("tasks", "task"),
    "register_datasets": ("datasets", "dataset"),
    "register_encoders": ("encoders", "encoder"),
    "register_backbones": ("backbones", "backbone"),
}


def _collect(registry: Registry, plugin_name: str, module: Any, info: PluginInfo) -> None:
    """Call each hook this plugin implements and file what it registers under its name.

    Calling hooks per plugin (rather than once through pluggy's fan-out) is what lets a failure
    be pinned on one plugin and the rest carry on.
    """
    staged: dict[str, list[tuple[str, Any]]] = {}
    for hook_name, (attr, _kind) in _HOOKS.items():
        impl = getattr(module, hook_name, None)
        if impl is None:
            continue
        items: list[tuple[str, Any]] = []
        impl(register=lambda item, _items=items: _items.append((item.name, item)))
        staged[attr] = items
    # Nothing is registered unless every hook succeeded; then each name is settled.
    for attr, items in staged.items():
        kind = _HOOKS_BY_ATTR[attr]
        table = getattr(registry, attr)
        if len({name for name, _ in items}) < len(items):
            raise ValueError(f"registers the {kind} name "
                             f"{next(n for n, _ in items if [m for m, _ in items].count(n) > 1)!r} twice")
        for name, item in items:
            if dataclasses.is_dataclass(item) and hasattr(item, "plugin"):
                item = dataclasses.replace(item, plugin=plugin_name)
            if not _settle(registry, kind, table, name, info):
                continue
            table[name] = item
            info.registers.setdefault(kind, []).append(name)


def _settle(registry: Registry, kind: str, table: dict[str, Any], name: str, info: PluginInfo) -> bool:
    """Whether ``info``'s plugin gets ``name``; records the clash on every plugin involved if not."""
    if (kind, name) in registry.ambiguous:
        registry.ambiguous[(kind, name)].append(info.name)
        info.warnings.append(f"{kind} {name!r} is also registered by "
                             f"{', '.join(registry.ambiguous[(kind, name)][:-1])}: not usable until one is disabled")
        return False
    if name not in table:
        return True
    owner_name = getattr(table[name], "plugin", "") or "another plugin"
    owner = registry.plugin(owner_name)
    if owner is None or owner.builtin:
        if info.builtin:  # two built-ins clashing is a bug in indexbench itself
            raise ValueError(f"{kind} {name!r} is already registered by {owner_name}")
        info.warnings.append(f"{kind} {name!r} is a built-in name (of {owner_name}); this plugin's {kind} "
                             "of that name is not registered -- rename it")
        return False
    # Two third-party plugins: neither wins, and both are told.
    del table[name]
    owner.registers[kind].remove(name)
    owner.warnings.append(f"{kind} {name!r} is also registered by {info.name}: not usable until one is disabled")
    info.warnings.append(f"{kind} {name!r} is also registered by {owner_name}: not usable until one is disabled")
    registry.ambiguous[(kind, name)] = [owner_name, info.name]
    return False


_HOOKS_BY_ATTR = {attr: kind for attr, kind in _HOOKS.values()}


def load_registry(extra_plugins: list[Any] | None = None) -> Registry:
    """Load the built-ins and every installed plugin into a fresh registry.

    ``INDEXBENCH_DISABLE_PLUGINS`` (comma-separated entry-point names) skips the named plugins,
    which helps when a broken plugin must be bypassed or a test must run without one.
    """
    from . import builtins

    pm = pluggy.PluginManager(ENTRY_POINT_GROUP)
    pm.add_hookspecs(hookspecs)
    registry = Registry()
    disabled = {n.strip() for n in os.environ.get("INDEXBENCH_DISABLE_PLUGINS", "").split(",") if n.strip()}

    # Built-ins first (the core, then the methods shipped in the indexbench distribution), then
    # third-party plugins, each group by entry-point name: the order never depends on how entry
    # points happen to be listed, and a third-party plugin can never take a built-in's name.
    candidates: list[tuple[str, str, bool, Callable[[], Any]]] = [
        ("indexbench (built-in)", _version("indexbench"), True, lambda: builtins)
    ]
    points = [ep for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP) if ep.name not in disabled]
    for ep in sorted(points, key=lambda e: (not _shipped(e), e.name)):
        version = ep.dist.version if ep.dist is not None else ""
        candidates.append((ep.name, version, _shipped(ep), ep.load))
    for module in extra_plugins or []:
        name = getattr(module, "__name__", repr(module))
        candidates.append((name, "", False, lambda m=module: m))

    for name, version, builtin, load in candidates:
        info = PluginInfo(name=name, version=version, builtin=builtin)
        registry.plugins.append(info)
        module = None
        try:
            module = load()
            pm.register(module, name=name)
            _collect(registry, name, module, info)
        except KeyboardInterrupt:
            raise
        except BaseException as exc:  # a broken plugin is reported, never fatal (SystemExit included)
            info.error = f"{type(exc).__name__}: {exc}"
            info.registers.clear()
            if module is not None and pm.is_registered(module):
                pm.unregister(module)
    return registry


def _shipped(ep: importlib.metadata.EntryPoint) -> bool:
    """Whether an entry point comes with indexbench itself (the methods in ``plugins/``)."""
    return ep.dist is not None and (ep.dist.name or "").lower() == "indexbench"


def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return ""


_registry: Registry | None = None


def get_registry() -> Registry:
    """The process-wide registry, loaded on first use (so ``--help`` loads no plugin)."""
    global _registry
    if _registry is None:
        _registry = load_registry()
    return _registry


def reset_registry() -> None:
    global _registry
    _registry = None


# --------------------------------------------------------------------------- indexer specs


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
    """Instantiate a config dataclass from string options, converting to each field's type."""
    fields = {f.name: f for f in dataclasses.fields(config_class)}
    values: dict[str, Any] = {}
    for key, raw in options.items():
        if key not in fields:
            valid = ", ".join(sorted(fields)) or "(none)"
            raise ConfigError(f"{owner} has no option {key!r}; valid options: {valid}")
        values[key] = _convert(raw, fields[key], owner)
    return config_class(**values)


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
