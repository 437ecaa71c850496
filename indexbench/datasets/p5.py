"""Loader for P5's layout of the Amazon 2014 sets (Geng et al., RecSys 2022): ``user_sequence.txt``,
one user a line, ``user item item ...`` separated by spaces, items oldest first.

Item metadata is optional: with ``datamaps.json`` (P5's ``id2item``: item id -> ASIN) and
``meta.json`` or ``meta.json.gz`` (Amazon 2014 metadata, one object a line, JSON or the Python
literal form Amazon published, keyed by ``asin``), items get title, brand, description and the
first category path, and their text is built as the LC-Rec loader builds it. Without them every
item is a document with no text: ID-based recommenders (sasrec, most-popular) still run.
"""

from __future__ import annotations

import ast
import gzip
import json
from pathlib import Path

from ..data import Corpus, Dataset, Document
from ..errors import DataError
from .amazon import product_text
from .jsonio import iter_lines, load_json, quoted, type_name

SEQUENCE_FILE = "user_sequence.txt"
DATAMAPS_FILE = "datamaps.json"
META_FILES = ("meta.json", "meta.json.gz")


def is_p5_dir(directory: Path) -> bool:
    return (directory / SEQUENCE_FILE).is_file()


def read_sequences(path: Path) -> dict[str, list[str]]:
    interactions: dict[str, list[str]] = {}
    for lineno, line in iter_lines(path):
        fields = line.split()
        if len(fields) < 2:
            raise DataError(path, f"user {quoted(fields[0])} has no items (expected: user item item ...)", line=lineno)
        user, items = fields[0], fields[1:]
        if user in interactions:
            raise DataError(path, f"user {quoted(user)} appears twice", line=lineno)
        interactions[user] = items
    if not interactions:
        raise DataError(path, "no users (expected one line per user: user item item ...)")
    return interactions


def _meta_lines(path: Path):
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rt", encoding="utf-8") as f:
            yield from enumerate(f, 1)
    except (OSError, EOFError, UnicodeDecodeError) as exc:
        raise DataError(path, f"cannot read file ({exc})") from None


def read_metadata(path: Path) -> dict[str, dict]:
    """ASIN -> metadata object, from JSON lines or Amazon's Python-literal lines."""
    meta: dict[str, dict] = {}
    for lineno, line in _meta_lines(path):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError:
            try:
                value = ast.literal_eval(line)
            except (ValueError, SyntaxError):
                raise DataError(path, "neither a JSON object nor a Python dict literal", line=lineno) from None
        if not isinstance(value, dict) or not isinstance(value.get("asin"), str):
            raise DataError(path, 'expected an object with a string "asin"', line=lineno)
        meta[value["asin"]] = value
    return meta


def _text_field(value, path: Path, asin: str, name: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise DataError(path, f'item {quoted(asin)}: field "{name}" must be a string, got {type_name(value)}')
    return value.strip()


def _document(item_id: str, asin: str | None, meta: dict[str, dict], path: Path | None) -> Document:
    record = meta.get(asin or "", {}) if path is not None else {}
    if not record:
        return Document(id=item_id, text="")
    title = _text_field(record.get("title"), path, asin, "title")
    brand = _text_field(record.get("brand"), path, asin, "brand")
    description = _text_field(record.get("description"), path, asin, "description")
    paths = record.get("categories") or [[]]
    if not (isinstance(paths, list) and all(isinstance(p, list) for p in paths)):
        raise DataError(path, f'item {quoted(asin)}: "categories" must be a list of category paths')
    categories = tuple(str(level).strip() for level in paths[0] if str(level).strip())
    return Document(id=item_id, title=title, text=product_text(title, brand, description), categories=categories)


def load_p5(directory: Path, name: str | None = None) -> Dataset:
    directory = Path(directory)
    interactions = read_sequences(directory / SEQUENCE_FILE)
    item_ids = list(dict.fromkeys(item for items in interactions.values() for item in items))
    if all(i.isdigit() for i in item_ids):
        item_ids.sort(key=int)
    asins: dict[str, str] = {}
    meta: dict[str, dict] = {}
    meta_path = next((directory / f for f in META_FILES if (directory / f).is_file()), None)
    if (directory / DATAMAPS_FILE).is_file():
        doc = load_json(directory / DATAMAPS_FILE)
        id2item = doc.value.get("id2item") if isinstance(doc.value, dict) else None
        if not isinstance(id2item, dict):
            raise DataError(doc.path, 'expected an object with an "id2item" object (item id -> ASIN)', line=1)
        asins = {str(k): str(v) for k, v in id2item.items()}
        if meta_path is not None:
            meta = read_metadata(meta_path)
    corpus = Corpus(_document(i, asins.get(i), meta, meta_path) for i in item_ids)
    return Dataset(name=name or directory.name, corpus=corpus, interactions=interactions, source=str(directory))
