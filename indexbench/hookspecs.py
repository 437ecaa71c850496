"""The hooks a plugin implements. Every hook receives a ``register`` callable.

A plugin is a module (or object) with functions decorated by ``indexbench.hookimpl``, made known
through an entry point in the group ``indexbench``::

    [project.entry-points.indexbench]
    myindexer = "indexbench_myindexer"

Built-in methods in ``plugins/`` use exactly this mechanism. Plugin modules must stay cheap to
import: keep torch, transformers, faiss, ... inside the functions that need them, because every
CLI start imports every plugin.
"""

from __future__ import annotations

import pluggy

hookspec = pluggy.HookspecMarker("indexbench")
hookimpl = pluggy.HookimplMarker("indexbench")


@hookspec
def register_indexers(register):
    """Register indexers: ``register(IndexerEntry(name=..., factory=..., ...))``.

    ``factory(config)`` builds the indexer from an instance of ``config_class`` (a dataclass whose
    fields are the options a user may set as ``--indexer name:field=value``).
    """


@hookspec
def register_tasks(register):
    """Register tasks: ``register(task_instance)`` (see `indexbench.protocols.Task`)."""


@hookspec
def register_datasets(register):
    """Register datasets: ``register(DatasetEntry(name=..., load=..., ...))``."""


@hookspec
def register_encoders(register):
    """Register text encoders: ``register(EncoderEntry(name=..., factory=...))``."""


@hookspec
def register_backbones(register):
    """Register seq2seq backbones for the generative engine: ``register(BackboneEntry(...))``."""
