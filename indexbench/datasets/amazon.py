"""Loader for the LC-Rec / LETTER Amazon layout: ``<Name>.item.json`` + ``<Name>.inter.json``.

``<Name>.item.json`` maps an item index to ``{"title", "description", "brand", "categories"}``;
``<Name>.inter.json`` maps a user index to that user's item indexes, oldest first. Items become
documents whose text is title + brand + description: the category path is kept apart because it
is the ground truth of id-quality and the source of product-search queries.
"""

from __future__ import annotations

import re
from pathlib import Path

from ..data import Corpus, Dataset, Document
from ..errors import DataError
from .jsonio import JsonDocument, load_json, quoted, type_name

ITEM_SUFFIX = ".item.json"
INTER_SUFFIX = ".inter.json"
# Levels are joined by a bare comma, but some names contain ", " ("Tapes, Adhesives & Sealants").
_LEVEL_SEPARATOR = re.compile(r",(?! )")
_REQUIRED = ("title",)
_OPTIONAL = ("description", "brand", "categories")


def split_categories(path: str) -> tuple[str, ...]:
    """``"Root,Level 2,Level 3"`` -> ``("Root", "Level 2", "Level 3")``; an empty path -> ``()``."""
    path = path.strip()
    if not path:
        return ()
    return tuple(level.strip() for level in _LEVEL_SEPARATOR.split(path))


def product_text(*parts: str) -> str:
    """Join text fields into sentences: stripped, empty ones skipped, ". " unless already punctuated."""
    text = ""
    for part in parts:
        part = part.strip()
        if not part:
            continue
        if text:
            text += " " if text[-1] in ".!?" else ". "
        text += part
    return text


def _top_level_object(doc: JsonDocument, what: str) -> dict:
    if not isinstance(doc.value, dict):
        raise DataError(doc.path, f"expected a JSON object mapping {what}, got {type_name(doc.value)}", line=1)
    if not doc.value:
        raise DataError(doc.path, f"no entries (expected a JSON object mapping {what})")
    return doc.value


def read_items(path: Path, category_text: bool = False) -> Corpus:
    """``<Name>.item.json`` -> a corpus in file order; ``title`` is required, the rest optional.

    With ``category_text`` the category path ends the text ("category: A, B, C")."""
    doc = load_json(path)
    docs = []
    for item_id, item in _top_level_object(doc, "item ids to items").items():
        where = f"item {quoted(item_id)}"
        if not item_id.strip():
            raise doc.error(item_id, "empty item id")
        if not isinstance(item, dict):
            raise doc.error(item_id, f"{where}: expected an object, got {type_name(item)}")
        for name in _REQUIRED:
            if name not in item:
                raise doc.error(item_id, f'{where}: missing field "{name}"')
        fields = {name: item.get(name, "") for name in _REQUIRED + _OPTIONAL}
        for name, value in fields.items():
            if not isinstance(value, str):
                raise doc.error(item_id, f'{where}: field "{name}" must be a string, got {type_name(value)}')
        categories = split_categories(fields["categories"])
        if any(not level for level in categories):
            raise doc.error(item_id, f'{where}: category path "{fields["categories"]}" has an empty level')
        docs.append(Document(
            id=item_id,
            title=fields["title"].strip(),
            text=product_text(fields["title"], fields["brand"], fields["description"],
                              "category: " + ", ".join(categories) if category_text and categories else ""),
            categories=categories,
        ))
    return Corpus(docs)


def read_interactions(path: Path, corpus: Corpus, items_file: str) -> dict[str, list[str]]:
    """``<Name>.inter.json`` -> ``{user: [item id, ...]}``; every item must exist in ``corpus``."""
    doc = load_json(path)
    interactions: dict[str, list[str]] = {}
    for user, sequence in _top_level_object(doc, "user ids to item lists").items():
        where = f"user {quoted(user)}"
        if not isinstance(sequence, list):
            raise doc.error(user, f"{where}: expected an array of item ids, got {type_name(sequence)}")
        if not sequence:
            raise doc.error(user, f"{where}: has no interactions")
        items = []
        for position, item in enumerate(sequence):
            # bool is an int subclass in Python, but true/false is never an item id.
            if isinstance(item, bool) or not isinstance(item, (int, str)):
                raise doc.error(user, f"{where}: entry {position} must be an item id (integer or string), "
                                      f"got {type_name(item)}")
            item_id = str(item)
            if item_id not in corpus:
                raise doc.error(user, f"{where}: unknown item id {quoted(item_id)} (not in {items_file})")
            items.append(item_id)
        interactions[user] = items
    return interactions


def find_prefixes(directory: Path) -> list[str]:
    """The ``<Name>`` of every item/interaction file pair in ``directory``, sorted."""
    return sorted(
        p.name[: -len(ITEM_SUFFIX)]
        for p in directory.glob(f"*{ITEM_SUFFIX}")
        if (directory / (p.name[: -len(ITEM_SUFFIX)] + INTER_SUFFIX)).is_file()
    )


def load_lcrec(directory: Path, name: str | None = None, prefix: str | None = None,
               category_text: bool = False) -> Dataset:
    """Load ``<prefix>.item.json`` and ``<prefix>.inter.json`` from ``directory``.

    Without ``prefix`` the directory must hold exactly one such pair. ``category_text``: see
    `read_items` (off by default: it leaks id-quality's ground truth into the text).
    """
    directory = Path(directory)
    if prefix is None:
        prefixes = find_prefixes(directory)
        if len(prefixes) != 1:
            found = ", ".join(prefixes) or "none"
            raise DataError(directory, f"expected exactly one <Name>{ITEM_SUFFIX} + <Name>{INTER_SUFFIX} "
                                       f"pair, found {found}")
        prefix = prefixes[0]
    item_path = directory / f"{prefix}{ITEM_SUFFIX}"
    inter_path = directory / f"{prefix}{INTER_SUFFIX}"
    for required in (item_path, inter_path):
        if not required.is_file():
            raise DataError(required, "missing (an LC-Rec Amazon directory needs "
                                      f"<Name>{ITEM_SUFFIX} and <Name>{INTER_SUFFIX})")
    corpus = read_items(item_path, category_text=category_text)
    interactions = read_interactions(inter_path, corpus, item_path.name)
    return Dataset(name=name or directory.name, corpus=corpus, interactions=interactions,
                   source=str(directory))
