"""What plugins register: one entry type per kind of thing (tasks register their instances).

A leaf module -- it imports nothing from indexbench -- so any module, core or plugin, may use
these types without importing the plugin machinery. All are re-exported from `indexbench`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal


@dataclass
class NoOptions:
    """Config class of an indexer that takes no options."""


@dataclass(frozen=True)
class IndexerEntry:
    """An indexer: ``factory(config)`` builds it from an instance of ``config_class``, a dataclass
    whose fields are the options a user sets as ``--indexer name:field=value``. ``kind`` says
    whether it retrieves (``build_retriever``) or assigns semantic IDs (``assign_ids``).
    ``plugin`` is filled in by the registry with the name of the plugin that registered it."""

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
    def generated(self) -> bool:
        """Whether the data is generated in code (no files, no folder under the data directory)."""
        return self.subdir is None


@dataclass(frozen=True)
class EncoderEntry:
    """A text encoder: ``factory(device="cpu")`` returns an `indexbench.encoders.TextEncoder`."""

    name: str
    factory: Callable[..., Any]
    description: str = ""
    plugin: str = ""


@dataclass(frozen=True)
class BackboneEntry:
    """A seq2seq backbone for the generative engine: ``factory(device="cpu", *, seed=0,
    decoder_layers=None)`` returns an `indexbench.generative.backbones.Seq2SeqBackbone`."""

    name: str
    factory: Callable[..., Any]
    description: str = ""
    plugin: str = ""


__all__ = ["BackboneEntry", "DatasetEntry", "EncoderEntry", "IndexerEntry", "NoOptions"]
