"""Built-in datasets, loading by name or by directory, and the status shown by `indexbench datasets`.

Loaders live one per *format* (``beir``, ``amazon`` for the LC-Rec layout, ``p5``, ``recbole``)
plus the in-code ``sample``; ``identity`` says whether a loaded dataset is a known public split. This module is a built-in plugin (the registry loads it by name and calls its hook
like any plugin's) and imports little at import time, because every CLI start registers the
built-in datasets; the loaders are imported when a dataset is actually loaded.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..entries import DatasetEntry
from ..errors import DataError
from ..hookspecs import hookimpl

if TYPE_CHECKING:
    from ..data import Dataset

BEIR = "beir"
LCREC = "lc-rec"
P5 = "p5"
RECBOLE = "recbole"
_LOCATION_HINT = "set the data directory (--data-dir, data_dir=, or INDEXBENCH_DATA) to the folder that contains"


def _load_sample(directory: Path | None) -> Dataset:
    from .sample import load_sample

    return load_sample()


def _load_scifact(directory: Path | None) -> Dataset:
    from .beir import load_beir

    assert directory is not None
    return load_beir(directory, name="scifact")


def _lcrec_loader(name: str, prefix: str):
    def load(directory: Path | None, options: AmazonOptions | None = None) -> Dataset:
        from .amazon import load_lcrec

        assert directory is not None
        options = options or AmazonOptions()
        return load_lcrec(directory, name=name, prefix=prefix, category_text=options.category_text)

    return load


@dataclass
class AmazonOptions:
    """Options of an LC-Rec Amazon dataset (``--dataset amazon-scientific:category_text=true``).

    ``category_text``: append the item's category path to its text ("category: A, B, C"), as the
    LMIndexer authors' item texts do. Off by default: the path is the ground truth id-quality
    scores against and the source of product-search queries, so including it leaks both."""

    category_text: bool = False


def builtin_datasets() -> list[DatasetEntry]:
    """The datasets the core registers: the generated sample and the real ones."""
    return [
        DatasetEntry(
            name="sample",
            load=_load_sample,
            description="Small generated product catalog (300 items, 300 users, 210 queries); no download",
            tasks=("document-retrieval", "id-quality", "product-search", "recommendation"),
        ),
        DatasetEntry(
            name="scifact",
            load=_load_scifact,
            description="BEIR SciFact: 5,183 abstracts, 809 train / 300 test claims",
            files=("corpus.jsonl", "queries.jsonl", "qrels/test.tsv"),
            subdir="scifact",
            tasks=("document-retrieval",),
        ),
        *(_lcrec_entry(f"amazon-{prefix.lower()}", prefix,
                       f"Amazon 2014 {title}, the P5/TIGER split (LC-Rec layout): {items} items, {users} users")
          for prefix, title, items, users in (("Beauty", "Beauty", "12,101", "22,363"),
                                              ("Sports", "Sports and Outdoors", "18,357", "35,598"),
                                              ("Toys", "Toys and Games", "11,924", "19,412"))),
        _lcrec_entry("amazon-scientific", "Scientific",
                     "Amazon 2018 Industrial & Scientific (LC-Rec layout): 4,344 items, 8,317 users"),
    ]


def _lcrec_entry(name: str, prefix: str, description: str) -> DatasetEntry:
    """A real Amazon set in the LC-Rec layout under ``<data-dir>/<name>/``."""
    return DatasetEntry(name=name, load=_lcrec_loader(name, prefix), description=description,
                        files=(f"{prefix}.item.json", f"{prefix}.inter.json"), subdir=name,
                        tasks=("id-quality", "product-search", "recommendation"), config_class=AmazonOptions)


@hookimpl
def register_datasets(register):
    for entry in builtin_datasets():
        register(entry)


def dataset_dir(entry: DatasetEntry, data_dir: Path) -> Path | None:
    """Where ``entry``'s files live under ``data_dir`` (None for generated datasets)."""
    return None if entry.subdir is None else Path(data_dir) / entry.subdir


def load_dataset(entry: DatasetEntry, data_dir: Path, options=None, label: str | None = None) -> Dataset:
    """Load a registered dataset, first checking that its files are where they should be.

    ``options`` is an instance of the entry's ``config_class`` (None: its defaults); ``label``
    renames the dataset (the CLI files results with options under ``name:key=value``)."""
    directory = dataset_dir(entry, data_dir)
    if directory is not None:
        for name in entry.files:
            if not (directory / name).is_file():
                raise DataError(directory / name, f"missing file of dataset {entry.name!r} (looked in "
                                                  f"{directory}); {_LOCATION_HINT} {entry.subdir}/")
    dataset = entry.load(directory) if options is None else entry.load(directory, options)
    if label is not None and label != dataset.name:
        dataset = dataclasses.replace(dataset, name=label)
    return with_identity(dataset, entry.name)


def with_identity(dataset: Dataset, registered_as: str | None = None) -> Dataset:
    """``dataset`` with its `Dataset.identity` filled in (which known split it is, if any)."""
    from .identity import identify

    dataset.identity = identify(dataset, registered_as).as_dict()
    return dataset


def _cheap_check(path: Path) -> str | None:
    """A problem with the start of ``path``, or None; reads one line at most, never the whole file."""
    from .jsonio import first_line

    line = first_line(path)
    if line is None:
        return "file is empty"
    if path.suffix == ".jsonl":
        try:
            if not isinstance(json.loads(line), dict):
                return "line 1 is not a JSON object"
        except json.JSONDecodeError as exc:
            return f"line 1 is not valid JSON ({exc.msg})"
    elif path.suffix == ".json" and not line.lstrip().startswith("{"):
        return "does not start with a JSON object"
    elif path.suffix == ".tsv" and len(line.rstrip("\r\n").split("\t")) != 3:
        return "line 1 does not have 3 tab-separated columns"
    return None


def dataset_status(entry: DatasetEntry, data_dir: Path) -> tuple[str, str]:
    """``("ok" | "missing" | "invalid" | "built-in", message)`` for the `indexbench datasets` listing."""
    directory = dataset_dir(entry, data_dir)
    if directory is None:
        return "built-in", "generated in code, nothing to download"
    for name in entry.files:
        path = directory / name
        if not path.is_file():
            return "missing", f"{path} not found; {_LOCATION_HINT} {entry.subdir}/"
    for name in entry.files:
        path = directory / name
        try:
            problem = _cheap_check(path)
        except OSError as exc:
            problem = f"cannot read file ({exc.strerror or exc})"
        if problem:
            return "invalid", f"{path}: {problem}"
    return "ok", str(directory)


def dataset_identity(entry: DatasetEntry, data_dir: Path) -> dict[str, str]:
    """`Dataset.identity` of a registered dataset whose files are present (it loads them);
    a file that does not load is reported as such, not raised."""
    try:
        return load_dataset(entry, data_dir).identity or {"status": "unknown", "summary": ""}
    except DataError as exc:
        return {"status": "unknown", "summary": f"does not load: {exc}"}


def detect_format(path: Path) -> str | None:
    """``"beir"``, ``"lc-rec"``, ``"p5"`` or ``"recbole"`` when ``path`` is a directory in that
    layout, else None."""
    path = Path(path)
    if not path.is_dir():
        return None
    from .amazon import find_prefixes
    from .beir import is_beir_dir
    from .p5 import is_p5_dir

    if is_beir_dir(path):
        return BEIR
    if find_prefixes(path):
        return LCREC
    if is_p5_dir(path):
        return P5
    if any(p.is_file() for p in path.glob("*.inter")):
        return RECBOLE
    return None


def load_path(path: Path, name: str | None = None) -> Dataset:
    """Load any directory in a supported layout (``--dataset /some/dir``); named after it by default."""
    path = Path(path).expanduser()
    if not path.exists():
        raise DataError(path, "no such dataset directory")
    fmt = detect_format(path)
    if fmt == BEIR:
        from .beir import load_beir

        return with_identity(load_beir(path, name=name))
    if fmt == LCREC:
        from .amazon import load_lcrec

        return with_identity(load_lcrec(path, name=name))
    if fmt == P5:
        from .p5 import load_p5

        return with_identity(load_p5(path, name=name))
    if fmt == RECBOLE:
        from .recbole import load_recbole

        return with_identity(load_recbole(path, name=name))
    raise DataError(path, "not a dataset directory: expected corpus.jsonl (BEIR), <Name>.item.json + "
                          "<Name>.inter.json (LC-Rec Amazon), user_sequence.txt (P5) or <name>.inter (RecBole)")


__all__ = ["builtin_datasets", "dataset_dir", "dataset_identity", "dataset_status", "detect_format", "load_dataset", "load_path",
           "with_identity"]
