"""Loader for RecBole's atomic files (Zhao et al., CIKM 2021): ``<name>.inter`` and, optionally,
``<name>.item``, tab-separated, with a typed header (``user_id:token  item_id:token
timestamp:float``).

A user's items are ordered by ``timestamp`` where the file has one (ties keep file order), else
by file order. ``.item`` may give ``title``, ``brand``, ``description`` and ``categories`` (a
comma-separated path, root first, or a token sequence taken as one path); the text is built as
the LC-Rec loader builds it. Items of ``.item`` that no user has are kept in the corpus.
"""

from __future__ import annotations

from pathlib import Path

from ..data import Corpus, Dataset, Document
from ..errors import DataError
from .amazon import product_text, split_categories
from .jsonio import iter_tsv, quoted

TYPES = ("token", "token_seq", "float", "float_seq")


def find_atomic(directory: Path) -> str | None:
    """The ``<name>`` of the one ``<name>.inter`` in ``directory``, or None."""
    found = sorted(p.stem for p in directory.glob("*.inter") if p.is_file())
    if len(found) > 1:
        raise DataError(directory, f"expected one <name>.inter, found {', '.join(found)}")
    return found[0] if found else None


def _rows(path: Path, required: tuple[str, ...]):
    """(line number, {field: value}) for each data row of an atomic file, after checking its header."""
    lines = iter_tsv(path)
    try:
        lineno, header = next(lines)
    except StopIteration:
        raise DataError(path, "empty file (expected a header such as user_id:token<TAB>item_id:token)") from None
    fields = []
    for column in header:
        name, _, kind = column.strip().partition(":")
        if kind not in TYPES:
            raise DataError(path, f"header column {quoted(column.strip())} is not name:type with type one of "
                                  f"{', '.join(TYPES)}", line=lineno)
        fields.append(name)
    for name in required:
        if name not in fields:
            raise DataError(path, f'header has no "{name}" column', line=lineno)
    for lineno, values in lines:
        if len(values) != len(fields):
            raise DataError(path, f"{len(values)} columns, the header has {len(fields)}", line=lineno)
        yield lineno, dict(zip(fields, (v.strip() for v in values)))


def read_inter(path: Path, items: dict[str, Document] | None = None) -> dict[str, list[str]]:
    """User -> items in time order; with ``items`` (the ``.item`` file's), every item must be one."""
    events: dict[str, list[tuple[float, int, str]]] = {}
    for lineno, row in _rows(path, ("user_id", "item_id")):
        stamp = 0.0
        if "timestamp" in row:
            try:
                stamp = float(row["timestamp"])
            except ValueError:
                raise DataError(path, f"timestamp {quoted(row['timestamp'])} is not a number", line=lineno) from None
        if not row["user_id"] or not row["item_id"]:
            raise DataError(path, "empty user_id or item_id", line=lineno)
        if items is not None and row["item_id"] not in items:
            raise DataError(path, f"unknown item {quoted(row['item_id'])} (not in the .item file)", line=lineno)
        events.setdefault(row["user_id"], []).append((stamp, lineno, row["item_id"]))
    if not events:
        raise DataError(path, "no interactions")
    return {user: [item for _, _, item in sorted(seq)] for user, seq in events.items()}


def read_item(path: Path) -> dict[str, Document]:
    docs: dict[str, Document] = {}
    for lineno, row in _rows(path, ("item_id",)):
        item = row["item_id"]
        if item in docs:
            raise DataError(path, f"item {quoted(item)} appears twice", line=lineno)
        title = row.get("title", "")
        categories = row.get("categories", "").replace("'", "")
        docs[item] = Document(id=item, title=title,
                              text=product_text(title, row.get("brand", ""), row.get("description", "")),
                              categories=split_categories(categories))
    return docs


def load_recbole(directory: Path, name: str | None = None) -> Dataset:
    directory = Path(directory)
    stem = find_atomic(directory)
    if stem is None:
        raise DataError(directory, "no <name>.inter file (RecBole atomic files)")
    item_path = directory / f"{stem}.item"
    described = read_item(item_path) if item_path.is_file() else {}
    interactions = read_inter(directory / f"{stem}.inter", described or None)
    item_ids = list(described) or list(dict.fromkeys(i for seq in interactions.values() for i in seq))
    if all(i.isdigit() for i in item_ids):
        item_ids.sort(key=int)
    if all(u.isdigit() for u in interactions):
        interactions = {u: interactions[u] for u in sorted(interactions, key=int)}
    corpus = Corpus(described.get(i) or Document(id=i, text="") for i in item_ids)
    return Dataset(name=name or directory.name, corpus=corpus, interactions=interactions, source=str(directory))
