"""Plugin loading and the registry of everything plugins register.

Plugins come from the entry-point group ``indexbench`` (the built-in methods in ``plugins/``
included) plus the core's own built-ins (`DEFAULT_PLUGINS`: tasks, dataset formats, encoders,
backbones), loaded by module name and called through the very same hooks. A plugin that fails
to import, or whose hook raises, is recorded with its error and skipped: one broken third-party
package must not take the whole tool down.

Names are resolved deterministically, whatever order entry points come in: the core and the
methods shipped with indexbench load first and keep their names; a third-party plugin that
registers a taken built-in name is told so (``indexbench plugins``) and that one item is dropped;
a name that two third-party plugins register belongs to neither -- looking it up is an error that
names both plugins and how to disable one.
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.metadata
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pluggy

from . import hookspecs
from .entries import BackboneEntry, DatasetEntry, EncoderEntry, IndexerEntry, NoOptions
from .errors import ConfigError, UnknownNameError

ENTRY_POINT_GROUP = "indexbench"


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


def _collect(pm: pluggy.PluginManager, registry: Registry, plugin_name: str, module: Any, info: PluginInfo) -> None:
    """Call each hook this plugin implements, through pluggy, and file what it registers under
    its name.

    Each hook is called on this plugin alone (a pluggy subset caller without the others), so a
    failure is pinned on one plugin and the rest carry on.
    """
    others = [p for p in pm.get_plugins() if p is not module]
    staged: dict[str, list[tuple[str, Any]]] = {}
    for hook_name, (attr, _kind) in _HOOKS.items():
        caller = pm.subset_hook_caller(hook_name, remove_plugins=others)
        if not caller.get_hookimpls():
            continue
        items: list[tuple[str, Any]] = []
        caller(register=lambda item, _items=items: _items.append((item.name, item)))
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


DEFAULT_PLUGINS = ("indexbench.tasks", "indexbench.datasets", "indexbench.encoders",
                   "indexbench.generative.builtin_backbones")
"""The core's own plugins -- tasks, dataset formats, text encoders, seq2seq backbones -- loaded by
module name and called through the same hooks as any plugin."""


def load_registry(extra_plugins: list[Any] | None = None) -> Registry:
    """Load the built-ins and every installed plugin into a fresh registry.

    ``extra_plugins`` (modules or objects with hook implementations) load after the installed
    ones. ``INDEXBENCH_DISABLE_PLUGINS`` (comma-separated entry-point names) skips the named
    plugins, which helps when a broken plugin must be bypassed or a test must run without one.
    """
    pm = pluggy.PluginManager(ENTRY_POINT_GROUP)
    pm.add_hookspecs(hookspecs)
    registry = Registry()
    disabled = {n.strip() for n in os.environ.get("INDEXBENCH_DISABLE_PLUGINS", "").split(",") if n.strip()}

    # Built-ins first (the core, then the methods shipped in the indexbench distribution), then
    # third-party plugins, each group by entry-point name: the order never depends on how entry
    # points happen to be listed, and a third-party plugin can never take a built-in's name.
    version = _version("indexbench")
    candidates: list[tuple[str, str, bool, Callable[[], Any]]] = [
        (name, version, True, lambda n=name: importlib.import_module(n)) for name in DEFAULT_PLUGINS
    ]
    points = [ep for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP) if ep.name not in disabled]
    for ep in sorted(points, key=lambda e: (not _shipped(e), e.name)):
        candidates.append((ep.name, ep.dist.version if ep.dist is not None else "", _shipped(ep), ep.load))
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
            pm.check_pending()  # a decorated function that names no hook (a misspelt one) is an error
            _collect(pm, registry, name, module, info)
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


__all__ = [
    # The entry types live in `indexbench.entries`; importable from here too, where plugins
    # have long imported them.
    "BackboneEntry", "DatasetEntry", "DEFAULT_PLUGINS", "ENTRY_POINT_GROUP", "EncoderEntry", "IndexerEntry",
    "NoOptions", "PluginInfo", "Registry", "get_registry", "load_registry", "reset_registry",
]
